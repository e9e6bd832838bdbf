"""kill -9 each service in turn at random moments during a steady load through the whole loop; the end state must
be an uninterrupted run's: no touch lost, none counted twice, every MQL assigned once, revenue totals exact.

Two loops run the same load, each in a database and topics of its own: one straight through, one whose services
are killed with SIGKILL in turn (ingest, scoring, routing, reporting, ...) at random moments and restarted. The
load is sent through ingest's public API at a steady pace; a request that gets no answer (ingest killed under it)
is sent again, as a client would, and keeps its event ids.

Touches of one person under an anonymous id and under an email sit on different partitions, and the log gives
no order between partitions; so the load comes in phases, as a day of browsing before a campaign would: every
anonymous visit first, then (once scoring has them) the form fills that name each person, then the deals. Within
that, lead ids derive from each lead's first identifier, so the two runs can be compared row by row.
"""

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Stack
from tests.e2e.counting import unique, wait_until
from tests.e2e.loop import SERVICES, Loop, new_loop, put, write_key

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)  # the same moments in both runs
REPS = ("r1", "r2", "r3", "r4")
BATCH = 4  # events per request
PACE_S = 0.25  # between requests: a steady load, not a burst


def people(n: int, seed: str) -> list[dict[str, Any]]:
    """Every third person fills the newsletter form (no MQL); the others the demo form; every fourth MQL buys."""
    out = []
    for i in range(n):
        mql = i % 3 != 2
        won = mql and i % 4 == 0
        out.append(
            {
                "anon": f"{seed}-a{i}",
                "email": f"p{i}@{seed}-co{i}.com",
                "mql": mql,
                "amount": Decimal(1000 + 37 * i) / 4 if won else None,  # quarters of a currency unit
                "deal": f"{seed}-deal{i}",
            }
        )
    return out


def at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


def visits(person: dict[str, Any], i: int) -> list[dict[str, Any]]:
    campaigns = [{"utm_source": "linkedin", "utm_campaign": "spring-ads"}, {"campaign_id": "webinar"}]
    return [
        {
            "type": "leadflow.touch.web_visit.v1",
            "identity": {"anonymous_id": person["anon"]},
            "occurred_at": at(i * 0.01 + n),
            "url": "https://example.com/pricing" if n == 0 else f"https://example.com/blog/{i}",
            "campaign": campaigns[(i + n) % 2],
        }
        for n in range(2)
    ]


def form(person: dict[str, Any], i: int) -> dict[str, Any]:
    return {
        "type": "leadflow.touch.form_fill.v1",
        "identity": {"email": person["email"], "anonymous_id": person["anon"]},
        "occurred_at": at(5 + i * 0.01),
        "form_id": "demo" if person["mql"] else "newsletter",
        "campaign": {"campaign_id": "webinar" if i % 2 else "ebook"},
        "fields": {"job_title": "VP Sales", "industry": "software", "employees": 400},
    }


def deals(person: dict[str, Any], i: int) -> list[dict[str, Any]]:
    deal = {"deal_id": person["deal"], "amount": str(person["amount"]), "currency": "EUR"}
    deal["contact_email"] = person["email"]
    return [
        {"type": "leadflow.deal.created.v1", "occurred_at": at(10 + i * 0.01), **deal},
        {"type": "leadflow.deal.closed_won.v1", "occurred_at": at(20 + i * 0.01), **deal},
    ]


async def set_up(loop: Loop) -> dict[str, str]:
    async with loop.client("ingest") as ingest, loop.client("routing") as routing, loop.client("reporting") as rep:
        key = await write_key(ingest)
        hours = {"days": [0, 1, 2, 3, 4, 5, 6], "start": "00:00:00", "end": "23:59:59"}
        sla = {"accept_minutes": 60 * 24 * 30, "first_contact_minutes": 60 * 24 * 60}
        await put(routing, "/v1/admin/teams/field", {"name": "Field", "sla": sla})
        for rep_id in REPS:
            body = {"name": rep_id, "team_ids": ["field"], "working_hours": hours, "capacity": 10_000}
            await put(routing, f"/v1/admin/reps/{rep_id}", body)
        await put(routing, "/v1/admin/rules", {"rules": [{"id": "all", "team_id": "field"}]})
        ads = {
            "name": "Ads",
            "channel": "paid_social",
            "type": "lead_generation",
            "utm": [{"utm_campaign": "spring-ads"}],
        }
        await put(rep, "/v1/campaigns/spring-ads", ads)
        await put(rep, "/v1/campaigns/webinar", {"name": "Webinar", "channel": "email", "type": "nurture"})
        await put(rep, "/v1/campaigns/ebook", {"name": "Ebook", "channel": "content", "type": "nurture"})
    return key


