"""Async SQLAlchemy: engine, sessions, and the bus tables every consuming service keeps in its own schema.

`consumer_offsets` and `processed_events` make consumption exactly-once in effect (DESIGN §4.2, §4.3):
the offset, the dedupe mark and the state change commit in one transaction. `outbox` holds outgoing
events written in that same transaction; the relay in `shared.outbox` publishes them.
"""

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


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
            Column("value", LargeBinary, nullable=False),
            Column("headers", JSONB, nullable=False),
            Column("created_at", DateTime(timezone=True), server_default=func.now(), nullable=False),
            schema=schema,
        )
