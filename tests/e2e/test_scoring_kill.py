"""kill -9 scoring while it works through a backlog: it must end in exactly the state of an uninterrupted run.

Two databases in the session's PostgreSQL, each migrated for scoring, each run with topics of its
own: one run straight through, one killed at random moments mid-backlog and restarted each time.

Touches of one person under different keys (anonymous id, email) sit on different partitions, and
the log gives no order between partitions: which of them a lead is created from may differ between
any two runs, killed or not. So the backlog comes in two phases, as a day of browsing before a
campaign would: first every anonymous touch, then (once applied) every touch with an email, each
phase a backlog worked through with kills. Then everything scoring owns is compared — leads,
identifiers, touches, stage histories, dedupe marks — and so are the lead events: the same ids with
the same content, in the same order per lead (the relay publishes at least once, so repeats of an
id are allowed, never a different order of first copies).
"""

import asyncio
import os
import random
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.scoring import backlog
from services.scoring import store
from shared import db, migrations
from shared.bus import Publisher, ensure_topics
from shared.cli import wait_ready
from shared.config import Topics
from shared.events import CloudEvent
from shared.stack import free_port
from tests.conftest import Stack
from tests.e2e.counting import read_until, unique, wait_until

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    """One scoring process lineage: its own database, consumer group and leads topic."""

    stack: Stack
    url: str
    engine: AsyncEngine
    topics: Topics
    group: str
    log: Path

    def start(self) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
        env |= {
            "LEADFLOW_DATABASE_URL": self.url,
            "LEADFLOW_KAFKA_BOOTSTRAP": self.stack.broker.bootstrap,
            "LEADFLOW_ADMIN_TOKEN": secrets.token_urlsafe(16),
            "LEADFLOW_SCORING_PORT": str(port),
            "LEADFLOW_SCORING_GROUP": self.group,
            "LEADFLOW_TOPIC_TOUCHES": self.topics.touches,
            "LEADFLOW_TOPIC_DEALS": self.topics.deals,
            "LEADFLOW_TOPIC_ASSIGNMENTS": self.topics.assignments,
            "LEADFLOW_TOPIC_LEADS": self.topics.leads,
            "LEADFLOW_TOPIC_DEAD_LETTERS": self.topics.dead_letters,
            "LEADFLOW_SCORING_MAX_BATCH": "200",  # many transactions, so kills land between and inside them
            "LEADFLOW_RECYCLE_SWEEP_S": "86400",  # the sweep reads the clock; not in this comparison
        }
        with open(self.log, "ab") as out:
            command = [sys.executable, "-m", "services.scoring"]
            return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT), port

    async def applied(self) -> int:
        t = store.TABLES.offsets
        query = select(func.coalesce(func.sum(t.c.offset + 1), 0)).where(
            t.c.group_id == self.group, t.c.topic == self.topics.touches
        )
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def finished(self, records: int) -> bool:
        async with self.engine.connect() as conn:
            pending = (await conn.execute(select(func.count()).select_from(store.TABLES.outbox))).scalar_one()
        return pending == 0 and await self.applied() == records


async def new_database(stack: Stack, engine: AsyncEngine, name: str) -> str:
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = stack.pg.url.replace("/postgres?", f"/{name}?")
    await asyncio.to_thread(migrations.upgrade, "scoring", url)
    return url


@pytest.fixture
async def runs(stack: Stack, engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[tuple[Run, Run]]:
    made: list[Run] = []
    for name in ("straight", "killed"):
        topics = Topics(
            touches=unique("test.kill-touches"),
            deals=unique("test.kill-deals"),
            assignments=unique("test.kill-assignments"),
            leads=unique(f"test.kill-leads-{name}"),
            dead_letters=unique("test.kill-dlq"),
        )
        await ensure_topics(stack.broker.bootstrap, topics.all(), 4)
        url = await new_database(stack, engine, unique(f"kill_{name}"))
        made.append(Run(stack, url, db.create_engine(url, pool_size=2), topics, unique("scoring"), tmp_path / name))
    yield made[0], made[1]
    for run in made:
        await run.engine.dispose()


async def publish(stack: Stack, topic: str, events: list[CloudEvent[Any]]) -> None:
    publisher = Publisher(stack.settings)
    await publisher.start()
    try:
        for start in range(0, len(events), 500):
            await publisher.publish([(topic, e) for e in events[start : start + 500]])
    finally:
        await publisher.stop()


async def run_to_the_end(run: Run, records: int) -> None:
    process, port = run.start()
    try:
        await asyncio.to_thread(wait_ready, "scoring", port, process)  # SIGTERM drains only once it serves
        await wait_until(lambda: alive_and_finished(run, process, records), 180, "backlog applied")
    finally:
        process.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once shut down, so a clean stop ends "killed by SIGTERM"
        assert await asyncio.to_thread(process.wait, 30) in (0, -signal.SIGTERM), f"see {run.log}"
        assert "Application shutdown complete" in run.log.read_text(), f"unclean stop; see {run.log}"


async def alive_and_finished(run: Run, process: subprocess.Popen[bytes], records: int) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"scoring exited with {process.returncode}; see {run.log}")
    return await run.finished(records)


