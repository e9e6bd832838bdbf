"""The reporting schema: read models fed from the four topics, and the registry (campaigns, costs, targets)
that people manage through the API. Every read model is rebuilt by replaying the topics into an empty
schema; the registry is reporting's own data."""

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    MetaData,
    Numeric,
    String,
    Table,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.campaigns import Campaign, CampaignType, Cost, TouchCampaign, UtmMapping
from services.reporting.facts import AssignmentFact, Deal, Facts, Lead, StageChange, TouchColumns
from shared.db import BusTables

metadata = MetaData(schema="reporting")
TABLES = BusTables(metadata)

touches = Table(
    "touches",
    metadata,
    Column("event_id", String(300), primary_key=True),
    Column("identity_key", String(400), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("type", String(50), nullable=False),
    Column("channel", String(50)),
    Column("campaign_id", String(200)),
    Column("utm_source", String(200)),
    Column("utm_medium", String(200)),
    Column("utm_campaign", String(200)),
    Column("machine_generated", Boolean, nullable=False, server_default="false"),
    Index("touches_identity", "identity_key"),
)
identity_links = Table(
    "identity_links",
    metadata,
    Column("identifier", String(400), primary_key=True),
    Column("other", String(400), primary_key=True),
)
leads = Table(
    "leads",
    metadata,
    Column("lead_id", String(200), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("persona", String(100)),
    Column("segment", String(100)),
    Column("account", String(400)),
)
lead_identifiers = Table(
    "lead_identifiers",
    metadata,
    Column("identifier", String(400), primary_key=True),
    Column("lead_id", String(200), primary_key=True),
)
merges = Table(
    "merges",
    metadata,
    Column("absorbed", String(200), primary_key=True),
    Column("survivor", String(200), nullable=False),
)
stage_changes = Table(
    "stage_changes",
    metadata,
    Column("event_id", String(300), primary_key=True),
    Column("lead_id", String(200), nullable=False, index=True),
    Column("from_stage", String(30)),
    Column("to_stage", String(30), nullable=False),
    Column("cause", String(200)),
    Column("at", DateTime(timezone=True), nullable=False),
)
deals = Table(
    "deals",
    metadata,
    Column("deal_id", String(200), primary_key=True),
    Column("lead_id", String(200)),
    Column("contact_email", String(320)),
    Column("amount", Numeric(22, 4), nullable=False, server_default="0"),
    Column("currency", String(3), nullable=False, server_default="XXX"),
    Column("stage", String(100)),
    Column("created_at", DateTime(timezone=True)),
    Column("won_at", DateTime(timezone=True)),
    Column("lost_at", DateTime(timezone=True)),
)
assignment_events = Table(
    "assignment_events",
    metadata,
    Column("event_id", String(300), primary_key=True),
    Column("lead_id", String(200), nullable=False, index=True),
    Column("assignment_id", String(200), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("rep_id", String(200)),
    Column("team_id", String(200)),
    Column("detail", String(200)),
    Column("at", DateTime(timezone=True), nullable=False),
)
campaigns = Table(
    "campaigns",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("name", String(500), nullable=False),
    Column("channel", String(50), nullable=False),
    Column("type", String(30), nullable=False),
    Column("starts_on", Date),
    Column("ends_on", Date),
    Column("utm", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
costs = Table(
    "costs",
    metadata,
    Column("campaign_id", String(200), primary_key=True),
    Column("period_start", Date, primary_key=True),
    Column("period_end", Date, primary_key=True),
    Column("amount", Numeric(22, 4), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
targets = Table(
    "targets",
    metadata,
    Column("period", String(20), primary_key=True),
    Column("metric", String(20), primary_key=True),
    Column("value", Numeric(22, 4), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


async def add_touch(session: AsyncSession, row: dict[str, Any], identifiers: Sequence[str]) -> None:
    await session.execute(insert(touches).values(row).on_conflict_do_nothing())
    pairs = [{"identifier": a, "other": b} for a in identifiers for b in identifiers if a < b]
    if pairs:
        await session.execute(insert(identity_links).values(pairs).on_conflict_do_nothing())


async def add_lead(session: AsyncSession, lead_id: str, at: datetime, identifiers: Sequence[str]) -> None:
    await session.execute(insert(leads).values(lead_id=lead_id, created_at=at).on_conflict_do_nothing())
    rows = [{"identifier": i, "lead_id": lead_id} for i in identifiers]
    await session.execute(insert(lead_identifiers).values(rows).on_conflict_do_nothing())


async def merge_leads(session: AsyncSession, survivor: str, absorbed: str) -> None:
    await session.execute(
        insert(merges)
        .values(absorbed=absorbed, survivor=survivor)
        .on_conflict_do_update(index_elements=["absorbed"], set_={"survivor": survivor})
    )


async def save_profile(session: AsyncSession, lead_id: str, at: datetime, values: dict[str, Any]) -> None:
    """Latest wins; a profile event before the created event (another partition order) creates the row."""
    stmt = insert(leads).values(lead_id=lead_id, created_at=at, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=["lead_id"], set_=values))


async def add_stage_change(session: AsyncSession, row: dict[str, Any]) -> None:
    await session.execute(insert(stage_changes).values(row).on_conflict_do_nothing())


async def apply_deal(session: AsyncSession, deal_id: str, known: dict[str, Any], at: datetime, outcome: str) -> None:
    """Upsert what the deal event says; `outcome` is created, changed, won or lost."""
    first: dict[str, Any] = {"deal_id": deal_id, **known, "created_at": at}
    later: dict[str, Any] = dict(known)
    if outcome == "created":
        later["created_at"] = func.least(func.coalesce(deals.c.created_at, at), at)
    if outcome == "won":
        first |= {"won_at": at}
        later |= {"won_at": at, "lost_at": None}
    if outcome == "lost":
        first |= {"lost_at": at}
        later |= {"lost_at": at, "won_at": None}
    stmt = insert(deals).values(first)
    await session.execute(stmt.on_conflict_do_update(index_elements=["deal_id"], set_=later) if later else stmt)


async def add_assignment_event(session: AsyncSession, row: dict[str, Any]) -> None:
    await session.execute(insert(assignment_events).values(row).on_conflict_do_nothing())


async def erase(session: AsyncSession, lead_id: str, identifiers: Sequence[str], absorbed: Sequence[str]) -> None:
    """Forget an erased lead: identifiers, touches, stages, assignments; its deals stay as unattributed revenue."""
    ids = [lead_id, *absorbed]
    await session.execute(delete(touches).where(touches.c.identity_key.in_(identifiers)))
    await session.execute(
        delete(identity_links).where(
            identity_links.c.identifier.in_(identifiers) | identity_links.c.other.in_(identifiers)
        )
    )
    await session.execute(delete(lead_identifiers).where(lead_identifiers.c.lead_id.in_(ids)))
    await session.execute(delete(stage_changes).where(stage_changes.c.lead_id.in_(ids)))
    await session.execute(delete(assignment_events).where(assignment_events.c.lead_id.in_(ids)))
    await session.execute(delete(merges).where(merges.c.survivor.in_(ids) | merges.c.absorbed.in_(ids)))
    await session.execute(delete(leads).where(leads.c.lead_id.in_(ids)))
    await session.execute(
        update(deals)
        .where(deals.c.lead_id.in_(ids) | deals.c.contact_email.in_(identifiers))
        .values(lead_id=None, contact_email=None)
    )


async def identity_graph(
    session: AsyncSession,
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]]:
    created = [(r.lead_id, r.identifier) for r in await session.execute(select(lead_identifiers))]
    merged = [(r.survivor, r.absorbed) for r in await session.execute(select(merges))]
    linked = [(r.identifier, r.other) for r in await session.execute(select(identity_links))]
    return created, merged, linked


async def data_version(session: AsyncSession) -> tuple[Any, ...]:
    """Changes whenever a record is applied or the registry is edited: the key of cached reports."""
    parts = [
        select(func.max(TABLES.offsets.c.updated_at)).scalar_subquery(),
        select(func.sum(TABLES.offsets.c.offset)).scalar_subquery(),
        *(select(func.max(t.c.updated_at)).scalar_subquery() for t in (campaigns, costs, targets)),
        *(select(func.count()).select_from(t).scalar_subquery() for t in (campaigns, costs, targets)),
    ]
    return tuple((await session.execute(select(*parts))).one())


def _campaign(row: Any) -> Campaign:
    return Campaign(
        row.id,
        row.name,
        row.channel,
        CampaignType(row.type),
        row.starts_on,
        row.ends_on,
        tuple(UtmMapping(**m) for m in row.utm),
    )


async def load_facts(session: AsyncSession) -> Facts:
    """Everything the reports are computed from (they are computed in memory, then cached per data version)."""
    created, merged, linked = await identity_graph(session)
    touch_rows = (
        await session.execute(
            select(
                touches.c.identity_key,
                func.extract("epoch", touches.c.occurred_at).cast(Float),
                touches.c.type,
                touches.c.channel,
                touches.c.campaign_id,
                touches.c.utm_source,
                touches.c.utm_medium,
                touches.c.utm_campaign,
                touches.c.machine_generated,
            )
        )
    ).all()
    keys, at, types, channels, campaign_ids, sources, mediums, utm_campaigns, machine = (
        list(column) for column in (zip(*touch_rows, strict=True) if touch_rows else [()] * 9)
    )
    campaigns_seen = [TouchCampaign(*c) for c in zip(campaign_ids, sources, mediums, utm_campaigns, strict=True)]
    return Facts(
        touches=TouchColumns(keys, at, types, channels, campaigns_seen, machine),
        leads={
            r.lead_id: Lead(r.lead_id, r.created_at, r.persona, r.segment) for r in await session.execute(select(leads))
        },
        created=created,
        merged=merged,
        linked=linked,
        stages=[
            StageChange(r.lead_id, r.to_stage, r.at)
            for r in await session.execute(select(stage_changes).order_by(stage_changes.c.at))
        ],
        deals=[
            Deal(r.deal_id, r.lead_id, r.contact_email, r.amount, r.currency, r.created_at, r.won_at, r.lost_at)
            for r in await session.execute(select(deals))
        ],
        assignments=[
            AssignmentFact(r.lead_id, r.assignment_id, r.kind, r.at, r.rep_id, r.team_id, r.detail)
            for r in await session.execute(select(assignment_events))
        ],
        campaigns=await list_campaigns(session),
        costs=await list_costs(session),
        targets={(r.period, r.metric): r.value for r in await session.execute(select(targets))},
    )


async def list_campaigns(session: AsyncSession) -> list[Campaign]:
    return [_campaign(r) for r in await session.execute(select(campaigns).order_by(campaigns.c.id))]


async def save_campaign(session: AsyncSession, c: Campaign) -> None:
    values = {
        "name": c.name,
        "channel": c.channel,
        "type": c.type.value,
        "starts_on": c.starts_on,
        "ends_on": c.ends_on,
        "utm": [{k: v for k, v in vars(m).items() if v is not None} for m in c.utm],
        "updated_at": func.now(),
    }
    stmt = insert(campaigns).values(id=c.id, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=values))


async def delete_campaign(session: AsyncSession, campaign_id: str) -> bool:
    await session.execute(delete(costs).where(costs.c.campaign_id == campaign_id))
    deleted = await session.execute(delete(campaigns).where(campaigns.c.id == campaign_id).returning(campaigns.c.id))
    return deleted.first() is not None


async def list_costs(session: AsyncSession, campaign_id: str | None = None) -> list[Cost]:
    stmt = select(costs).order_by(costs.c.campaign_id, costs.c.period_start)
    if campaign_id is not None:
        stmt = stmt.where(costs.c.campaign_id == campaign_id)
    return [
        Cost(r.campaign_id, r.period_start, r.period_end, r.amount, r.currency) for r in await session.execute(stmt)
    ]


async def save_costs(session: AsyncSession, items: Sequence[Cost]) -> None:
    """Upsert: a cost for the same campaign and period replaces the one before (re-importing a CSV is safe)."""
    for c in items:
        values = {"amount": c.amount, "currency": c.currency, "updated_at": func.now()}
        stmt = insert(costs).values(
            campaign_id=c.campaign_id, period_start=c.period_start, period_end=c.period_end, **values
        )
        await session.execute(
            stmt.on_conflict_do_update(index_elements=["campaign_id", "period_start", "period_end"], set_=values)
        )


async def list_targets(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(targets.c.period, targets.c.metric, targets.c.value).order_by("period", "metric")
    )
    return [dict(r._mapping) for r in rows]


async def save_target(session: AsyncSession, period: str, metric: str, value: Decimal) -> None:
    stmt = insert(targets).values(period=period, metric=metric, value=value, updated_at=func.now())
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["period", "metric"], set_={"value": value, "updated_at": func.now()})
    )
