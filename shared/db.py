"""Async SQLAlchemy: engine, sessions, and the bus tables every consuming service keeps in its own schema.

`consumer_offsets` and `processed_events` make consumption exactly-once in effect (DESIGN §4.2, §4.3):
the offset, the dedupe mark and the state change commit in one transaction. `outbox` holds outgoing
events written in that same transaction; the relay in `shared.outbox` publishes them.
"""

import functools
import json
from collections.abc import Collection
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, Insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.sql.dml import ReturningInsert


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # integers beyond 64 bits: JSONB keeps them, orjson does not write them
        return json.dumps(value)


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """JSONB through orjson: profiles, payloads and outbox headers are most of what the consumers read and write."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        json_serializer=_json_text,
        json_deserializer=orjson.loads,
    )


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


class BusTables:
    """The per-schema tables behind exactly-once consumption and the outbox."""

    def __init__(self, metadata: MetaData) -> None:
        schema = metadata.schema
        self.offsets = Table(
            "consumer_offsets",
            metadata,
            Column("group_id", String(200), primary_key=True),
            Column("topic", String(200), primary_key=True),
            Column("partition", Integer, primary_key=True),
            Column("offset", BigInteger, nullable=False),
            Column("updated_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
            schema=schema,
        )
        self.processed = Table(
            "processed_events",
            metadata,
            Column("event_id", String(300), primary_key=True),
            Column("processed_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
            schema=schema,
        )
        self.outbox = Table(
            "outbox",
            metadata,
            Column("id", BigInteger, primary_key=True, autoincrement=True),
            Column("topic", String(200), nullable=False),
            Column("key", LargeBinary, nullable=True),
            Column("value", LargeBinary, nullable=True),  # None: a tombstone (compaction drops the key)
            Column("headers", JSONB, nullable=False),
            Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
            schema=schema,
        )

    def all(self) -> list[Table]:
        return [self.offsets, self.processed, self.outbox]


# Built once per schema with bind parameters: constructing them per record cost more CPU than running them.
@functools.cache
def _offset_upsert(tables: BusTables) -> Insert:
    stmt = pg_insert(tables.offsets).values(
        group_id=bindparam("o_group"),
        topic=bindparam("o_topic"),
        partition=bindparam("o_partition"),
        offset=bindparam("o_offset"),
    )
    return stmt.on_conflict_do_update(
        index_elements=["group_id", "topic", "partition"],
        set_={"offset": stmt.excluded.offset, "updated_at": func.now()},
    )


@functools.cache
def _event_id_insert(tables: BusTables) -> ReturningInsert[Any]:
    stmt = pg_insert(tables.processed).values(event_id=bindparam("e_id")).on_conflict_do_nothing()
    return stmt.returning(tables.processed.c.event_id)


@functools.cache
def _offset_upsert_and_event_id_insert(tables: BusTables) -> ReturningInsert[Any]:
    return _event_id_insert(tables).add_cte(_offset_upsert(tables).cte("stored_offset"))


def _offset_params(group: str, topic: str, partition: int, offset: int) -> dict[str, Any]:
    return {"o_group": group, "o_topic": topic, "o_partition": partition, "o_offset": offset}


async def save_offset(
    session: AsyncSession, tables: BusTables, group: str, topic: str, partition: int, offset: int
) -> None:
    """Upsert the offset of the record being applied; it commits with the record's effects or not at all."""
    await session.execute(_offset_upsert(tables), _offset_params(group, topic, partition, offset))


async def first_time(session: AsyncSession, tables: BusTables, event_id: str) -> bool:
    """Record the event id; False when it was recorded before (a redelivered or re-posted event)."""
    return (await session.execute(_event_id_insert(tables), {"e_id": event_id})).first() is not None


async def first_times(session: AsyncSession, tables: BusTables, event_ids: Collection[str]) -> set[str]:
    """`first_time` for many ids in one statement: the ids not recorded before."""
    if not event_ids:
        return set()
    stmt = pg_insert(tables.processed).values([{"event_id": i} for i in set(event_ids)]).on_conflict_do_nothing()
    return set((await session.execute(stmt.returning(tables.processed.c.event_id))).scalars())


async def save_offset_and_first_time(
    session: AsyncSession, tables: BusTables, group: str, topic: str, partition: int, offset: int, event_id: str
) -> bool:
    """`save_offset` and `first_time` in one statement: one round trip less per consumed record."""
    params = {**_offset_params(group, topic, partition, offset), "e_id": event_id}
    return (await session.execute(_offset_upsert_and_event_id_insert(tables), params)).first() is not None


async def stored_offsets(
    session: AsyncSession, tables: BusTables, group: str, topics: Collection[str]
) -> dict[tuple[str, int], int]:
    """The last applied offset per (topic, partition) of a consumer group."""
    t = tables.offsets
    rows = await session.execute(
        select(t.c.topic, t.c.partition, t.c.offset).where(t.c.group_id == group, t.c.topic.in_(list(topics)))
    )
    return {(topic, partition): offset for topic, partition, offset in rows}
