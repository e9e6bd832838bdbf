"""The outbox against the real embedded PostgreSQL and broker: in order, once per relay, through outages."""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import db, outbox
from shared.bus import Publisher, ensure_topics
from shared.events import CloudEvent
from shared.migrations import create_bus_tables, drop_bus_tables
from shared.stack import free_port, start_broker
from tests.conftest import Stack
from tests.e2e.counting import (
    Counting,
    counting,
    create_schema,
    drop_schema,
    make_event,
    read_topic,
    running,
    unique,
    wait_until,
)


@pytest.fixture
async def schema(engine: AsyncEngine) -> AsyncIterator[Counting]:
    """A schema per test: one relay per schema is the rule under test."""
    c = counting(unique("test_outbox"))
    await create_schema(engine, c)
    yield c
    await drop_schema(engine, c)


@pytest.fixture
async def topic(stack: Stack) -> str:
    name = unique("test.outbox")
    await ensure_topics(stack.broker.bootstrap, [name], 4)
    return name


@pytest.fixture
async def publisher(stack: Stack) -> AsyncIterator[Publisher]:
    publisher = Publisher(stack.settings)
    await publisher.start()
    yield publisher
    await publisher.stop()


async def add_in_transactions(engine: AsyncEngine, c: Counting, topic: str, events: list[CloudEvent[Any]]) -> None:
    sessions = db.sessionmaker(engine)
    for start in range(0, len(events), 10):
        async with sessions.begin() as session:
            for event in events[start : start + 10]:
                await outbox.add(session, c.bus, topic, event)


async def outbox_empty(engine: AsyncEngine, c: Counting) -> bool:
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(c.bus.outbox))).scalar_one() == 0


def ids_by_key(records: list[ConsumerRecord]) -> dict[bytes, list[str]]:
    by_key: dict[bytes, list[str]] = {}
    for r in records:
        by_key.setdefault(r.key, []).append(dict(r.headers)["ce_id"].decode())
    return by_key


def events_for(subjects: int, per_subject: int) -> list[CloudEvent[Any]]:
    names = [unique("s") for _ in range(subjects)]
    return [make_event(name, seq) for seq in range(1, per_subject + 1) for name in names]


def expected_by_key(events: list[CloudEvent[Any]]) -> dict[bytes, list[str]]:
    by_key: dict[bytes, list[str]] = {}
    for e in events:
        by_key.setdefault((e.subject or "").encode(), []).append(e.id)
    return by_key


async def add_then_fail(engine: AsyncEngine, c: Counting, topic: str) -> None:
    async with db.sessionmaker(engine).begin() as session:
        await outbox.add(session, c.bus, topic, make_event(unique("rolled-back"), 1))
        raise RuntimeError("the state change failed")


async def test_outbox_rows_are_published_in_order_and_deleted_and_rolled_back_rows_never(
    stack: Stack, engine: AsyncEngine, schema: Counting, publisher: Publisher, topic: str
) -> None:
    events = events_for(subjects=3, per_subject=20)
    await add_in_transactions(engine, schema, topic, events)
    with pytest.raises(RuntimeError):
        await add_then_fail(engine, schema, topic)
    async with running(outbox.relay(engine, schema.bus, publisher)):
        records = await read_topic(stack.broker.bootstrap, topic, at_least=len(events))
        await wait_until(lambda: outbox_empty(engine, schema), what="outbox emptied")
    assert ids_by_key(records) == expected_by_key(events)
    first = records[0]
    assert dict(first.headers)["ce_type"] == b"leadflow.touch.custom.v1"
    assert first.value.startswith(b"{")


async def test_two_relays_on_one_schema_publish_each_row_once_and_the_second_takes_over(
    stack: Stack, engine: AsyncEngine, schema: Counting, publisher: Publisher, topic: str
) -> None:
    events = events_for(subjects=5, per_subject=30)
    relays = [outbox.relay(engine, schema.bus, publisher, lock_wait_s=0.1) for _ in range(2)]
    async with contextlib.AsyncExitStack() as both:
        first = await both.enter_async_context(running(relays[0]))
        await add_in_transactions(engine, schema, topic, events[:50])
        await wait_until(lambda: outbox_empty(engine, schema), what="first rows relayed")
        await both.enter_async_context(running(relays[1]))  # waits for the lock the first one holds
        await add_in_transactions(engine, schema, topic, events[50:100])
        await wait_until(lambda: outbox_empty(engine, schema), what="more rows relayed")
        first.cancel()
        await add_in_transactions(engine, schema, topic, events[100:])
        records = await read_topic(stack.broker.bootstrap, topic, at_least=len(events))
        await wait_until(lambda: outbox_empty(engine, schema), what="outbox emptied by the second relay")
    assert ids_by_key(records) == expected_by_key(events)


async def test_a_relay_started_while_the_broker_is_down_delivers_once_it_is_back(
    stack: Stack, engine: AsyncEngine, schema: Counting
) -> None:
    port = free_port()
    settings = stack.settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{port}", "publish_timeout_s": 1.0})
    publisher = Publisher(settings)
    await publisher.start()  # nobody listens yet: it keeps trying in the background
    topic, events = unique("test.outbox"), events_for(subjects=4, per_subject=10)
    await add_in_transactions(engine, schema, topic, events)
    broker = None
    try:
        async with running(outbox.relay(engine, schema.bus, publisher)):
            assert not await outbox_empty(engine, schema)
            broker = start_broker(port, stack.folder / f"broker-{port}.log")
            await ensure_topics(broker.bootstrap, [topic], 4)
            records = await read_topic(broker.bootstrap, topic, at_least=len(events))
            await wait_until(lambda: outbox_empty(engine, schema), what="outbox emptied")
    finally:
        await publisher.stop()
        if broker is not None:
            broker.stop()
    assert ids_by_key(records) == expected_by_key(events)


async def test_one_call_in_a_migration_creates_the_bus_tables_and_one_drops_them(
    stack: Stack, engine: AsyncEngine
) -> None:
    c = counting(unique("test_migration"))
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{c.schema}"'))
        await conn.run_sync(lambda sync: create_bus_tables(Operations(MigrationContext.configure(sync)), c.schema))
    async with db.sessionmaker(engine).begin() as session:
        await outbox.add(session, c.bus, "any.topic", make_event("s", 1))
        assert await db.save_offset_and_first_time(session, c.bus, "g", "any.topic", 0, 7, "event-1")
        assert not await db.first_time(session, c.bus, "event-1")
        assert await db.stored_offsets(session, c.bus, "g", ["any.topic"]) == {("any.topic", 0): 7}
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: drop_bus_tables(Operations(MigrationContext.configure(sync)), c.schema))
        tables = await conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = :s"), {"s": c.schema})
        assert tables.scalar_one() == 0
        await conn.execute(text(f'DROP SCHEMA "{c.schema}"'))
