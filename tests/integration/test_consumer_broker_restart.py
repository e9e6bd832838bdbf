"""A memory-only broker that restarts forgets its logs while the database remembers offsets into them.

These tests restart a broker of their own on its own port (the way `Stack.restart_broker` does), so the
session broker, the `tail` fixture and every other test keep working whatever happens here.
"""

from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import db
from shared.bus import Publisher, ensure_topics
from shared.config import LeadflowSettings, Topics
from shared.consumer import consume
from shared.events import CloudEvent
from shared.stack import EmbeddedBroker, free_port, start_broker
from tests.conftest import Stack
from tests.e2e.counting import (
    Counting,
    applied_records,
    counter,
    counting,
    counts,
    create_schema,
    drop_schema,
    make_event,
    running,
    unique,
    wait_until,
)


class RestartableBroker:
    def __init__(self, stack: Stack) -> None:
        self.port = free_port()
        self.log = stack.folder / f"broker-{self.port}.log"
        self.broker: EmbeddedBroker = start_broker(self.port, self.log)

    def restart(self) -> None:
        """Kill it and start an empty one on the same port, as after a crash."""
        self.broker.kill()
        self.broker = start_broker(self.port, self.log)


@pytest.fixture
def broker(stack: Stack) -> Iterator[RestartableBroker]:
    broker = RestartableBroker(stack)
    yield broker
    broker.broker.stop()


@pytest.fixture
async def schema(engine: AsyncEngine) -> AsyncIterator[Counting]:
    c = counting(unique("test_bus"))
    await create_schema(engine, c)
    yield c
    await drop_schema(engine, c)


@pytest.fixture
def settings(stack: Stack, broker: RestartableBroker) -> LeadflowSettings:
    topics = Topics(dead_letters=unique("test.dlq"))
    return stack.settings.model_copy(update={"kafka_bootstrap": broker.broker.bootstrap, "topics": topics})


@pytest.fixture
async def publisher(settings: LeadflowSettings) -> AsyncIterator[Publisher]:
    publisher = Publisher(settings)
    await publisher.start()
    yield publisher
    await publisher.stop()


async def create_topics(settings: LeadflowSettings, topic: str) -> None:
    await ensure_topics(settings.kafka_bootstrap, [topic, settings.topics.dead_letters], 4)


async def publish(publisher: Publisher, topic: str, events: list[CloudEvent[Any]]) -> None:
    await publisher.publish([(topic, e) for e in events])


async def applied(engine: AsyncEngine, c: Counting, expected: dict[str, int]) -> bool:
    got = await counts(engine, c)
    return all(got.get(subject, (0, 0))[0] == n for subject, n in expected.items())


def counting_consumer(
    settings: LeadflowSettings, engine: AsyncEngine, c: Counting, publisher: Publisher, group: str, topic: str
) -> Coroutine[Any, Any, None]:
    options = {"session_timeout_ms": 3000, "heartbeat_interval_ms": 500}
    sessions = db.sessionmaker(engine)
    return consume(settings, sessions, c.bus, publisher, counter(c), group=group, topics=[topic], kafka_options=options)


async def test_a_consumer_running_across_a_broker_restart_reads_the_new_log_from_its_beginning(
    settings: LeadflowSettings, broker: RestartableBroker, engine: AsyncEngine, schema: Counting, publisher: Publisher
) -> None:
    topic, group = unique("test.restart"), unique("group")
    await create_topics(settings, topic)
    before, after = logs()
    async with running(counting_consumer(settings, engine, schema, publisher, group, topic)):
        await publish(publisher, topic, before)
        await wait_until(lambda: _records(engine, schema, group, topic, len(before)), what="first log applied")
        broker.restart()
        await create_topics(settings, topic)
        await publish(publisher, topic, after)
        await wait_until(lambda: applied(engine, schema, _expected(after, 5)), what="new log applied")


async def test_a_consumer_started_after_a_broker_restart_does_not_wait_for_offsets_the_broker_forgot(
    settings: LeadflowSettings, broker: RestartableBroker, engine: AsyncEngine, schema: Counting, publisher: Publisher
) -> None:
    topic, group = unique("test.restart"), unique("group")
    await create_topics(settings, topic)
    before, after = logs()
    await publish(publisher, topic, before)
    async with running(counting_consumer(settings, engine, schema, publisher, group, topic)):
        await wait_until(lambda: _records(engine, schema, group, topic, len(before)), what="first log applied")
    broker.restart()
    await create_topics(settings, topic)
    await publish(publisher, topic, after)
    async with running(counting_consumer(settings, engine, schema, publisher, group, topic)):
        await wait_until(lambda: applied(engine, schema, _expected(after, 5)), what="new log applied")


async def _records(engine: AsyncEngine, c: Counting, group: str, topic: str, n: int) -> bool:
    return await applied_records(engine, c, group, topic) >= n


def _expected(events: list[CloudEvent[Any]], n: int) -> dict[str, int]:
    return {e.subject or "": n for e in events}


def logs() -> tuple[list[CloudEvent[Any]], list[CloudEvent[Any]]]:
    """Four events per subject before the restart, one after: each partition's new log ends before its old one."""
    subjects = [unique("s") for _ in range(10)]
    before = [make_event(s, seq) for seq in range(1, 5) for s in subjects]
    return before, [make_event(s, 5) for s in subjects]
