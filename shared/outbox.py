"""Outgoing events: written in the caller's transaction, published by one relay per schema (DESIGN §4.3).

`add` puts the record (CloudEvents binary mode, exactly what `to_record` gives) in `<schema>.outbox`,
so it exists if and only if the state change that caused it committed. `relay` publishes rows in id
order with acks=all and deletes them after the ack. Only the replica holding the schema's advisory
lock relays, so a key's events leave in the order they were committed (the consume loop commits a
key's transactions one after the other). Publishing is at least once (a crash between ack and delete
sends a batch again); consumers drop the repeats by event id.
"""

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from shared.bus import Publisher, RawRecord
from shared.consumer import backoff, is_transient, retry_transient
from shared.db import BusTables
from shared.events import CloudEvent, to_record

log = logging.getLogger(__name__)

LOCK_SPACE = 0x0B0C  # first key of the two-key advisory lock; the second is hashtext(schema)


async def add(session: AsyncSession, tables: BusTables, topic: str, event: CloudEvent[Any]) -> None:
    key, value, headers = to_record(event)
    row = {"topic": topic, "key": key, "value": value, "headers": [[k, v.decode()] for k, v in headers]}
    await session.execute(tables.outbox.insert().values(row))


async def add_many(session: AsyncSession, tables: BusTables, topic: str, events: Sequence[CloudEvent[Any]]) -> None:
    """`add` for many events in one statement; they are relayed in the order given."""
    rows = []
    for event in events:
        key, value, headers = to_record(event)
        rows.append({"topic": topic, "key": key, "value": value, "headers": [[k, v.decode()] for k, v in headers]})
    if rows:
        await session.execute(tables.outbox.insert(), rows)


async def add_tombstone(session: AsyncSession, tables: BusTables, topic: str, key: bytes) -> None:
    """A record with no value: on a compacted topic it removes every earlier record of the key (erasure)."""
    await session.execute(tables.outbox.insert().values(topic=topic, key=key, value=None, headers=[]))


def _record(row: Row[Any]) -> RawRecord:
    return row.topic, row.key, row.value, [(k, v.encode()) for k, v in row.headers]


async def _take_lock(conn: AsyncConnection, schema: str, wait_s: float) -> None:
    """Wait until this connection holds the schema's relay lock (released when the connection ends)."""
    lock = select(func.pg_try_advisory_lock(LOCK_SPACE, func.hashtext(schema)))
    while True:
        if (await conn.execute(lock)).scalar_one():
            break
        await asyncio.sleep(wait_s)  # another replica relays; take over when its connection ends
    log.info("outbox relay holds the lock", extra={"schema": schema})


async def _publish(publisher: Publisher, records: list[RawRecord]) -> None:
    """Broker outages are waited out with the batch kept, so nothing after it overtakes it."""
    await retry_transient("outbox publish", lambda: publisher.publish_raw_many(records))


async def _relay_batches(
    conn: AsyncConnection, tables: BusTables, publisher: Publisher, batch_size: int, poll_s: float
) -> None:
    outbox = tables.outbox
    pending = select(outbox).order_by(outbox.c.id).limit(batch_size)
    while True:
        rows = (await conn.execute(pending)).all()
        if rows:
            await _publish(publisher, [_record(r) for r in rows])
            await conn.execute(delete(outbox).where(outbox.c.id.in_([r.id for r in rows])))
        if len(rows) < batch_size:
            await asyncio.sleep(poll_s)


async def relay(
    engine: AsyncEngine,
    tables: BusTables,
    publisher: Publisher,
    *,
    batch_size: int = 500,
    poll_s: float = 0.05,
    lock_wait_s: float = 1.0,
) -> None:
    """Publish outbox rows in id order until cancelled; one relay per schema across replicas.

    The lock and the rows share one autocommit connection: if it dies the lock goes with it, and the
    relay reconnects and competes for the lock again.
    """
    schema = tables.outbox.schema or "public"
    tries = 0
    while True:
        try:
            async with engine.connect() as conn:
                try:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    await _take_lock(conn, schema, lock_wait_s)
                    tries = 0
                    await _relay_batches(conn, tables, publisher, batch_size, poll_s)
                finally:
                    await conn.invalidate()  # closes the session and so frees the lock; a pooled one would keep it
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("outbox relay lost its connection; reconnecting", extra={"error": repr(exc)})
        await asyncio.sleep(backoff(tries))
        tries += 1