async def kill_mid_backlog(run: Run, records: int, kills_left: int, rng: random.Random) -> bool:
    """Start scoring and SIGKILL it once it has applied a random share of what is left (split among the kills
    still to come); False when the backlog was already done, so there was nothing to interrupt."""
    before = await run.applied()
    if records - before < 2:
        return False
    target = before + rng.randrange(1, max(2, (records - before) // (kills_left + 1)))
    process, _ = run.start()
    try:

        async def moment() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"scoring exited with {process.returncode}; see {run.log}")
            return await run.applied() >= target

        await wait_until(moment, 120, f"{target} records applied")
        await asyncio.sleep(rng.random() * 0.05)  # anywhere in the next transaction
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    return True


STATE_QUERIES = {
    "leads": "SELECT id, email, profile, stage, persona, segment, account_key, round(fit::numeric, 6),"
    " round(engagement::numeric, 6), fired, grade, model_version, created_at FROM scoring.leads ORDER BY id",
    "identifiers": "SELECT identifier, lead_id, linked_at FROM scoring.identifiers ORDER BY identifier",
    "touches": "SELECT event_id, lead_id, occurred_at, type, payload FROM scoring.touches ORDER BY event_id",
    "transitions": "SELECT lead_id, from_stage, to_stage, cause, detail, at FROM scoring.transitions"
    " ORDER BY lead_id, id",
    "processed": "SELECT event_id FROM scoring.processed_events ORDER BY event_id",
    "accounts": "SELECT key, profile FROM scoring.accounts ORDER BY key",
}


async def state(run: Run) -> dict[str, list[tuple[Any, ...]]]:
    async with run.engine.connect() as conn:
        return {name: [tuple(r) for r in await conn.execute(text(q))] for name, q in STATE_QUERIES.items()}


def first_copies_by_key(records: list[ConsumerRecord]) -> dict[bytes, list[tuple[str, bytes]]]:
    """Per lead: (event id, content) of each event's first copy, in log order."""
    seen: set[str] = set()
    by_key: dict[bytes, list[tuple[str, bytes]]] = {}
    for r in records:
        event_id = dict(r.headers)["ce_id"].decode()
        if event_id not in seen:
            seen.add(event_id)
            by_key.setdefault(r.key, []).append((event_id, r.value))
    return by_key


async def lead_events(run: Run) -> dict[bytes, list[tuple[str, bytes]]]:
    """Everything on the run's leads topic: its outbox is empty, so nothing more is coming."""
    sizes: list[int] = []

    def quiet(records: list[ConsumerRecord]) -> bool:  # 2 s without a new record
        sizes.append(len(records))
        return len(sizes) > 10 and sizes[-1] == sizes[-11] > 0

    records = await read_until(run.stack.broker.bootstrap, run.topics.leads, quiet, timeout_s=60)
    return first_copies_by_key(records)


async def assert_same_end(straight: Run, killed: Run) -> None:
    expected, got = await state(straight), await state(killed)
    for table in STATE_QUERIES:
        assert got[table] == expected[table], f"{table} differs after the kills"
    expected_events, got_events = await lead_events(straight), await lead_events(killed)
    assert any(b'"absorbed"' in value for events in expected_events.values() for _, value in events), "no merge"
    assert got_events == expected_events


def phases(events: list[CloudEvent[Any]]) -> list[list[CloudEvent[Any]]]:
    anonymous = [e for e in events if (e.subject or "").startswith("anon:")]
    return [anonymous, [e for e in events if not (e.subject or "").startswith("anon:")]]


async def work_through(run: Run, people: int, kills_per_phase: list[int], rng: random.Random) -> int:
    """Publish and apply each phase, killing scoring mid-way as often as asked; the kills that landed."""
    published = landed = 0
    for phase, kills in zip(phases(backlog(people)), kills_per_phase, strict=True):
        await publish(run.stack, run.topics.touches, phase)
        published += len(phase)
        for n in range(kills):
            landed += await kill_mid_backlog(run, published, kills - n, rng)
        await run_to_the_end(run, published)
    return landed


async def check_kills(runs: tuple[Run, Run], people: int, kills_per_phase: list[int], seed: int) -> None:
    straight, killed = runs
    rng = random.Random(seed)
    await work_through(straight, people, [0, 0], rng)
    landed = await work_through(killed, people, kills_per_phase, rng)
    assert landed == sum(kills_per_phase), "every kill landed mid-backlog"
    await assert_same_end(straight, killed)


async def test_scoring_killed_three_times_mid_backlog_ends_as_an_uninterrupted_run(runs: tuple[Run, Run]) -> None:
    await check_kills(runs, people=400, kills_per_phase=[1, 2], seed=3)


@pytest.mark.soak
async def test_scoring_killed_thirty_times_mid_backlog_ends_as_an_uninterrupted_run(
    runs: tuple[Run, Run],
) -> None:
    await check_kills(runs, people=1500, kills_per_phase=[10, 20], seed=30)
