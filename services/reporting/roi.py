"""ROI per campaign or lead source (channel): cost, sourced leads and MQLs, pipeline, attributed revenue."""

from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from services.reporting.campaigns import cost_in
from services.reporting.facts import Facts, Filters, View
from services.reporting.funnel import entries


def ratio(numerator: Decimal, denominator: Decimal | int) -> float | None:
    return round(float(numerator / denominator), 4) if denominator else None


def roi_report(
    facts: Facts, view: View, filters: Filters, attributed: Mapping[str, Decimal], *, by: str = "campaign"
) -> list[dict[str, Any]]:
    """`attributed`: revenue per campaign (or channel) under the chosen model, from the attribution report.

    A lead is sourced by the campaign (channel) of its first touch; its MQL, pipeline and cost count
    when they fall in the date range.
    """
    registry = {c.id: c for c in facts.campaigns}
    cost: dict[str, Decimal] = defaultdict(Decimal)
    for c in facts.costs:
        key = (
            c.campaign_id
            if by == "campaign"
            else (registry[c.campaign_id].channel if c.campaign_id in registry else "(none)")
        )
        cost[key] += cost_in(c, filters.since, filters.until)
    stages: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for change in facts.stages:
        stages[view.index.current(change.lead_id)].append((change.to_stage, change.at))
    leads: dict[str, int] = defaultdict(int)
    mqls: dict[str, int] = defaultdict(int)
    source: dict[str, str] = {}
    for lead_id in view.touches.leads:
        lead = facts.leads.get(lead_id)
        if lead is None or not filters.keeps_lead(lead):
            continue
        campaign, channel = view.touches.source(lead_id)
        key = campaign if by == "campaign" else channel
        source[lead_id] = key
        leads[key] += filters.in_range(lead.created_at)
        mql_at = entries(stages.get(lead_id, [])).get("mql")
        mqls[key] += mql_at is not None and filters.in_range(mql_at)
    pipeline: dict[str, Decimal] = defaultdict(Decimal)
    for deal in facts.deals:
        deal_lead = view.lead_of_deal.get(deal.deal_id)
        if deal_lead in source and filters.in_range(deal.created_at):
            pipeline[source[deal_lead]] += deal.amount
    keys = sorted({*cost, *leads, *pipeline, *attributed} - {"(unattributed)"})
    if filters.campaign and by == "campaign":
        keys = [k for k in keys if k == filters.campaign]
    if filters.channel and by == "channel":
        keys = [k for k in keys if k == filters.channel]
    return [
        {
            by: k,
            **({"name": registry[k].name if k in registry else None} if by == "campaign" else {}),
            "cost": cost[k],
            "leads": leads[k],
            "cost_per_lead": ratio(cost[k], leads[k]),
            "mqls": mqls[k],
            "cost_per_mql": ratio(cost[k], mqls[k]),
            "pipeline": pipeline[k],
            "attributed_revenue": attributed.get(k, Decimal(0)),
            "roi": ratio(attributed.get(k, Decimal(0)) - cost[k], cost[k]),
        }
        for k in keys
    ]
