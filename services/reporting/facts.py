"""What reporting knows, as plain values loaded from its read models, and the views every report shares:
each lead's touches (identities resolved, campaigns and channels resolved), periods and filters."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from services.reporting.attribution import Touch
from services.reporting.campaigns import Campaign, Cost, TouchCampaign, resolve_campaign, resolve_channel
from services.reporting.identities import LeadIndex, index_leads

STAGES = ("subscriber", "lead", "mql", "sal", "sql", "opportunity", "customer")
PERIODS = ("day", "week", "month", "quarter", "year", "all")


class StoredTouch(NamedTuple):
    identity_key: str
    at: datetime
    type: str
    channel: str | None
    campaign: TouchCampaign
    machine_generated: bool = False


@dataclass(frozen=True, slots=True)
class Lead:
    lead_id: str
    created_at: datetime
    persona: str | None = None
    segment: str | None = None


@dataclass(frozen=True, slots=True)
class StageChange:
    lead_id: str
    to_stage: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Deal:
    deal_id: str
    lead_id: str | None
    contact_email: str | None
    amount: Decimal
    currency: str
    created_at: datetime | None
    won_at: datetime | None
    lost_at: datetime | None


@dataclass(frozen=True, slots=True)
class AssignmentFact:
    lead_id: str
    assignment_id: str
    kind: str  # assigned, accepted, rejected, reassigned, sla_breached, disposition
    at: datetime
    rep_id: str | None = None
    team_id: str | None = None
    detail: str | None = None  # the rejection reason, the disposition or the breached SLA


@dataclass(frozen=True)
class Facts:
    touches: Sequence[StoredTouch] = ()
    leads: Mapping[str, Lead] = field(default_factory=dict)
    created: Sequence[tuple[str, str]] = ()  # (lead id, identifier)
    merged: Sequence[tuple[str, str]] = ()  # (survivor, absorbed)
    linked: Sequence[tuple[str, str]] = ()  # identifiers seen on one touch
    stages: Sequence[StageChange] = ()
    deals: Sequence[Deal] = ()
    assignments: Sequence[AssignmentFact] = ()
    campaigns: Sequence[Campaign] = ()
    costs: Sequence[Cost] = ()
    targets: Mapping[tuple[str, str], Decimal] = field(default_factory=dict)  # (period, metric) -> value


@dataclass(frozen=True)
class Filters:
    since: date | None = None
    until: date | None = None
    campaign: str | None = None
    channel: str | None = None
    segment: str | None = None
    persona: str | None = None
    team: str | None = None

    def in_range(self, at: datetime | None) -> bool:
        if at is None:
            return False
        day = at.date()
        return (self.since is None or day >= self.since) and (self.until is None or day <= self.until)

    def end(self) -> datetime | None:
        """The end of the range as a time (exclusive), for journeys that did not convert."""
        if self.until is None:
            return None
        return datetime.combine(self.until + timedelta(days=1), datetime.min.time(), tzinfo=UTC)

    def keeps_lead(self, lead: Lead | None) -> bool:
        if self.segment is None and self.persona is None:
            return True
        if lead is None:
            return False
        return (self.segment is None or lead.segment == self.segment) and (
            self.persona is None or lead.persona == self.persona
        )


def period_of(at: datetime | date, period: str) -> str:
    day = at.date() if isinstance(at, datetime) else at
    if period == "day":
        return day.isoformat()
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return f"{day.year}-{day.month:02d}"
    if period == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    if period == "year":
        return str(day.year)
    return "all"


@dataclass(frozen=True)
class View:
    """The facts resolved: the lead of every touch and deal, each lead's touches in time order."""

    index: LeadIndex
    touches_by_lead: Mapping[str, Sequence[Touch]]
    lead_of_deal: Mapping[str, str | None]


def resolve(facts: Facts) -> View:
    index = index_leads(facts.created, facts.merged, facts.linked)
    registry = {c.id: c for c in facts.campaigns}
    resolved: dict[tuple[TouchCampaign, str | None, str], tuple[str, str]] = {}  # few distinct values, many touches
    lead_of = index.by_identifier.get
    touches_by_lead: dict[str, list[Touch]] = {}
    make = tuple.__new__  # NamedTuple's own __new__ is Python code: a third of this loop's time
    for identity_key, at, kind, channel, raw_campaign, machine in facts.touches:
        lead = lead_of(identity_key)
        if lead is None:
            continue  # no lead event yet: counted once scoring tells which lead it is
        key = (raw_campaign, channel, kind)
        names = resolved.get(key)
        if names is None:
            campaign = resolve_campaign(raw_campaign, facts.campaigns)
            names = resolved[key] = (campaign, resolve_channel(channel, kind, registry.get(campaign)))
        touch = make(Touch, (at, kind, names[0], names[1], machine))
        found = touches_by_lead.get(lead)
        if found is None:
            touches_by_lead[lead] = [touch]
        else:
            found.append(touch)
    for touches in touches_by_lead.values():
        touches.sort()  # by time first (a Touch is a tuple starting with `at`); no key function to call
    lead_of_deal = {d.deal_id: deal_lead(d, index) for d in facts.deals}
    return View(index, touches_by_lead, lead_of_deal)


def deal_lead(deal: Deal, index: LeadIndex) -> str | None:
    if deal.lead_id:
        return index.current(deal.lead_id)
    if deal.contact_email:
        return index.lead_of(deal.contact_email.strip().lower())
    return None


def source_of(touches: Sequence[Touch]) -> tuple[str, str]:
    """A lead's source: the campaign and channel of its first touch."""
    if not touches:
        return ("(none)", "(none)")
    return touches[0].campaign, touches[0].channel
