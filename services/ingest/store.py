"""The ingest schema: sources with their credentials, per-source daily counts, QR codes."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    LargeBinary,
    MetaData,
    String,
    Table,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

metadata = MetaData(schema="ingest")

sources = Table(
    "sources",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("write_key_hash", String(64), unique=True),
    Column("url_secret_hash", String(64)),
    Column("signing_secret_encrypted", LargeBinary),
    Column("public_key", String(4000)),
    Column("rate_limit_per_s", Float, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default="true"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("disabled_at", DateTime(timezone=True)),
)

source_counts = Table(
    "source_counts",
    metadata,
    Column("source_id", String(40), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("accepted", BigInteger, nullable=False, server_default="0"),
    Column("rejected", BigInteger, nullable=False, server_default="0"),
)

qr_codes = Table(
    "qr_codes",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("source_id", String(40), nullable=False),
    Column("campaign_id", String(200), nullable=False),
    Column("target_url", String(4096), nullable=False),
    Column("name", String(200)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


@dataclass(frozen=True)
class Source:
    id: str
    name: str
    kind: str
    rate_limit_per_s: float
    enabled: bool
    created_at: datetime
    write_key_hash: str | None = None
    url_secret_hash: str | None = None
    signing_secret_encrypted: bytes | None = None
    public_key: str | None = None
    disabled_at: datetime | None = None


def _source(row: Mapping[Any, Any]) -> Source:
    return Source(**{k: row[k] for k in Source.__dataclass_fields__})


async def add_source(session: AsyncSession, source: Source) -> None:
    values = {k: getattr(source, k) for k in Source.__dataclass_fields__}
    await session.execute(sources.insert().values(**values))


async def load_source(session: AsyncSession, source_id: str) -> Source | None:
    row = (await session.execute(select(sources).where(sources.c.id == source_id))).mappings().first()
    return _source(row) if row else None


async def load_source_by_write_key(session: AsyncSession, write_key_hash: str) -> Source | None:
    query = select(sources).where(sources.c.write_key_hash == write_key_hash)
    row = (await session.execute(query)).mappings().first()
    return _source(row) if row else None


async def list_sources(session: AsyncSession) -> list[Source]:
    rows = (await session.execute(select(sources).order_by(sources.c.created_at))).mappings()
    return [_source(r) for r in rows]


async def set_source_enabled(session: AsyncSession, source_id: str, enabled: bool) -> Source | None:
    query = (
        update(sources)
        .where(sources.c.id == source_id)
        .values(enabled=enabled, disabled_at=None if enabled else func.now())
        .returning(sources)
    )
    row = (await session.execute(query)).mappings().first()
    return _source(row) if row else None


async def add_counts(session: AsyncSession, day: date, counts: Mapping[str, tuple[int, int]]) -> None:
    """Add (accepted, rejected) per source to the day's totals."""
    if not counts:
        return
    rows = [{"source_id": s, "day": day, "accepted": a, "rejected": r} for s, (a, r) in counts.items()]
    stmt = insert(source_counts).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[source_counts.c.source_id, source_counts.c.day],
        set_={
            "accepted": source_counts.c.accepted + stmt.excluded.accepted,
            "rejected": source_counts.c.rejected + stmt.excluded.rejected,
        },
    )
    await session.execute(stmt)


async def load_counts(session: AsyncSession, source_id: str, since: date) -> list[tuple[date, int, int]]:
    query = (
        select(source_counts.c.day, source_counts.c.accepted, source_counts.c.rejected)
        .where(source_counts.c.source_id == source_id, source_counts.c.day >= since)
        .order_by(source_counts.c.day)
    )
    return [(r.day, r.accepted, r.rejected) for r in await session.execute(query)]


@dataclass(frozen=True)
class QrCode:
    code: str
    source_id: str
    campaign_id: str
    target_url: str
    name: str | None
    created_at: datetime


async def add_qr_code(session: AsyncSession, qr: QrCode) -> None:
    values = {k: getattr(qr, k) for k in QrCode.__dataclass_fields__}
    await session.execute(qr_codes.insert().values(**values))


async def load_qr_code(session: AsyncSession, code: str) -> QrCode | None:
    row = (await session.execute(select(qr_codes).where(qr_codes.c.code == code))).mappings().first()
    return QrCode(**{k: row[k] for k in QrCode.__dataclass_fields__}) if row else None


async def list_qr_codes(session: AsyncSession, campaign_id: str | None = None) -> list[QrCode]:
    query = select(qr_codes).order_by(qr_codes.c.created_at)
    if campaign_id is not None:
        query = query.where(qr_codes.c.campaign_id == campaign_id)
    rows = (await session.execute(query)).mappings()
    return [QrCode(**{k: r[k] for k in QrCode.__dataclass_fields__}) for r in rows]
