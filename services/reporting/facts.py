"""What reporting knows, as plain values loaded from its read models, and the views every report shares:
each lead's touches (identities resolved, campaigns and channels resolved), periods and filters."""

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from services.reporting.campaigns import Campaign, Cost, TouchCampaign, resolve_campaign, resolve_channel
from services.reporting.identities import LeadIndex, index_leads

STAGES = ("subscriber", "lead", "mql", "sal", "sql", "opportunity", "customer")
PERIODS = ("day", "week", "month", "quarter", "year", "all")
Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class TouchColumns:
    """The stored touches column by column: a million touches are a few lists, not a million objects."""

    identity_keys: Sequence[str] = ()
    at: Sequence[float] = ()  # seconds since the epoch, UTC
    types: Sequence[str] = ()
    channels: Sequence[str | None] = ()
    campaigns: Sequence[TouchCampaign] = ()
    machine_generated: Sequence[bool] = ()

    @classmethod
    def of(cls, rows: Iterable[tuple[str, datetime, str, str | None, TouchCampaign, bool]]) -> "TouchColumns":
        """From (identity key, time, type, channel, campaign, machine generated) rows."""
        keys, at, types, channels, campaigns, machine = zip(*rows, strict=True) or ((),) * 6
        return cls(keys, [t.timestamp() for t in at], types, channels, campaigns, machine)


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
    touches: TouchColumns = field(default_factory=TouchColumns)
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
class TouchTable:
    """Every touch of a known lead, ordered by lead then time, as arrays of codes; the names they stand for."""

    lead: Ints
    at: Floats  # seconds since the epoch
    type: Ints
    campaign: Ints
    channel: Ints
    machine_generated: Bools
    leads: list[str]  # lead code -> lead id, in order
    types: list[str]
    campaigns: list[str]
    channels: list[str]
    starts: Ints  # per lead code: its first row; `ends` one past its last
    ends: Ints

    def rows_of(self, lead_id: str) -> tuple[int, int]:
        code = bisect.bisect_left(self.leads, lead_id)
        if code < len(self.leads) and self.leads[code] == lead_id:
            return int(self.starts[code]), int(self.ends[code])
        return 0, 0

    def source(self, lead_id: str) -> tuple[str, str]:
        """A lead's source: the campaign and channel of its first touch."""
        start, end = self.rows_of(lead_id)
        if start == end:
            return ("(none)", "(none)")
        return self.campaigns[self.campaign[start]], self.channels[self.channel[start]]


@dataclass(frozen=True)
class View:
    """The facts resolved: the lead of every touch and deal, every lead's touches in time order."""

    index: LeadIndex
    touches: TouchTable
    lead_of_deal: Mapping[str, str | None]


def _numbered(values: Sequence[Any]) -> tuple[list[Any], Ints]:
    """Each distinct value once (in first-seen order) and every value's number, in C loops."""
    distinct = list(dict.fromkeys(values))
    numbers = {v: i for i, v in enumerate(distinct)}
    return distinct, np.fromiter(map(numbers.__getitem__, values), dtype=np.int64, count=len(values))


def _ranked(names: Sequence[str]) -> tuple[list[str], Ints]:
    """The names sorted, and where each of `names` went: codes that do not depend on arrival order."""
    ordered = sorted(set(names))
    rank = {name: i for i, name in enumerate(ordered)}
    return ordered, np.array([rank[n] for n in names], dtype=np.int64)


def resolve(facts: Facts) -> View:
    """Every touch's lead, campaign and channel, in arrays; values repeat a lot, so each distinct one is
    resolved once and the million touches are only numbered."""
    index = index_leads(facts.created, facts.merged, facts.linked)
    t = facts.touches
    registry = {c.id: c for c in facts.campaigns}
    identities, identity = _numbered(t.identity_keys)
    raw_campaigns, raw_campaign = _numbered(t.campaigns)
    raw_channels, raw_channel = _numbered(t.channels)
    raw_types, raw_type = _numbered(t.types)
    lead_names, lead_by_identity = _ranked([index.lead_of(k) or "" for k in identities])  # "": no lead event yet
    combos, combo = np.unique(
        (raw_campaign * len(raw_channels) + raw_channel) * len(raw_types) + raw_type, return_inverse=True
    )
    named = []
    for c in combos.tolist():
        rest, kind = divmod(c, len(raw_types))
        campaign_of, channel_of = divmod(rest, len(raw_channels))
        campaign_id = resolve_campaign(raw_campaigns[campaign_of], facts.campaigns)
        named.append(
            (campaign_id, resolve_channel(raw_channels[channel_of], raw_types[kind], registry.get(campaign_id)))
        )
    campaigns, campaign_by_combo = _ranked([n[0] for n in named])
    channels, channel_by_combo = _ranked([n[1] for n in named])
    types, type_by_raw = _ranked(raw_types)
    lead = lead_by_identity[identity]
    at = np.array(t.at, dtype=np.float64)
    type_ = type_by_raw[raw_type]
    campaign, channel = campaign_by_combo[combo], channel_by_combo[combo]
    machine = np.array(t.machine_generated, dtype=bool)
    # by lead, then time, then the rest: the same order whatever order the touches were stored in
    ties = ((type_ * len(campaigns) + campaign) * len(channels) + channel) * 2 + machine
    order = np.lexsort((ties, at, lead))
    unresolved = lead_names[:1] == [""]  # "" sorts first: touches without a lead (yet) come first; left out
    if unresolved:
        order = order[lead[order] > 0]
        lead, lead_names = lead - 1, lead_names[1:]
    lead = lead[order]
    codes = np.arange(len(lead_names))
    table = TouchTable(
        lead, at[order], type_[order], campaign[order], channel[order], machine[order],
        lead_names, types, campaigns, channels,
        np.searchsorted(lead, codes, side="left"), np.searchsorted(lead, codes, side="right"),
    )  # fmt: skip
    lead_of_deal = {d.deal_id: deal_lead(d, index) for d in facts.deals}
    return View(index, table, lead_of_deal)


def deal_lead(deal: Deal, index: LeadIndex) -> str | None:
    if deal.lead_id:
        return index.current(deal.lead_id)
    if deal.contact_email:
        return index.lead_of(deal.contact_email.strip().lower())
    return None