async def post_until_accepted(loop: Loop, path: str, key: dict[str, str], batch: list[dict[str, Any]]) -> None:
    """Send until ingest answers 202; a request cut off by a kill is sent again unchanged (same event ids)."""
    for _ in range(600):
        try:
            async with loop.client("ingest") as ingest:
                response = await ingest.post(path, json=batch, headers=key)
            if response.status_code == 202:
                return
            assert response.status_code == 503, response.text
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"ingest never accepted a batch on {path}")


async def steadily(loop: Loop, path: str, key: dict[str, str], events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), BATCH):
        await post_until_accepted(loop, path, key, events[start : start + BATCH])
        await asyncio.sleep(PACE_S)


async def drive(loop: Loop, crowd: list[dict[str, Any]]) -> None:
    """The load in its three phases; each phase waits until the previous one is applied where it must be."""
    key = await set_up(loop)
    phase1 = [v for i, p in enumerate(crowd) for v in visits(p, i)]
    await steadily(loop, "/v1/events", key, phase1)
    await until(loop, lambda: loop.count("SELECT count(*) FROM scoring.touches"), len(phase1), "visits scored")
    await steadily(loop, "/v1/events", key, [form(p, i) for i, p in enumerate(crowd)])
    mqls = sum(p["mql"] for p in crowd)
    await until(loop, lambda: loop.count("SELECT count(*) FROM routing.assignments"), mqls, "every MQL assigned")
    await steadily(loop, "/v1/deals", key, [d for i, p in enumerate(crowd) if p["amount"] for d in deals(p, i)])


async def until(loop: Loop, count: Callable[[], Awaitable[int]], expected: int, what: str) -> None:
    async def reached() -> bool:
        got = await count()
        assert got <= expected, f"{what}: {got} > {expected}"
        return got == expected

    await wait_until(reached, 180, what)


async def unfinished(loop: Loop, name: str, crowd: list[dict[str, Any]]) -> bool:
    """Whether the service still has part of the load to do (ingest: while the load is sent)."""
    touches, mqls, won = 3 * len(crowd), sum(1 for p in crowd if p["mql"]), sum(1 for p in crowd if p["amount"])
    if name == "scoring":
        return await loop.count("SELECT count(*) FROM scoring.touches") < touches
    if name == "routing":
        return await loop.count("SELECT count(*) FROM routing.assignments") < mqls
    if name == "reporting":
        done = [("touches", touches), ("deals", won), ("assignment_events", mqls)]
        return any([await loop.count(f"SELECT count(*) FROM reporting.{t}") < n for t, n in done])
    return True


async def started(loop: Loop, name: str) -> bool:
    """Routing has work only once MQLs arrive: its kills wait for the first assignment."""
    return name != "routing" or await loop.count("SELECT count(*) FROM routing.assignments") > 0


async def done_or_started(done: asyncio.Event, loop: Loop, name: str) -> bool:
    return done.is_set() or await started(loop, name)


async def killer(loop: Loop, crowd: list[dict[str, Any]], kills: int, seed: int, done: asyncio.Event) -> int:
    """Kill each service in turn at a random moment while the load runs and restart it at once; the kills that
    landed while the service still had part of the load to do."""
    rng, landed = random.Random(seed), 0
    for n in range(kills):
        name = SERVICES[n % len(SERVICES)]
        await wait_until(lambda: done_or_started(done, loop, name), 300, f"work for {name}")  # noqa: B023
        await asyncio.sleep(rng.uniform(0.1, 1.2))
        if done.is_set():
            break
        landed += await unfinished(loop, name, crowd)
        loop.kill(name)
        loop.start(name)
        await loop.ready(name)
    return landed


async def run(loop: Loop, crowd: list[dict[str, Any]], kills: int, seed: int) -> int:
    await loop.start_all()
    done = asyncio.Event()
    kill_task = asyncio.create_task(killer(loop, crowd, kills, seed, done))
    try:
        await drive(loop, crowd)
    finally:
        done.set()
        landed = await kill_task
    await settle(loop, crowd)
    return landed


