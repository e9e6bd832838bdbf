"""The funnel: leads entering each lifecycle stage, how many moved further, how long they stayed; sales cycle."""

import itertools
import statistics
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from services.reporting.facts import STAGES, Facts, Filters, View, period_of

DIMENSIONS = ("period", "segment", "persona", "campaign", "channel")
DAY_S = 86400.0


def entries(changes: Sequence[tuple[str, datetime]]) -> dict[str, datetime]:
    """The first time a lead entered each stage; a stage skipped on the way counts as entered then too."""
    entered: dict[str, datetime] = {}
    for stage, at in sorted(changes, key=lambda c: c[1]):
        if stage not in STAGES:
            continue
        for earlier in STAGES[: STAGES.index(stage) + 1]:
            entered.setdefault(earlier, at)
    return entered


def days_in_stages(changes: Sequence[tuple[str, datetime]]) -> dict[str, float]:
    """Days from entering each stage to the next stage change, for stages the lead has left."""
    ordered = sorted(changes, key=lambda c: c[1])
    spent: dict[str, float] = {}
    for (stage, at), (_, left) in itertools.pairwise(ordered):
        spent.setdefault(stage, (left - at).total_seconds() / DAY_S)
    return spent


def median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def funnel_report(
    facts: Facts, view: View, filters: Filters, *, group_by: Sequence[str] = ("period",), period: str = "month"
) -> dict[str, Any]:
    changes: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
    for change in facts.stages:
        changes[view.index.current(change.lead_id)].append((change.to_stage, change.at))
    cells: dict[tuple[Any, ...], dict[str, Any]] = {}
    for lead_id, lead_changes in changes.items():
        lead = facts.leads.get(lead_id)
        if not filters.keeps_lead(lead):
            continue
        campaign, channel = view.touches.source(lead_id)
        if (filters.campaign and campaign != filters.campaign) or (filters.channel and channel != filters.channel):
            continue
        entered = entries(lead_changes)
        spent = days_in_stages(lead_changes)
        values = {
            "segment": lead.segment if lead else None,
            "persona": lead.persona if lead else None,
            "campaign": campaign,
            "channel": channel,
        }
        for stage, at in entered.items():
            if not filters.in_range(at):
                continue
            key = (*tuple(period_of(at, period) if d == "period" else values[d] for d in group_by), stage)
            cell = cells.setdefault(key, {"entered": 0, "advanced": 0, "days": []})
            cell["entered"] += 1
            cell["advanced"] += any(later in entered for later in STAGES[STAGES.index(stage) + 1 :])
            if stage in spent:
                cell["days"].append(spent[stage])
    order = {s: i for i, s in enumerate(STAGES)}
    rows = [
        {
            **dict(zip(group_by, key[:-1], strict=True)),
            "stage": key[-1],
            "entered": cell["entered"],
            "advanced": cell["advanced"],
            "conversion_rate": round(cell["advanced"] / cell["entered"], 4),
            "median_days_in_stage": median(cell["days"]),
        }
        for key, cell in sorted(cells.items(), key=lambda kv: (tuple(str(k) for k in kv[0][:-1]), order[kv[0][-1]]))
    ]
    return {"rows": rows, "summary": sales_cycle(facts, view, filters)}


def sales_cycle(facts: Facts, view: View, filters: Filters) -> dict[str, Any]:
    """Median days from deal creation and from lead creation to the close, over deals won in range."""
    from_deal: list[float] = []
    from_lead: list[float] = []
    for deal in facts.deals:
        if deal.won_at is None or not filters.in_range(deal.won_at):
            continue
        if deal.created_at is not None:
            from_deal.append((deal.won_at - deal.created_at).total_seconds() / DAY_S)
        lead = facts.leads.get(view.lead_of_deal.get(deal.deal_id) or "")
        if lead is not None:
            from_lead.append((deal.won_at - lead.created_at).total_seconds() / DAY_S)
    return {
        "won_deals": sum(1 for d in facts.deals if d.won_at is not None and filters.in_range(d.won_at)),
        "median_sales_cycle_days": median(from_deal),
        "median_lead_to_close_days": median(from_lead),
    }
