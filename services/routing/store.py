"""The routing schema: directory documents, rule set versions, users, the lead read model, assignments,
round-robin loads and webhook deliveries."""

from collections.abc import Sequence
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
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    func,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing.lifecycle import OPEN
from shared.db import BusTables

metadata = MetaData(schema="routing")
TABLES = BusTables(metadata)
OPEN_STATUSES = sorted(OPEN)

documents = Table(
    "documents",
    metadata,
    Column("kind", String(40), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("body", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
rule_sets = Table(
    "rule_sets",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("body", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("rep_id", String(64)),
    Column("team_id", String(64)),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
leads = Table(
    "leads",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("email", String(320)),
    Column("profile", JSONB, nullable=False, server_default="{}"),
    Column("persona", String(100)),
    Column("segment", String(100)),
    Column("account", String(400), index=True),
    Column("fit", Float),
    Column("engagement", Float),
    Column("total", Float),
    Column("grade", String(8)),
    Column("model_version", Integer),
    Column("stage", String(30)),
    Column("campaigns", JSONB, nullable=False, server_default="[]"),
    Column("mql_at", DateTime(timezone=True), index=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
identities = Table(
    "identities",
    metadata,
    Column("identifier", String(400), primary_key=True),
    Column("lead_id", String(200), nullable=False, index=True),
)
touches = Table(
    "touches",
    metadata,
    Column("event_id", String(300), primary_key=True),
    Column("identity_key", String(400), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("payload", JSONB, nullable=False),
    Index("touches_identity_time", "identity_key", "occurred_at"),
)
assignments = Table(
    "assignments",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("lead_id", String(200), nullable=False),
    Column("rep_id", String(64)),
    Column("team_id", String(64)),
    Column("status", String(20), nullable=False),
    Column("rule", String(200), nullable=False),
    Column("why", JSONB, nullable=False),
    Column("charge", Float, nullable=False),
    Column("score", Float, nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=False),
    Column("accept_due", DateTime(timezone=True)),
    Column("contact_due", DateTime(timezone=True)),
    Column("accepted_at", DateTime(timezone=True)),
    Column("first_contact_at", DateTime(timezone=True)),
    Column("accept_breached", Boolean, nullable=False, server_default="false"),
    Column("contact_breached", Boolean, nullable=False, server_default="false"),
    Column("escalated_to", String(64)),
    Column("reason", String(64)),
    Column("note", String(2000)),
    Column("dispositions", JSONB, nullable=False, server_default="[]"),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The promise "never two reps at once": at most one open assignment per lead, whatever races.
    Index(
        "assignments_one_open_per_lead",
        "lead_id",
        unique=True,
        postgresql_where=text("status IN ('queued', 'assigned', 'accepted')"),
    ),
    Index("assignments_rep_queue", "rep_id", "status", "score", "assigned_at"),
    Index("assignments_team_status", "team_id", "status"),
    Index("assignments_lead", "lead_id"),
)
loads = Table(
    "round_robin_loads",
    metadata,
    Column("team_id", String(64), primary_key=True),
    Column("rep_id", String(64), primary_key=True),
    Column("load", Float, nullable=False),
)
deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("team_id", String(64), nullable=False),
    Column("event_id", String(300), nullable=False),
    Column("event_type", String(200), nullable=False),
    Column("lead_id", String(200), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("status", String(20), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_status", Integer),
    Column("last_error", String(1000)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("delivered_at", DateTime(timezone=True)),
    Index("webhook_deliveries_due", "status", "next_attempt_at"),
    Index("webhook_deliveries_event", "event_id", "team_id", unique=True),
)


def _dicts(rows: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in rows]


# --- directory ----------------------------------------------------------------------------------


async def all_documents(session: AsyncSession) -> list[dict[str, Any]]:
    return _dicts(await session.execute(select(documents).order_by(documents.c.kind, documents.c.id)))


async def documents_of(session: AsyncSession, kind: str) -> list[dict[str, Any]]:
    stmt = select(documents.c.body).where(documents.c.kind == kind).order_by(documents.c.id)
    return [row.body for row in await session.execute(stmt)]


async def document(session: AsyncSession, kind: str, document_id: str) -> dict[str, Any] | None:
    stmt = select(documents.c.body).where(documents.c.kind == kind, documents.c.id == document_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def lock_directory(session: AsyncSession) -> None:
    """Directory writes take turns, so a reference check sees the documents as they will be committed."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('routing.directory'))"))


async def put_document(session: AsyncSession, kind: str, document_id: str, body: dict[str, Any]) -> bool:
    """Insert or replace; True when it was new."""
    stmt = insert(documents).values(kind=kind, id=document_id, body=body)
    stmt = stmt.on_conflict_do_update(
        index_elements=["kind", "id"], set_={"body": stmt.excluded.body, "updated_at": func.now()}
    )
    existed = await document(session, kind, document_id) is not None
    await session.execute(stmt)
    return not existed


async def delete_document(session: AsyncSession, kind: str, document_id: str) -> bool:
    stmt = delete(documents).where(documents.c.kind == kind, documents.c.id == document_id).returning(documents.c.id)
    return (await session.execute(stmt)).first() is not None


async def active_rules(session: AsyncSession) -> dict[str, Any] | None:
    stmt = select(rule_sets).order_by(rule_sets.c.version.desc()).limit(1)
    row = (await session.execute(stmt)).first()
    return dict(row._mapping) if row else None


async def add_rule_set(session: AsyncSession, body: dict[str, Any]) -> dict[str, Any]:
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('routing.rule_sets'))"))
    version = (await session.execute(select(func.coalesce(func.max(rule_sets.c.version), 0) + 1))).scalar_one()
    row = (await session.execute(insert(rule_sets).values(version=version, body=body).returning(rule_sets))).one()
    return dict(row._mapping)


# --- users --------------------------------------------------------------------------------------


async def add_user(session: AsyncSession, row: dict[str, Any]) -> dict[str, Any]:
    return dict((await session.execute(insert(users).values(row).returning(users))).one()._mapping)


async def user_by_token_hash(session: AsyncSession, token_hash: str) -> dict[str, Any] | None:
    row = (await session.execute(select(users).where(users.c.token_hash == token_hash))).first()
    return dict(row._mapping) if row else None


async def user_list(session: AsyncSession) -> list[dict[str, Any]]:
    cols = [c for c in users.c if c.name != "token_hash"]
    return _dicts(await session.execute(select(*cols).order_by(users.c.created_at, users.c.id)))


async def delete_user(session: AsyncSession, user_id: str) -> bool:
    stmt = delete(users).where(users.c.id == user_id).returning(users.c.id)
    return (await session.execute(stmt)).first() is not None


# --- the lead read model ------------------------------------------------------------------------


async def upsert_lead(session: AsyncSession, lead_id: str, values: dict[str, Any], at: datetime) -> None:
    stmt = insert(leads).values(id=lead_id, updated_at=at, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={**values, "updated_at": at}))


async def load_lead(session: AsyncSession, lead_id: str) -> dict[str, Any] | None:
    row = (await session.execute(select(leads).where(leads.c.id == lead_id))).first()
    return dict(row._mapping) if row else None


async def load_leads(session: AsyncSession, lead_ids: Sequence[str]) -> list[dict[str, Any]]:
    rows = await session.execute(select(leads).where(leads.c.id.in_(list(lead_ids))))
    return [dict(row._mapping) for row in rows]


async def merge_profile(session: AsyncSession, lead_id: str, changes: dict[str, Any], at: datetime) -> None:
    await upsert_lead(session, lead_id, {}, at)
    merged = leads.c.profile.op("||")(bindparam("changes", changes, type_=JSONB))
    await session.execute(update(leads).where(leads.c.id == lead_id).values(profile=merged))


async def link(session: AsyncSession, lead_id: str, identifiers: Sequence[str]) -> None:
    rows = [{"identifier": i, "lead_id": lead_id} for i in dict.fromkeys(identifiers) if i]
    if rows:
        stmt = insert(identities).values(rows)
        await session.execute(
            stmt.on_conflict_do_update(index_elements=["identifier"], set_={"lead_id": stmt.excluded.lead_id})
        )


async def lead_of(session: AsyncSession, identifiers: Sequence[str]) -> str | None:
    stmt = select(identities.c.lead_id).where(identities.c.identifier.in_(list(identifiers))).limit(1)
    return (await session.execute(stmt)).scalar_one_or_none()


async def merge(session: AsyncSession, survivor: str, absorbed: str) -> None:
    await session.execute(update(identities).where(identities.c.lead_id == absorbed).values(lead_id=survivor))
    await session.execute(delete(leads).where(leads.c.id == absorbed))


async def erase(session: AsyncSession, lead_id: str) -> None:
    """The lead's personal data goes: profile, touches, identifiers, free-text notes and pending pushes.

    Assignment rows stay (ids, reps, times) so SLA figures and round-robin loads remain true.
    """
    await session.execute(
        update(assignments).where(assignments.c.lead_id == lead_id).values(note=None, dispositions=[])
    )
    await session.execute(delete(deliveries).where(deliveries.c.lead_id == lead_id))
    keys = select(identities.c.identifier).where(identities.c.lead_id == lead_id)
    await session.execute(delete(touches).where(touches.c.identity_key.in_(keys)))
    await session.execute(delete(identities).where(identities.c.lead_id == lead_id))
    await session.execute(delete(leads).where(leads.c.id == lead_id))


async def add_touch(
    session: AsyncSession, event_id: str, identity_key: str, at: datetime, payload: dict[str, Any]
) -> None:
    row = {"event_id": event_id, "identity_key": identity_key, "occurred_at": at, "payload": payload}
    await session.execute(insert(touches).values(row).on_conflict_do_nothing())


async def touches_of(session: AsyncSession, lead_id: str) -> list[dict[str, Any]]:
    keys = select(identities.c.identifier).where(identities.c.lead_id == lead_id)
    stmt = select(touches).where(touches.c.identity_key.in_(keys)).order_by(touches.c.occurred_at)
    return _dicts(await session.execute(stmt))


async def set_first_campaigns(session: AsyncSession, lead_id: str, campaigns: list[str]) -> None:
    stmt = update(leads).where(leads.c.id == lead_id, func.jsonb_array_length(leads.c.campaigns) == 0)
    await session.execute(stmt.values(campaigns=campaigns))


async def account_contacts(session: AsyncSession, account: str, but: str) -> list[dict[str, Any]]:
    """Other leads of the account with their touch counts, most engaged first."""
    touch_count = (
        select(func.count().label("touches"), func.max(touches.c.occurred_at).label("last_at"))
        .select_from(touches.join(identities, identities.c.identifier == touches.c.identity_key))
        .where(identities.c.lead_id == leads.c.id)
        .correlate(leads)
        .lateral("t")
    )
    stmt = (
        select(leads.c.id, leads.c.email, leads.c.persona, touch_count.c.touches, touch_count.c.last_at)
        .select_from(leads.join(touch_count, text("true")))
        .where(leads.c.account == account, leads.c.id != but)
        .order_by(touch_count.c.touches.desc(), leads.c.id)
        .limit(20)
    )
    return [
        {"lead_id": i, "email": e, "persona": p, "touches": n, "last_touch_at": last}
        for i, e, p, n, last in await session.execute(stmt)
    ]


async def mqls_since(session: AsyncSession, since: datetime, limit: int) -> list[dict[str, Any]]:
    stmt = select(leads).where(leads.c.mql_at >= since).order_by(leads.c.mql_at).limit(limit)
    return _dicts(await session.execute(stmt))


# --- assignments and round-robin ----------------------------------------------------------------


async def lock_lead(session: AsyncSession, lead_id: str) -> None:
    """One placement decision per lead at a time, whichever replica or sweep makes it."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('routing.lead'), hashtext(:l))"), {"l": lead_id})


async def open_assignment(session: AsyncSession, lead_id: str) -> dict[str, Any] | None:
    stmt = select(assignments).where(assignments.c.lead_id == lead_id, assignments.c.status.in_(OPEN_STATUSES))
    row = (await session.execute(stmt)).first()
    return dict(row._mapping) if row else None


async def locked_loads(session: AsyncSession, team_ids: Sequence[str]) -> dict[tuple[str, str], float]:
    """Each team's round-robin loads, the team held (sorted: no deadlock) until the transaction ends."""
    for team_id in sorted(set(team_ids)):
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext('routing.team'), hashtext(:t))"), {"t": team_id}
        )
    stmt = select(loads).where(loads.c.team_id.in_(list(team_ids))).with_for_update()
    return {(r.team_id, r.rep_id): r.load for r in await session.execute(stmt)}


async def save_loads(session: AsyncSession, values: dict[tuple[str, str], float]) -> None:
    if values:
        stmt = insert(loads).values([{"team_id": t, "rep_id": r, "load": v} for (t, r), v in values.items()])
        await session.execute(
            stmt.on_conflict_do_update(index_elements=["team_id", "rep_id"], set_={"load": stmt.excluded.load})
        )


async def credit_back(session: AsyncSession, team_id: str, rep_id: str, charge: float) -> None:
    stmt = update(loads).where(loads.c.team_id == team_id, loads.c.rep_id == rep_id)
    await session.execute(stmt.values(load=loads.c.load - charge))


async def open_counts(session: AsyncSession, rep_ids: Sequence[str]) -> dict[str, int]:
    stmt = (
        select(assignments.c.rep_id, func.count().label("open_leads"))
        .where(assignments.c.rep_id.in_(list(rep_ids)), assignments.c.status.in_(["assigned", "accepted"]))
        .group_by(assignments.c.rep_id)
    )
    return {row.rep_id: row.open_leads for row in await session.execute(stmt)}


async def add_assignment(session: AsyncSession, row: dict[str, Any]) -> None:
    await session.execute(insert(assignments).values(row))


async def save_assignment(session: AsyncSession, assignment_id: str, values: dict[str, Any]) -> None:
    await session.execute(update(assignments).where(assignments.c.id == assignment_id).values(**values))


async def load_assignment(session: AsyncSession, assignment_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    stmt = select(assignments).where(assignments.c.id == assignment_id)
    row = (await session.execute(stmt.with_for_update() if lock else stmt)).first()
    return dict(row._mapping) if row else None


async def latest_assignment(session: AsyncSession, lead_id: str) -> dict[str, Any] | None:
    stmt = (
        select(assignments)
        .where(assignments.c.lead_id == lead_id)
        .order_by(assignments.c.assigned_at.desc(), assignments.c.updated_at.desc())
        .limit(1)
    )
    row = (await session.execute(stmt)).first()
    return dict(row._mapping) if row else None


async def assignments_of(session: AsyncSession, lead_id: str) -> list[dict[str, Any]]:
    stmt = select(assignments).where(assignments.c.lead_id == lead_id).order_by(assignments.c.assigned_at)
    return _dicts(await session.execute(stmt))


async def queue(
    session: AsyncSession,
    *,
    rep_id: str | None,
    team_id: str | None,
    after: tuple[float, datetime, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Open assignments by priority: highest score, then most recent, then id (the cursor's order)."""
    stmt = select(assignments).where(assignments.c.status.in_(OPEN_STATUSES))
    if rep_id is not None:
        stmt = stmt.where(assignments.c.rep_id == rep_id)
    if team_id is not None:
        stmt = stmt.where(assignments.c.team_id == team_id)
    order = tuple_(assignments.c.score, assignments.c.assigned_at, assignments.c.id)
    if after is not None:
        stmt = stmt.where(order < tuple_(*after))
    stmt = stmt.order_by(assignments.c.score.desc(), assignments.c.assigned_at.desc(), assignments.c.id.desc())
    return _dicts(await session.execute(stmt.limit(limit)))


def _sla_due(now: datetime) -> Any:
    a = assignments.c
    accept_late = (a.status == "assigned") & ~a.accept_breached & (a.accept_due <= now)
    contact_late = (
        (a.status == "accepted") & a.first_contact_at.is_(None) & ~a.contact_breached & (a.contact_due <= now)
    )
    return accept_late | contact_late


async def due_for_sla_check(session: AsyncSession, now: datetime, limit: int) -> list[tuple[str, str]]:
    """(assignment id, lead id) of open assignments past a deadline not yet reported."""
    stmt = select(assignments.c.id, assignments.c.lead_id).where(_sla_due(now)).order_by(assignments.c.id).limit(limit)
    return [(row.id, row.lead_id) for row in await session.execute(stmt)]


async def lock_if_still_due(session: AsyncSession, assignment_id: str, now: datetime) -> dict[str, Any] | None:
    """The assignment, locked, if it is still due; None if another replica has it or it moved on meanwhile."""
    stmt = select(assignments).where(assignments.c.id == assignment_id, _sla_due(now))
    row = (await session.execute(stmt.with_for_update(skip_locked=True))).first()
    return dict(row._mapping) if row else None


# --- webhook deliveries -------------------------------------------------------------------------


async def add_delivery(session: AsyncSession, row: dict[str, Any]) -> None:
    await session.execute(insert(deliveries).values(row).on_conflict_do_nothing())


async def due_deliveries(session: AsyncSession, now: datetime, limit: int) -> list[dict[str, Any]]:
    stmt = (
        select(deliveries)
        .where(deliveries.c.status == "pending", deliveries.c.next_attempt_at <= now)
        .order_by(deliveries.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return _dicts(await session.execute(stmt))


async def save_delivery(session: AsyncSession, delivery_id: int, values: dict[str, Any]) -> None:
    await session.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(**values))


async def delivery_log(
    session: AsyncSession, *, team_id: str | None, status: str | None, before: int | None, limit: int
) -> list[dict[str, Any]]:
    cols = [c for c in deliveries.c if c.name != "body"]
    stmt = select(*cols).order_by(deliveries.c.id.desc()).limit(limit)
    if team_id is not None:
        stmt = stmt.where(deliveries.c.team_id == team_id)
    if status is not None:
        stmt = stmt.where(deliveries.c.status == status)
    if before is not None:
        stmt = stmt.where(deliveries.c.id < before)
    return _dicts(await session.execute(stmt))
