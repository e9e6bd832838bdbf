"""A tiny consuming service for the bus tests: counts events per subject in its own throwaway schema.

Each event carries a per-subject sequence number; the handler counts how often a subject's events
arrive out of order, so order (DESIGN §4.4) is checked by the same state that checks exactly-once.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, case, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared import outbox
from shared.consumer import Handler
from shared.db import BusTables
from shared.events import CloudEvent, CustomTracked, Identity, event_for

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Counting:
    schema: str
    metadata: MetaData
    bus: BusTables
    counts: Table


def counting(schema: str) -> Counting:
    metadata = MetaData(schema=schema)
    counts = Table(
        "counts",
        metadata,
        Column("subject", String(200), primary_key=True),
        Column("n", Integer, nullable=False),
        Column("last_seq", BigInteger, nullable=False),
        Column("out_of_order", Integer, nullable=False),
    )
    return Counting(schema, metadata, BusTables(metadata), counts)


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def create_schema(engine: AsyncEngine, c: Counting) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{c.schema}"'))
        await conn.run_sync(c.metadata.create_all)


async def drop_schema(engine: AsyncEngine, c: Counting) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA "{c.schema}" CASCADE'))


def make_event(subject: str, seq: int, *, event_id: str | None = None) -> CloudEvent[Any]:
    data = CustomTracked(identity=Identity(anonymous_id=subject), event="counted", properties={"seq": seq})
    return event_for(data, id=event_id or f"{subject}-{seq}", source="/test/counting", received_at=T0)


async def count(session: AsyncSession, c: Counting, event: CloudEvent[Any]) -> None:
    seq = int(event.data.properties["seq"])
    stmt = pg_insert(c.counts).values(subject=event.subject, n=1, last_seq=seq, out_of_order=0)
    late = case((stmt.excluded.last_seq <= c.counts.c.last_seq, 1), else_=0)
    stmt = stmt.on_conflict_do_update(
        index_elements=["subject"],
        set_={
            "n": c.counts.c.n + 1,
            "last_seq": stmt.excluded.last_seq,
            "out_of_order": c.counts.c.out_of_order + late,
        },
    )
    await session.execute(stmt)


def counter(c: Counting, *, echo_topic: str | None = None) -> Handler:
    """The handler: count the event and, with `echo_topic`, send it on through the outbox."""

    async def handle(session: AsyncSession, event: CloudEvent[Any], _record: ConsumerRecord) -> None:
        await count(session, c, event)
        if echo_topic is not None:
            await outbox.add(session, c.bus, echo_topic, event)

    return handle


async def counts(engine: AsyncEngine, c: Counting) -> dict[str, tuple[int, int]]:
    """Per subject: (events applied, events applied out of order)."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(c.counts.c.subject, c.counts.c.n, c.counts.c.out_of_order))
        return {subject: (n, late) for subject, n, late in rows}


async def applied_records(engine: AsyncEngine, c: Counting, group: str, topic: str) -> int:
    """Records consumed so far (applied, skipped or dead-lettered): stored offset + 1 summed over partitions."""
    t = c.bus.offsets
    query = select(func.coalesce(func.sum(t.c.offset + 1), 0)).where(t.c.group_id == group, t.c.topic == topic)
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


async def wait_until(check: Callable[[], Awaitable[bool]], timeout_s: float = 60, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not reached after {timeout_s}s")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(work: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    """Run `work` as a task; cancel it on the way out and surface its error if it failed."""
    task = asyncio.create_task(work)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def read_topic(bootstrap: str, topic: str, at_least: int, timeout_s: float = 30) -> list[ConsumerRecord]:
    """Every record of `topic` from the beginning, once at least `at_least` have arrived."""
    return await read_until(bootstrap, topic, lambda records: len(records) >= at_least, timeout_s)


async def read_until(
    bootstrap: str, topic: str, done: Callable[[list[ConsumerRecord]], bool], timeout_s: float = 30
) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[ConsumerRecord] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not done(records):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"only {len(records)} records on {topic} after {timeout_s}s")
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()
