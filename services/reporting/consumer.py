"""Applying events to the read models: one small function per kind of event, in the consume loop's transaction."""

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting import store
from services.reporting.identities import index_leads
from shared.consumer import Handler, Record
from shared.events import (
    AssignmentData,
    AssignmentRejected,
    CloudEvent,
    DealCreated,
    DealData,
    DealLost,
    DealWon,
    DispositionRecorded,
    Identified,
    LeadCreated,
    LeadErased,
    LeadMerged,
    LeadProfileChanged,
    LeadStageChanged,
    SlaBreached,
    TouchData,
    identity_key,
    normalise_email,
)


def short_type(event_type: str) -> str:
    """`leadflow.touch.email_open.v1` -> `email_open`."""
    return event_type.split(".")[2]


def identifiers_of(touch: TouchData) -> list[str]:
    """Every identifier the touch names (as scoring names them): they belong to one person."""
    i = touch.identity
    found = [
        normalise_email(i.email) if i.email else None,
        f"anon:{i.anonymous_id}" if i.anonymous_id else None,
        f"user:{i.user_id}" if i.user_id else None,
        f"rcpt:{i.recipient_id}" if i.recipient_id else None,
    ]
    if isinstance(touch, Identified) and touch.previous_id:
        previous = touch.previous_id.strip()
        found += [normalise_email(previous)] if "@" in previous else [f"anon:{previous}", f"user:{previous}"]
    return list(dict.fromkeys(f for f in found if f))


def touch_row(event: CloudEvent[Any], touch: TouchData) -> dict[str, Any]:
    campaign = touch.campaign
    return {
        "event_id": event.id,
        "identity_key": identity_key(touch.identity),
        "occurred_at": event.time,
        "type": short_type(event.type),
        "channel": touch.channel,
        "campaign_id": campaign.campaign_id if campaign else None,
        "utm_source": campaign.utm_source if campaign else None,
        "utm_medium": campaign.utm_medium if campaign else None,
        "utm_campaign": campaign.utm_campaign if campaign else None,
        "machine_generated": touch.machine_generated,
    }


def deal_values(deal: DealData) -> dict[str, Any]:
    """Only what the event says: a stage change without an amount keeps the amount known before."""
    values = {
        "lead_id": deal.lead_id,
        "contact_email": normalise_email(deal.contact_email) if deal.contact_email else None,
        "amount": deal.amount,
        "currency": deal.currency,
        "stage": deal.stage,
    }
    return {k: v for k, v in values.items() if v is not None}


def deal_outcome(deal: DealData) -> str:
    if isinstance(deal, DealWon):
        return "won"
    if isinstance(deal, DealLost):
        return "lost"
    return "created" if isinstance(deal, DealCreated) else "changed"


def assignment_row(event: CloudEvent[Any], a: AssignmentData) -> dict[str, Any]:
    detail = None
    if isinstance(a, AssignmentRejected):
        detail = a.reason
    elif isinstance(a, DispositionRecorded):
        detail = a.disposition
    elif isinstance(a, SlaBreached):
        detail = a.sla
    return {
        "event_id": event.id,
        "lead_id": a.lead_id,
        "assignment_id": a.assignment_id,
        "kind": short_type(event.type),
        "rep_id": a.rep_id,
        "team_id": a.team_id,
        "detail": detail,
        "at": event.time,
    }


async def apply_lead_event(session: AsyncSession, event: CloudEvent[Any], at: datetime) -> None:
    data = event.data
    if isinstance(data, LeadCreated):
        names = [data.identifier, *([normalise_email(data.email)] if data.email else [])]
        await store.add_lead(session, data.lead_id, at, names)
    elif isinstance(data, LeadMerged):
        await store.merge_leads(session, data.lead_id, data.absorbed)
    elif isinstance(data, LeadProfileChanged):
        values = {"persona": data.persona, "segment": data.segment, "account": data.account}
        await store.save_profile(session, data.lead_id, at, {k: v for k, v in values.items() if v is not None})
    elif isinstance(data, LeadStageChanged):
        row = {"event_id": event.id, "lead_id": data.lead_id, "from_stage": data.from_stage}
        await store.add_stage_change(session, {**row, "to_stage": data.to_stage, "cause": data.cause[:200], "at": at})
    elif isinstance(data, LeadErased):
        await erase_lead(session, data.lead_id)


async def erase_lead(session: AsyncSession, lead_id: str) -> None:
    index = index_leads(*await store.identity_graph(session))
    identifiers = [i for i, lead in index.by_identifier.items() if lead == lead_id]
    absorbed = [old for old, now in index.by_lead.items() if now == lead_id and old != lead_id]
    await store.erase(session, lead_id, identifiers, absorbed)


def handler() -> Handler:
    async def handle(session: AsyncSession, event: CloudEvent[Any], record: Record) -> None:
        data = event.data
        if isinstance(data, TouchData):
            await store.add_touch(session, touch_row(event, data), identifiers_of(data))
        elif isinstance(data, DealData):
            await store.apply_deal(session, data.deal_id, deal_values(data), event.time, deal_outcome(data))
        elif isinstance(data, AssignmentData):
            await store.add_assignment_event(session, assignment_row(event, data))
        else:
            await apply_lead_event(session, event, event.time)

    return handle
