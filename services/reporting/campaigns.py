"""The campaign registry as values: campaigns, their UTM mapping, costs and KPI targets; resolving a touch."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from services.reporting.attribution import NO_CAMPAIGN

CHANNEL_OF_TOUCH = {
    "email_open": "email",
    "email_click": "email",
    "email_forward": "email",
    "web_visit": "web",
    "form_fill": "web",
    "qr_scan": "qr",
    "ad_click": "paid",
    "event_attended": "event",
}


class CampaignType(StrEnum):
    LEAD_GENERATION = "lead_generation"
    NURTURE = "nurture"
    PROMOTION = "promotion"


class Metric(StrEnum):
    MQLS = "mqls"
    SQLS = "sqls"
    PIPELINE = "pipeline"
    REVENUE = "revenue"


@dataclass(frozen=True)
class UtmMapping:
    """A touch whose UTM values equal every field given here belongs to the campaign (case-insensitive)."""

    utm_campaign: str
    utm_source: str | None = None
    utm_medium: str | None = None


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    channel: str
    type: CampaignType
    starts_on: date | None = None
    ends_on: date | None = None
    utm: tuple[UtmMapping, ...] = ()


@dataclass(frozen=True)
class Cost:
    campaign_id: str
    period_start: date
    period_end: date
    amount: Decimal
    currency: str


class TouchCampaign(NamedTuple):
    campaign_id: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None


def _same(mapped: str | None, seen: str | None) -> bool:
    return mapped is None or (seen is not None and mapped.lower() == seen.lower())


def resolve_campaign(touch: TouchCampaign, registry: Sequence[Campaign]) -> str:
    """The touch's campaign id as sent, else the first registered campaign its UTM values map to."""
    if touch.campaign_id:
        return touch.campaign_id
    if touch.utm_campaign:
        for campaign in registry:
            for m in campaign.utm:
                if (
                    _same(m.utm_campaign, touch.utm_campaign)
                    and _same(m.utm_source, touch.utm_source)
                    and _same(m.utm_medium, touch.utm_medium)
                ):
                    return campaign.id
        return f"utm:{touch.utm_campaign.lower()}"  # unregistered, still told apart
    return NO_CAMPAIGN


def resolve_channel(touch_channel: str | None, touch_type: str, campaign: Campaign | None) -> str:
    """The channel the touch names, else its campaign's, else the one its type implies."""
    if touch_channel:
        return touch_channel
    if campaign is not None:
        return campaign.channel
    return CHANNEL_OF_TOUCH.get(touch_type, "other")


def cost_in(cost: Cost, since: date | None, until: date | None) -> Decimal:
    """The part of a cost falling in [since, until], spread evenly over the days of its period."""
    start = max(cost.period_start, since) if since else cost.period_start
    end = min(cost.period_end, until) if until else cost.period_end
    if end < start:
        return Decimal(0)
    days = (cost.period_end - cost.period_start).days + 1
    return (cost.amount * ((end - start).days + 1) / days).quantize(Decimal("0.01"))
