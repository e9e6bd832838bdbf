"""Lead and touch events -> routing's own read model, and MQLs -> assignments; one event per transaction
(owned by `shared.consumer.consume`). Routing never reads scoring's tables: all it knows comes from here.

Touches are keyed by identity key; routing links identity keys to leads from `created` (its first
identifier and email), `merged`, and touches that carry an email together with another id.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.routing import store
from services.routing.placement import load_directory, lock_for_placements, place
from shared.consumer import BatchHandler, Handler, Record
from shared.events import (
    CloudEvent,
    LeadCreated,
    LeadData,
    LeadErased,
    LeadMerged,
    LeadProfileChanged,
    LeadScoreChanged,
    LeadStageChanged,
    TouchData,
    normalise_email,
)

MQL = "mql"


def other_ids(touch: TouchData) -> list[str]:
    i = touch.identity
    return [
        k for k in (f"anon:{i.anonymous_id}" if i.anonymous_id else "", f"user:{i.user_id}" if i.user_id else "") if k
    ]


def first_campaigns(touch: TouchData) -> list[str]:
    campaign = touch.campaign
    return [c for c in (campaign.campaign_id, campaign.utm_campaign) if c] if campaign else []


async def apply_touch(session: AsyncSession, event: CloudEvent[Any], touch: TouchData) -> None:
    key = event.subject or ""
    await store.add_touch(session, event.id, key, event.time, touch.model_dump(mode="json", exclude_none=True))
    lead_id = await store.lead_of(session, [key])
    if lead_id is None and touch.identity.email:
        lead_id = await store.lead_of(session, [normalise_email(touch.identity.email)])
    if lead_id is not None:
        await store.link(session, lead_id, [key, *other_ids(touch)])
        if campaigns := first_campaigns(touch):
            await store.set_first_campaigns(session, lead_id, campaigns)


@dataclass(frozen=True)
class BecameMql:
    """A lead to place, and the event that made it MQL (assignment and event ids derive from it)."""

    lead_id: str
    at: datetime
    cause_id: str


async def apply_lead_event(session: AsyncSession, data: LeadData, at: datetime, event_id: str) -> BecameMql | None:
    """The read model follows the lead; a move to MQL is returned for placing."""
    lead_id = data.lead_id
    if isinstance(data, LeadCreated):
        await store.upsert_lead(session, lead_id, {"email": data.email}, at)
        await store.link(session, lead_id, [data.identifier, normalise_email(data.email) if data.email else ""])
    elif isinstance(data, LeadMerged):
        await store.merge(session, lead_id, data.absorbed)
    elif isinstance(data, LeadProfileChanged):
        await store.merge_profile(session, lead_id, data.changes, at)
        await store.upsert_lead(
            session, lead_id, {"persona": data.persona, "segment": data.segment, "account": data.account}, at
        )
    elif isinstance(data, LeadScoreChanged):
        total = data.total if data.total is not None else data.fit + data.engagement
        values = {"fit": data.fit, "engagement": data.engagement, "total": total, "grade": data.grade}
        await store.upsert_lead(session, lead_id, {**values, "model_version": data.model_version}, at)
    elif isinstance(data, LeadStageChanged):
        mql = {"mql_at": at} if data.to_stage == MQL else {}
        await store.upsert_lead(session, lead_id, {"stage": data.to_stage, **mql}, at)
        if data.to_stage == MQL:
            return BecameMql(lead_id, at, event_id)
    elif isinstance(data, LeadErased):
        await store.erase(session, lead_id)
    return None


async def apply_event(session: AsyncSession, event: CloudEvent[Any]) -> BecameMql | None:
    if isinstance(event.data, LeadData):
        return await apply_lead_event(session, event.data, event.time, event.id)
    if isinstance(event.data, TouchData):
        await apply_touch(session, event, event.data)
    return None


def handler(assignments_topic: str) -> Handler:
    async def handle(session: AsyncSession, event: CloudEvent[Any], record: Record) -> None:
        if (mql := await apply_event(session, event)) is not None:
            await place(session, assignments_topic, mql.lead_id, mql.at, mql.cause_id)

    return handle


def batch_handler(assignments_topic: str) -> BatchHandler:
    """A poll's new records of one partition in one transaction: one commit instead of one per event.

    Placements come last, after the whole batch's read-model changes: a team's round-robin lock is
    then held only for them and the commit, not while the rest of the batch is applied.
    """

    async def handle_batch(session: AsyncSession, events: Sequence[tuple[CloudEvent[Any], Record]]) -> None:
        mqls = [mql for event, _ in events if (mql := await apply_event(session, event)) is not None]
        if not mqls:
            return
        directory = await load_directory(session)
        await lock_for_placements(session, [mql.lead_id for mql in mqls], directory)
        for mql in mqls:
            await place(session, assignments_topic, mql.lead_id, mql.at, mql.cause_id, directory)

    return handle_batch
