"""The attribution report: every won deal in range credited by every model, side by side, per campaign or
channel and period, plus the Markov model's removal effects with their bootstrap range."""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import attrgetter
from typing import Any

from services.reporting.attribution import (
    MODELS,
    UNATTRIBUTED,
    DealCredit,
    MarkovEffects,
    Parameters,
    Touch,
    WonDeal,
    attribute_deal,
    journey,
)
from services.reporting.facts import Facts, Filters, View, period_of
from services.reporting.markov import MarkovResult, markov_attribution


@dataclass(frozen=True)
class Journey:
    path: tuple[Touch, ...]
    deal: WonDeal | None  # None: a lead that has not converted (a null path)


def journeys(facts: Facts, view: View, parameters: Parameters, filters: Filters) -> list[Journey]:
    """One journey per won deal closed in range, and one null path per lead of the filters without a won deal."""
    found: list[Journey] = []
    converted: set[str] = set()
    for deal in facts.deals:
        lead_id = view.lead_of_deal.get(deal.deal_id)
        if deal.won_at is None or not filters.in_range(deal.won_at):
            continue
        if not filters.keeps_lead(facts.leads.get(lead_id or "")):
            continue
        lead = facts.leads.get(lead_id or "")
        won = WonDeal(
            deal.deal_id,
            deal.amount,
            deal.currency,
            deal.won_at,
            lead.created_at if lead else None,
            deal.created_at,
        )
        path = journey(view.touches_by_lead.get(lead_id or "", ()), deal.won_at, parameters) if lead_id else ()
        found.append(Journey(path, won))
        if lead_id:
            converted.add(lead_id)
    until = filters.end() or max((t.at for ts in view.touches_by_lead.values() for t in ts), default=None)
    if until is None:
        return found
    for lead_id, touches in sorted(view.touches_by_lead.items()):
        if lead_id in converted or not filters.keeps_lead(facts.leads.get(lead_id)):
            continue
        path = journey(touches, until, parameters)
        if path and (filters.since is None or path[-1].at.date() >= filters.since):
            found.append(Journey(path, None))
    return found


def markov_by(found: Sequence[Journey], key: str, resamples: int) -> MarkovResult:
    state = attrgetter(key)
    paths = [([state(t) for t in j.path], j.deal is not None) for j in found if j.path]
    return markov_attribution(paths, resamples=resamples)


@dataclass(frozen=True)
class AttributionReport:
    rows: list[dict[str, Any]]
    markov: list[dict[str, Any]]
    summary: dict[str, Any]


def attribution_report(
    facts: Facts,
    view: View,
    parameters: Parameters,
    filters: Filters,
    *,
    by: str = "campaign",
    period: str = "month",
    resamples: int = 100,
) -> AttributionReport:
    found = journeys(facts, view, parameters, filters)
    markov = markov_by(found, by, resamples)
    effects = markov.removal_effects()
    per_model = MarkovEffects(effects, effects) if by == "channel" else MarkovEffects(by_campaign=effects)
    totals: dict[tuple[str, str, str], dict[str, list[Any]]] = defaultdict(
        lambda: {m: [0.0, Decimal(0)] for m in MODELS}
    )
    won = [j.deal for j in found if j.deal is not None]
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    unattributed: dict[str, Decimal] = defaultdict(Decimal)
    for j in found:
        if j.deal is None:
            continue
        revenue[j.deal.currency] += j.deal.amount
        if not j.path:
            unattributed[j.deal.currency] += j.deal.amount
        closed_in = period_of(j.deal.closed_at, period)
        for credit in attribute_deal(j.deal, j.path, parameters, per_model, by):
            if not _kept(credit, filters):
                continue
            key = (closed_in, credit.channel if by == "channel" else credit.campaign, j.deal.currency)
            cell = totals[key][credit.model]
            cell[0] += credit.share
            cell[1] += credit.revenue
    rows = [
        {
            "period": p,
            by: k,
            "currency": c,
            **{f"{m}_deals": round(v[m][0], 6) for m in MODELS},
            **{f"{m}_revenue": v[m][1] for m in MODELS},
        }
        for (p, k, c), v in sorted(totals.items())
    ]
    attributable = {c: revenue[c] - unattributed[c] for c in revenue}
    summary = {
        "won_deals": len(won),
        "attributed_deals": sum(1 for j in found if j.deal is not None and j.path),
        "null_paths": sum(1 for j in found if j.deal is None),
        "revenue": dict(revenue),
        "unattributed_revenue": dict(unattributed),
    }
    return AttributionReport(rows, markov_rows(markov, by, attributable), summary)


def _kept(credit: DealCredit, filters: Filters) -> bool:
    if filters.campaign is not None and credit.campaign not in (filters.campaign, UNATTRIBUTED):
        return False
    return filters.channel is None or credit.channel in (filters.channel, UNATTRIBUTED)


def markov_rows(markov: MarkovResult, by: str, revenue: dict[str, Decimal]) -> list[dict[str, Any]]:
    """The data-driven model's removal effects, shares with their range, conversions and revenue per currency."""
    return [
        {
            by: e.state,
            "currency": currency,
            "removal_effect": round(e.removal_effect, 6),
            "share": round(e.share, 6),
            "share_low": round(e.share_low, 6),
            "share_high": round(e.share_high, 6),
            "conversions": round(e.share * markov.conversions, 6),
            "revenue": round(float(total) * e.share, 2),
            "revenue_low": round(float(total) * e.share_low, 2),
            "revenue_high": round(float(total) * e.share_high, 2),
            "resamples": markov.resamples,
        }
        for e in markov.effects
        for currency, total in sorted(revenue.items())
    ]


def lead_source_revenue(report: AttributionReport, model: str, by: str) -> dict[str, Decimal]:
    """Attributed revenue per campaign (or channel) under one model, over every period and currency."""
    out: dict[str, Decimal] = defaultdict(Decimal)
    for row in report.rows:
        out[row[by]] += row[f"{model}_revenue"]
    return dict(out)