async def settle(loop: Loop, crowd: list[dict[str, Any]]) -> None:
    """Wait until every service has applied the whole load: counts that only grow reach their exact ends."""
    touches = 3 * len(crowd)
    won = sum(1 for p in crowd if p["amount"])
    checks = {
        "scoring touches": ("SELECT count(*) FROM scoring.touches", touches),
        "scoring won deals": ("SELECT count(*) FROM scoring.transitions WHERE to_stage = 'customer'", won),
        "reporting touches": ("SELECT count(*) FROM reporting.touches", touches),
        "reporting deals": ("SELECT count(*) FROM reporting.deals", won),
        "reporting assignments": ("SELECT count(*) FROM reporting.assignment_events", sum(p["mql"] for p in crowd)),
    }
    for what, (query, expected) in checks.items():
        await until(loop, lambda q=query: loop.count(q), expected, what)  # type: ignore[misc]
    loop.assert_alive()


STATE = {
    "leads": "SELECT id, email, stage, persona, segment, account_key, round(fit::numeric, 6),"
    " round(engagement::numeric, 6), grade FROM scoring.leads ORDER BY id",
    "identifiers": "SELECT identifier, lead_id FROM scoring.identifiers ORDER BY identifier",
    "transitions": "SELECT lead_id, from_stage, to_stage, cause, detail, at FROM scoring.transitions"
    " ORDER BY lead_id, id",
    "assignments per lead": "SELECT lead_id, count(*), min(status) FROM routing.assignments GROUP BY lead_id"
    " ORDER BY lead_id",
    "assignments per rep": "SELECT rep_id, count(*) FROM routing.assignments GROUP BY rep_id ORDER BY rep_id",
}
REPORTS = {
    "attribution": ("/v1/reports/attribution", {}),
    "attribution by channel": ("/v1/reports/attribution", {"by": "channel"}),
    "funnel": ("/v1/reports/funnel", {"period": "all"}),
    "marketing": ("/v1/reports/scorecards/marketing", {"period": "all"}),
}


async def end_state(loop: Loop) -> dict[str, Any]:
    state: dict[str, Any] = {name: await loop.rows(query) for name, query in STATE.items()}
    async with loop.client("reporting") as reporting:
        for name, (path, params) in REPORTS.items():
            response = await reporting.get(path, params=params)
            assert response.status_code == 200, response.text
            state[name] = response.json()
        sales = (await reporting.get("/v1/reports/scorecards/sales")).json()["rows"]
    state["sales"] = sorted((r["rep_id"], r["assigned"], r["accepted"], r["rejected"]) for r in sales)
    return state


def assert_exact(state: dict[str, Any], crowd: list[dict[str, Any]]) -> None:
    """What the load must give whatever happened: each MQL assigned once, an even split, every cent attributed."""
    mqls = sum(p["mql"] for p in crowd)
    assert len(state["assignments per lead"]) == mqls
    assert {count for _, count, _ in state["assignments per lead"]} == {1}
    assert dict(state["assignments per rep"]) == dict.fromkeys(REPS, mqls // len(REPS))
    revenue = sum(p["amount"] for p in crowd if p["amount"])
    summary = state["attribution"]["summary"]
    assert summary["won_deals"] == sum(1 for p in crowd if p["amount"])
    assert Decimal(str(summary["revenue"]["EUR"])) == revenue
    for model in state["attribution"]["models"]:
        total = sum(Decimal(str(r[f"{model}_revenue"])) for r in state["attribution"]["rows"])
        assert total == revenue, model
    assert Counter(stage for _, _, stage, *_ in state["leads"])["customer"] == summary["won_deals"]


@pytest.fixture
async def loops(stack: Stack, engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[tuple[Loop, Loop]]:
    made = [await new_loop(stack, engine, tmp_path / name, name) for name in ("straight", "killed")]
    try:
        yield made[0], made[1]
        for loop in made:
            await loop.stop_all()
    finally:
        for loop in made:
            for process in loop.processes.values():
                process.kill()
                process.wait()
            await loop.engine.dispose()


async def check_faults(loops: tuple[Loop, Loop], size: int, kills: int, seed: int) -> None:
    straight, killed = loops
    crowd = people(size, unique("p"))
    await run(straight, crowd, 0, seed)
    landed = await run(killed, crowd, kills, seed)
    assert landed == kills, f"only {landed} of {kills} kills landed while the service had work left"
    expected, got = await end_state(straight), await end_state(killed)
    assert_exact(expected, crowd)
    for name in expected:
        assert got[name] == expected[name], f"{name} differs after the kills"


async def test_each_service_killed_during_a_steady_load_ends_as_an_uninterrupted_run(
    loops: tuple[Loop, Loop],
) -> None:
    await check_faults(loops, size=48, kills=4, seed=6)


@pytest.mark.soak
async def test_services_killed_twenty_times_during_a_steady_load_end_as_an_uninterrupted_run(
    loops: tuple[Loop, Loop],
) -> None:
    await check_faults(loops, size=240, kills=20, seed=60)
