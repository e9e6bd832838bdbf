"""The scoring schema: leads, their identifiers, stored touches, stage transitions and model versions."""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import BusTables

metadata = MetaData(schema="scoring")
TABLES = BusTables(metadata)

leads = Table(
    "leads",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("email", String(320)),
    Column("profile", JSONB, nullable=False),
    Column("stage", String(30)),
    Column("persona", String(100)),
    Column("segment", String(100)),
    Column("account_key", String(400)),
    Column("fit", Float, nullable=False, server_default="0"),
    Column("engagement", Float, nullable=False, server_default="0"),
    Column("fired", Integer, nullable=False, server_default="0"),
    Column("grade", String(8)),
    Column("model_version", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("leads_updated_at", "updated_at"),
)
identifiers = Table(
    "identifiers",
    metadata,
    Column("identifier", String(400), primary_key=True),
    Column("lead_id", String(64), nullable=False, index=True),
    Column("linked_at", DateTime(timezone=True), nullable=False),
)
touches = Table(
    "touches",
    metadata,
    Column("event_id", String(300), primary_key=True),
    Column("lead_id", String(64), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("type", String(100), nullable=False),
    Column("payload", JSONB, nullable=False),
    Index("touches_lead_time", "lead_id", "occurred_at"),
)
transitions = Table(
    "transitions",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("lead_id", String(64), nullable=False, index=True),
    Column("from_stage", String(30)),
    Column("to_stage", String(30), nullable=False),
    Column("cause", String(200), nullable=False),
    Column("detail", String(1000)),
    Column("at", DateTime(timezone=True), nullable=False),
)
accounts = Table(
    "accounts",
    metadata,
    Column("key", String(400), primary_key=True),
    Column("profile", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
model_versions = Table(
    "model_versions",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("body", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("active", Boolean, nullable=False, server_default="false"),
)


@dataclass(frozen=True)
class Owner:
    """A lead owning one of a touch's identifiers, as identity resolution needs it."""

    identifier: str
    lead_id: str
    created_at: datetime
    email: str | None


async def lock_identifiers(session: AsyncSession, names: Sequence[str]) -> None:
    """Serialise every transaction touching one of these identifiers, existing or not."""
    await _lock_all(session, "scoring.identifier", names)


async def lock_accounts(session: AsyncSession, keys: Sequence[str]) -> None:
    """Serialise the transactions that merge company facts into the same accounts."""
    await _lock_all(session, "scoring.account", keys)


async def _lock_all(session: AsyncSession, space: str, names: Sequence[str]) -> None:
    """Transaction-scoped advisory locks, taken in sorted order so that no two transactions deadlock."""
    if names:
        await session.execute(
            text(
                "SELECT pg_advisory_xact_lock(hashtext(:space), hashtext(n))"
                " FROM (SELECT n FROM unnest(CAST(:names AS text[])) AS n ORDER BY n) AS sorted"
            ),
            {"space": space, "names": sorted(set(names))},
        )


async def load_accounts(session: AsyncSession, keys: Collection[str]) -> dict[str, dict[str, Any]]:
    """Account profiles by key; accounts nobody has told us about yet are absent."""
    if not keys:
        return {}
    rows = await session.execute(select(accounts.c.key, accounts.c.profile).where(accounts.c.key.in_(list(keys))))
    return {row.key: row.profile for row in rows}


async def save_accounts(session: AsyncSession, profiles: Mapping[str, dict[str, Any]]) -> None:
    if profiles:
        stmt = insert(accounts).values(updated_at=func.now())
        stmt = stmt.on_conflict_do_update(
            index_elements=["key"], set_={"profile": stmt.excluded.profile, "updated_at": func.now()}
        )
        rows = [{"key": key, "profile": profile} for key, profile in profiles.items()]
        await session.execute(stmt, rows)


async def owners(session: AsyncSession, names: Sequence[str]) -> list[Owner]:
    """The leads owning `names`, their rows locked (in id order) until the transaction ends."""
    stmt = (
        select(identifiers.c.identifier, leads.c.id, leads.c.created_at, leads.c.email)
        .join(leads, leads.c.id == identifiers.c.lead_id)
        .where(identifiers.c.identifier.in_(list(names)))
        .order_by(leads.c.id)
        .with_for_update(of=leads)
    )
    return [Owner(*row) for row in await session.execute(stmt)]


async def lead_by_id(session: AsyncSession, lead_id: str | None) -> str | None:
    """The lead itself, locked, when a deal names it by id."""
    if not lead_id:
        return None
    stmt = select(leads.c.id).where(leads.c.id == lead_id).with_for_update()
    found: str | None = (await session.execute(stmt)).scalar_one_or_none()
    return found


async def leads_to_rescore(session: AsyncSession, version: int, limit: int) -> list[str]:
    """Leads scored by another version, locked; rows another transaction holds are left for later."""
    stmt = (
        select(leads.c.id)
        .where(leads.c.model_version.is_distinct_from(version))
        .order_by(leads.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(stmt)).scalars())


async def leads_in_stage(session: AsyncSession, stage: str, after: str, limit: int) -> list[str]:
    """The next page (by id) of leads in `stage`, locked; rows another transaction holds are skipped this round."""
    stmt = (
        select(leads.c.id)
        .where(leads.c.stage == stage, leads.c.id > after)
        .order_by(leads.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.execute(stmt)).scalars())


async def rescore_progress(session: AsyncSession, version: int) -> tuple[int, int]:
    """(leads, leads not yet scored by `version`)."""
    pending = func.count().filter(leads.c.model_version.is_distinct_from(version))
    total, left = (await session.execute(select(func.count(), pending).select_from(leads))).one()
    return int(total), int(left)


async def load_lead(session: AsyncSession, lead_id: str) -> dict[str, Any] | None:
    row = (await session.execute(select(leads).where(leads.c.id == lead_id))).mappings().first()
    return dict(row) if row else None


async def load_leads(session: AsyncSession, lead_ids: Collection[str]) -> dict[str, dict[str, Any]]:
    rows = (await session.execute(select(leads).where(leads.c.id.in_(list(lead_ids))))).mappings()
    return {row["id"]: dict(row) for row in rows}


async def insert_leads(session: AsyncSession, created: Sequence[tuple[str, datetime]]) -> None:
    rows = [{"id": lead_id, "profile": {}, "created_at": at, "updated_at": at} for lead_id, at in created]
    if rows:
        await session.execute(insert(leads).on_conflict_do_nothing(), rows)


async def save_lead(session: AsyncSession, lead_id: str, values: dict[str, Any]) -> None:
    """`updated_at` is the commit's clock, not the touch's: a late touch still shows in `updated_since` reads."""
    await session.execute(update(leads).where(leads.c.id == lead_id).values({**values, "updated_at": func.now()}))


async def save_leads(session: AsyncSession, values: Mapping[str, dict[str, Any]]) -> None:
    """`save_lead` for many leads in one round trip; every lead's values must have the same keys."""
    if values:
        stmt = update(leads).where(leads.c.id == bindparam("lead_id")).values(updated_at=func.now())
        await session.execute(stmt, [{"lead_id": lead_id, **v} for lead_id, v in values.items()])


async def link(session: AsyncSession, links: Sequence[tuple[str, str, datetime]]) -> None:
    """(identifier, lead id, linked at) rows; an identifier already linked keeps its lead."""
    rows = [{"identifier": name, "lead_id": lead_id, "linked_at": at} for name, lead_id, at in links]
    if rows:
        await session.execute(insert(identifiers).on_conflict_do_nothing(), rows)


async def merge(session: AsyncSession, survivors: Mapping[str, str]) -> None:
    """Move each absorbed lead's identifiers, touches and outcomes to its survivor (absorbed -> survivor, which
    absorbs nothing else here); delete the absorbed leads and their stage histories. A few statements in all."""
    if not survivors:
        return
    pairs = {"absorbed": list(survivors), "survivors": list(survivors.values())}
    for table in (identifiers, touches, outcomes):
        name = f'"{table.schema}"."{table.name}"'
        await session.execute(
            text(
                f"UPDATE {name} AS t SET lead_id = m.survivor"
                " FROM unnest(CAST(:absorbed AS text[]), CAST(:survivors AS text[])) AS m(absorbed, survivor)"
                " WHERE t.lead_id = m.absorbed"
            ),
            pairs,
        )
    gone = list(survivors)
    await session.execute(delete(transitions).where(transitions.c.lead_id.in_(gone)))
    await session.execute(delete(leads).where(leads.c.id.in_(gone)))


async def erase(session: AsyncSession, lead_id: str) -> None:
    """Everything personal about the lead: its identifiers, touches, stage history and row."""
    for table in (identifiers, touches, transitions, outcomes):
        await session.execute(delete(table).where(table.c.lead_id == lead_id))
    await session.execute(delete(leads).where(leads.c.id == lead_id))


async def identifiers_of(session: AsyncSession, lead_id: str) -> list[dict[str, Any]]:
    stmt = select(identifiers).where(identifiers.c.lead_id == lead_id).order_by(identifiers.c.linked_at)
    return [dict(r) for r in (await session.execute(stmt)).mappings()]


def touch_row(event_id: str, lead_id: str, at: datetime, payload: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "lead_id": lead_id, "occurred_at": at, "type": payload["type"], "payload": payload}


async def add_touches(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(touches).on_conflict_do_nothing(), list(rows))


async def touches_of(session: AsyncSession, lead_id: str) -> list[dict[str, Any]]:
    stmt = select(touches).where(touches.c.lead_id == lead_id).order_by(touches.c.occurred_at, touches.c.event_id)
    return [dict(r) for r in (await session.execute(stmt)).mappings()]


async def touches_by_lead(session: AsyncSession, lead_ids: Collection[str]) -> dict[str, list[dict[str, Any]]]:
    """`touches_of` for many leads in one query."""
    t = touches
    stmt = select(t).where(t.c.lead_id.in_(list(lead_ids))).order_by(t.c.lead_id, t.c.occurred_at, t.c.event_id)
    found: dict[str, list[dict[str, Any]]] = {lead_id: [] for lead_id in lead_ids}
    for row in (await session.execute(stmt)).mappings():
        found[row["lead_id"]].append(dict(row))
    return found


async def add_transition(session: AsyncSession, lead_id: str, values: dict[str, Any]) -> None:
    await session.execute(transitions.insert().values(lead_id=lead_id, **values))


async def transitions_of(session: AsyncSession, lead_id: str) -> list[dict[str, Any]]:
    t = transitions
    stmt = select(t.c.from_stage, t.c.to_stage, t.c.cause, t.c.detail, t.c.at).where(t.c.lead_id == lead_id)
    return [dict(r) for r in (await session.execute(stmt.order_by(t.c.id))).mappings()]


async def add_transitions(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Rows of one lead's transitions in the order they happened (ids keep that order)."""
    if rows:
        await session.execute(transitions.insert(), list(rows))


async def transitions_of_leads(session: AsyncSession, lead_ids: Collection[str]) -> dict[str, list[dict[str, Any]]]:
    t = transitions
    stmt = select(t.c.lead_id, t.c.from_stage, t.c.to_stage, t.c.cause, t.c.detail, t.c.at)
    stmt = stmt.where(t.c.lead_id.in_(list(lead_ids))).order_by(t.c.id)
    found: dict[str, list[dict[str, Any]]] = {lead_id: [] for lead_id in lead_ids}
    for row in (await session.execute(stmt)).mappings():
        found[row["lead_id"]].append({k: v for k, v in row.items() if k != "lead_id"})
    return found


async def active_version(session: AsyncSession) -> int | None:
    stmt = select(model_versions.c.version).where(model_versions.c.active)
    version: int | None = (await session.execute(stmt)).scalar_one_or_none()
    return version


async def model_body(session: AsyncSession, version: int) -> dict[str, Any]:
    stmt = select(model_versions.c.body).where(model_versions.c.version == version)
    body: dict[str, Any] = (await session.execute(stmt)).scalar_one()
    return body


async def active_model(session: AsyncSession) -> dict[str, Any] | None:
    stmt = select(model_versions).where(model_versions.c.active)
    row = (await session.execute(stmt)).mappings().first()
    return dict(row) if row else None


async def model_version_list(session: AsyncSession) -> list[dict[str, Any]]:
    m = model_versions
    stmt = select(m.c.version, m.c.created_at, m.c.active).order_by(m.c.version.desc())
    return [dict(r) for r in (await session.execute(stmt)).mappings()]


async def add_model_version(session: AsyncSession, body: dict[str, Any]) -> dict[str, Any]:
    """The new version becomes the only active one; concurrent PUTs serialise on the table lock."""
    await session.execute(text("LOCK TABLE scoring.model_versions IN SHARE ROW EXCLUSIVE MODE"))
    version = (await session.execute(select(func.coalesce(func.max(model_versions.c.version), 0) + 1))).scalar_one()
    await session.execute(update(model_versions).where(model_versions.c.active).values(active=False))
    stmt = insert(model_versions).values(version=version, body=body, active=True).returning(model_versions)
    return dict((await session.execute(stmt)).mappings().one())


@dataclass(frozen=True)
class LeadFilter:
    stage: str | None = None
    segment: str | None = None
    persona: str | None = None
    account: str | None = None
    updated_since: datetime | None = None
    after: str | None = None


async def list_leads(session: AsyncSession, f: LeadFilter, limit: int) -> list[dict[str, Any]]:
    """Keyset pagination on id."""
    conditions = [
        leads.c.stage == f.stage if f.stage else None,
        leads.c.segment == f.segment if f.segment else None,
        leads.c.persona == f.persona if f.persona else None,
        leads.c.account_key == f.account if f.account else None,
        leads.c.updated_at >= f.updated_since if f.updated_since else None,
        leads.c.id > f.after if f.after else None,
    ]
    where = and_(true(), *(c for c in conditions if c is not None))
    stmt = select(leads).where(where).order_by(leads.c.id).limit(limit)
    return [dict(r) for r in (await session.execute(stmt)).mappings()]


# --- outcomes: won and lost deals, sales rejections (sales feedback, ICP, backtest) --------------

from sqlalchemy import Numeric  # noqa: E402  # appended section: the import block above is edited elsewhere

outcomes = Table(
    "outcomes",
    metadata,
    Column("id", String(300), primary_key=True),  # a deal's natural key (`won:<deal id>`) or the feedback event's id
    Column("lead_id", String(64), nullable=False, index=True),
    Column("kind", String(20), nullable=False),  # won | lost | rejected
    Column("deal_id", String(200)),
    Column("amount", Numeric(18, 4)),
    Column("currency", String(3)),
    Column("reason", String(1000)),
    Column("note", String(2000)),
    Column("at", DateTime(timezone=True), nullable=False),
)


async def add_outcome(session: AsyncSession, row: dict[str, Any]) -> None:
    """Once per id: the same deal won twice (under two event ids) is one outcome."""
    await session.execute(insert(outcomes).values(row).on_conflict_do_nothing())


async def outcomes_of(session: AsyncSession, lead_ids: Sequence[str]) -> list[dict[str, Any]]:
    stmt = select(outcomes).where(outcomes.c.lead_id.in_(list(lead_ids))).order_by(outcomes.c.at, outcomes.c.id)
    return [dict(r) for r in (await session.execute(stmt)).mappings()]


async def leads_page(session: AsyncSession, after: str, limit: int) -> list[dict[str, Any]]:
    """The next page (by id) of leads, unlocked: what ICP and backtests read."""
    cols = (leads.c.id, leads.c.email, leads.c.profile, leads.c.persona, leads.c.segment, leads.c.account_key)
    stmt = select(*cols).where(leads.c.id > after).order_by(leads.c.id).limit(limit)
    return [dict(r) for r in (await session.execute(stmt)).mappings()]
