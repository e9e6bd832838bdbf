"""`leadflow demo` against the four services as separate processes: leads scored, routed, worked, revenue attributed.

The services run on a database, topics and consumer groups of their own on the session's PostgreSQL and broker,
with a 2-second SLA sweep so the rep who never answers breaches within the test.
"""

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from shared import db, migrations
from shared.bus import ensure_topics
from shared.cli import SERVICES, wait_ready
from shared.config import Topics
from shared.demo import CAMPAIGNS, Demo, Urls, build_world, strings
from shared.stack import free_port
from tests.conftest import ADMIN_TOKEN, SECRET_KEY, Stack

ROOT = Path(__file__).resolve().parents[2]


async def own_database(stack: Stack, name: str) -> str:
    engine = db.create_engine(stack.pg.url, pool_size=1)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()
    return stack.pg.url.replace("/postgres?", f"/{name}?")


@pytest.fixture(scope="module")
def services(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Urls]:
    tag = uuid.uuid4().hex[:8]
    topics = Topics(
        touches=f"demo-{tag}.touches",
        deals=f"demo-{tag}.deals",
        leads=f"demo-{tag}.leads",
        assignments=f"demo-{tag}.assignments",
        dead_letters=f"demo-{tag}.dlq",
    )
    asyncio.run(ensure_topics(stack.broker.bootstrap, topics.all(), 4))
    url = asyncio.run(own_database(stack, f"demo_{tag}"))
    for name in SERVICES:
        migrations.upgrade(name, url)
    ports = {name: free_port() for name in SERVICES}
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")} | {
        "LEADFLOW_DATABASE_URL": url,
        "LEADFLOW_KAFKA_BOOTSTRAP": stack.broker.bootstrap,
        "LEADFLOW_ADMIN_TOKEN": ADMIN_TOKEN,
        "LEADFLOW_SECRET_KEY": SECRET_KEY,
        "LEADFLOW_LOG_LEVEL": "WARNING",
        "LEADFLOW_SLA_SWEEP_S": "2",
        "LEADFLOW_BOOTSTRAP_RESAMPLES": "10",
        **{f"LEADFLOW_TOPIC_{k.upper()}": v for k, v in topics.model_dump().items()},
        **{f"LEADFLOW_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        **{f"LEADFLOW_{name.upper()}_GROUP": f"demo-{tag}-{name}" for name in SERVICES},
    }
    folder = tmp_path_factory.mktemp("demo")
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in SERVICES:
            with open(folder / f"{name}.log", "ab") as log:
                processes[name] = subprocess.Popen(
                    [sys.executable, "-m", f"services.{name}"], cwd=ROOT, env=env, stdout=log, stderr=log
                )
        for name in SERVICES:
            wait_ready(name, ports[name], processes[name], 90)
        yield Urls(*(f"http://127.0.0.1:{ports[name]}" for name in SERVICES))
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def get(url: str, **params: Any) -> Any:
    response = httpx.get(url, params=params, timeout=30)
    assert response.status_code == 200, f"{url}: {response.status_code} {response.text[:500]}"
    return response.json()


def eventually(check: Any, timeout_s: float = 60) -> Any:
    """Reporting and scoring catch up asynchronously: poll until `check()` returns a truthy value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(1)


def since() -> str:
    return (datetime.now(UTC) - timedelta(days=120)).date().isoformat()


def attribution(urls: Urls) -> dict[str, Any]:
    body: dict[str, Any] = get(f"{urls.reporting}/v1/reports/attribution", since=since(), period="all", limit=1000)
    return body


def test_the_demo_fills_the_loop_with_a_coherent_story(services: Urls) -> None:
    demo = Demo(services, ADMIN_TOKEN, seed=7, scale=120, settle_s=10)
    summary = asyncio.run(demo.run())
    assert summary["accepted"] > 0, summary
    assert summary["rejected"] > 0, summary
    assert summary["won"] > 0, summary
    assert summary["lost"] > 0, summary

    # Every MQL was placed, and what sales did is what reporting counts.
    seen: list[Any] = []

    def scorecard() -> list[dict[str, Any]]:
        url = f"{services.reporting}/v1/reports/scorecards/sales"
        rows: list[dict[str, Any]] = get(url, by="rep", since=since(), period="all")["rows"]
        seen[:] = rows
        decided = (sum(r["accepted"] for r in rows), sum(r["rejected"] for r in rows))
        return rows if decided == (summary["accepted"], summary["rejected"]) else []

    reps = eventually(scorecard)
    assert reps, f"sales scorecard never matched {summary}: {seen}"
    ghost = next(r for r in reps if r["rep_id"] == "ghost")
    assert ghost["sla_breaches"] > 0, ghost
    assert ghost["accepted"] == 0, ghost
    assert sum(r["assigned"] for r in reps) >= summary["accepted"] + summary["rejected"]

    # Scoring saw it too: a lead that won went through MQL and carries its won deal as an outcome.
    lead_id, deal = next(iter(demo.won_by_lead.items()))
    assert "mql" in set(strings(get(f"{services.scoring}/v1/leads/{lead_id}")))
    outcomes = eventually(lambda: deal in set(strings(get(f"{services.scoring}/v1/leads/{lead_id}/outcomes"))))
    assert outcomes, f"no outcome {deal} for {lead_id}"

    # Won revenue arrives whole, and every model splits the attributable part of it exactly.
    won = Decimal(summary["won_revenue"])
    report = eventually(
        lambda: (r := attribution(services)) and Decimal(str(r["summary"]["revenue"].get("USD", 0))) == won and r
    )
    assert report, "reporting never saw the won revenue"
    unattributed = Decimal(str(report["summary"]["unattributed_revenue"].get("USD", 0)))
    campaigns = [r for r in report["rows"] if r["campaign"] != "(unattributed)"]
    for model in ("first_touch", "last_touch", "linear", "u_shaped", "w_shaped", "time_decay", "markov"):
        assert sum(Decimal(str(r[f"{model}_revenue"])) for r in campaigns) == won - unattributed, model
    assert won - unattributed > 0

    # The story: the webinar and the account-based campaign earn more per dollar than paid search.
    costs = {c.id: c.cost for c in CAMPAIGNS}
    per_cost = {
        r["campaign"]: Decimal(str(r["linear_revenue"])) / costs[r["campaign"]]
        for r in campaigns
        if r["campaign"] in costs
    }
    best_quality = max(per_cost.get("webinar-q4", Decimal(0)), per_cost.get("linkedin-abm", Decimal(0)))
    assert best_quality > per_cost.get("google-ads", Decimal(0)), per_cost


def test_the_same_seed_builds_the_same_world_and_another_seed_another() -> None:
    now = datetime(2026, 11, 24, tzinfo=UTC)

    def shape(seed: int) -> list[tuple[str, str, bool, str | None, bool, int, datetime]]:
        world = build_world(seed, 300, now)
        return [(p.email, p.campaign.id, p.good, p.junk, p.wins, p.amount, p.start) for p in world.people]

    assert shape(7) == shape(7)
    assert shape(7) != shape(8)
    people = build_world(7, 2000, now).people
    good = {
        c.id: sum(p.good for p in people if p.campaign is c) / sum(p.campaign is c for p in people) for c in CAMPAIGNS
    }
    assert good["webinar-q4"] > good["google-ads"] > good["content-syndication"], good
