"""kill -9 a consumer process at random moments; it must end exactly where an uninterrupted run ends (DESIGN §4.3).

The process (tests/e2e/count_consumer.py) runs the real consume loop and outbox relay against the
session's PostgreSQL and broker. Each event is counted once, in order, and echoed once or more (the
relay publishes at least once) with its first copies in order.
"""

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import db
from shared.bus import Publisher, ensure_topics
from shared.events import CloudEvent
from tests.conftest import Stack
from tests.e2e.counting import (
    Counting,
    applied_records,
    counting,
    counts,
    create_schema,
    drop_schema,
    make_event,
    read_until,
    unique,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Scenario:
    stack: Stack
    engine: AsyncEngine
    counting: Counting
    topic: str
    echo_topic: str
    group: str
    log: Path
    published: list[CloudEvent[Any]]

    def start(self) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "LEADFLOW_DATABASE_URL": self.stack.pg.url,
            "LEADFLOW_KAFKA_BOOTSTRAP": self.stack.broker.bootstrap,
            "COUNT_SCHEMA": self.counting.schema,
            "COUNT_TOPIC": self.topic,
            "COUNT_ECHO_TOPIC": self.echo_topic,
            "COUNT_GROUP": self.group,
        }
        with open(self.log, "ab") as out:
            command = [sys.executable, "-m", "tests.e2e.count_consumer"]
            return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    async def records_consumed(self) -> int:
        return await applied_records(self.engine, self.counting, self.group, self.topic)

    async def finished(self) -> bool:
        async with self.engine.connect() as conn:
            pending = (await conn.execute(select(func.count()).select_from(self.counting.bus.outbox))).scalar_one()
        return pending == 0 and await self.records_consumed() == len(self.published)


@pytest.fixture
async def scenario(stack: Stack, tmp_path: Path) -> AsyncIterator[Scenario]:
    engine = db.create_engine(stack.pg.url, pool_size=2)
    c = counting(unique("test_crash"))
    await create_schema(engine, c)
    topic, echo = unique("test.crash"), unique("test.crash-echo")
    await ensure_topics(stack.broker.bootstrap, [topic, echo], 4)
    yield Scenario(stack, engine, c, topic, echo, unique("group"), tmp_path / "count_consumer.log", [])
    await drop_schema(engine, c)
    await engine.dispose()


async def publish(s: Scenario, events: list[CloudEvent[Any]]) -> None:
    publisher = Publisher(s.stack.settings)
    await publisher.start()
    try:
        for start in range(0, len(events), 500):
            await publisher.publish([(s.topic, e) for e in events[start : start + 500]])
    finally:
        await publisher.stop()
    s.published.extend(events)


def backlog(subjects: int, per_subject: int, *, first_seq: int = 1) -> list[CloudEvent[Any]]:
    names = [f"subject-{n}" for n in range(subjects)]
    return [make_event(name, seq) for seq in range(first_seq, first_seq + per_subject) for name in names]


async def run_until(s: Scenario, moment: Callable[[], Awaitable[bool]]) -> None:
    """Start the consumer process and SIGKILL it at `moment`."""
    process = s.start()
    try:
        await wait_until(lambda: _alive_and(s, process, moment), what="the moment to kill")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


async def _alive_and(s: Scenario, process: subprocess.Popen[bytes], moment: Callable[[], Awaitable[bool]]) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"consumer exited with {process.returncode}; see {s.log}")
    return await moment()


async def run_to_the_end(s: Scenario, timeout_s: float = 120) -> None:
    process = s.start()
    try:
        await wait_until(lambda: _alive_and(s, process, s.finished), timeout_s, "backlog applied")
    except AssertionError as exc:
        consumed = await s.records_consumed()
        raise AssertionError(f"{exc}: {consumed} of {len(s.published)} records consumed; see {s.log}") from exc
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0, f"unclean stop; see {s.log}"


async def assert_exactly_once(s: Scenario) -> None:
    unique_events = {e.id: e for e in s.published}
    expected: dict[str, int] = {}
    for event in unique_events.values():
        expected[event.subject or ""] = expected.get(event.subject or "", 0) + 1
    assert await counts(s.engine, s.counting) == {subject: (n, 0) for subject, n in expected.items()}
    echoed = await read_until(s.stack.broker.bootstrap, s.echo_topic, lambda rs: _ids(rs) >= set(unique_events))
    for key, ids in _first_ids_by_key(echoed).items():
        assert ids == sorted(ids, key=lambda i: unique_events[i].data.properties["seq"]), key


def _ids(records: list[ConsumerRecord]) -> set[str]:
    return {dict(r.headers)["ce_id"].decode() for r in records}


def _first_ids_by_key(records: list[ConsumerRecord]) -> dict[bytes, list[str]]:
    by_key: dict[bytes, list[str]] = {}
    for r in records:
        event_id = dict(r.headers)["ce_id"].decode()
        if event_id not in by_key.setdefault(r.key, []):
            by_key[r.key].append(event_id)
    return by_key


async def test_a_consumer_killed_three_times_applies_each_event_exactly_once(scenario: Scenario) -> None:
    rng = random.Random()
    events = backlog(subjects=40, per_subject=50)
    await publish(scenario, events + rng.sample(events, 100))  # 100 re-posted with the same ids
    total = len(scenario.published)
    for threshold in sorted(rng.sample(range(total // 10, total * 9 // 10), 3)):

        async def reached(at_least: int = threshold) -> bool:
            if await scenario.records_consumed() < at_least:
                return False
            await asyncio.sleep(rng.random() * 0.05)  # somewhere inside the next transactions
            return True

        await run_until(scenario, reached)
    await run_to_the_end(scenario)
    await assert_exactly_once(scenario)


@pytest.mark.soak
async def test_a_consumer_killed_a_hundred_times_applies_each_event_exactly_once(scenario: Scenario) -> None:
    rng = random.Random()
    for cycle in range(100):
        events = backlog(subjects=40, per_subject=5, first_seq=cycle * 5 + 1)
        await publish(scenario, events + rng.sample(scenario.published + events, 10))
        kill_at = asyncio.get_running_loop().time() + rng.uniform(0.5, 10.0)  # starting, joining, applying, idle

        async def due(at: float = kill_at) -> bool:
            return asyncio.get_running_loop().time() >= at

        await run_until(scenario, due)
    await run_to_the_end(scenario, timeout_s=300)
    await assert_exactly_once(scenario)
