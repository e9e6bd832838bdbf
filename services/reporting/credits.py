"""The attribution report: every won deal in range credited by every model, side by side, per campaign or
channel and period, plus the Markov model's removal effects with their bootstrap range."""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import attrgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from services.reporting.attribution import (
    MODELS,
    UNATTRIBUTED,
    MarkovEffects,
    Parameters,
    Touch,
    WonDeal,
    journey,
)
from services.reporting.batch import Credits, credit_deals
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
        if deal.won_at is None or not filters.in_range(deal.won_at):
            continue
        lead_id = view.lead_of_deal.get(deal.deal_id)
        lead = facts.leads.get(lead_id) if lead_id else None
        if not filters.keeps_lead(lead):
            continue
        won = WonDeal(
            deal.deal_id, deal.amount, deal.currency, deal.won_at, lead.created_at if lead else None, deal.created_at
        )
        path = journey(view.touches_by_lead.get(lead_id, ()), deal.won_at, parameters) if lead_id else ()
        found.append(Journey(path, won))
        if lead_id:
            converted.add(lead_id)
    last_touch = max((touches[-1].at for touches in view.touches_by_lead.values()), default=None)
    until = filters.end() or last_touch  # a null path runs to the end of the range, or of the data
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
    attributed: list[Journey] = []
    for j in found:
        if j.deal is None:
            continue
        revenue[j.deal.currency] += j.deal.amount
        if j.path:
            attributed.append(j)
            continue
        unattributed[j.deal.currency] += j.deal.amount
        for m in MODELS:
            cell = totals[(period_of(j.deal.closed_at, period), UNATTRIBUTED, j.deal.currency)][m]
            cell[0] += 1.0
            cell[1] += j.deal.amount
    deals = [j.deal for j in attributed if j.deal is not None]
    credits = credit_deals(deals, [j.path for j in attributed], parameters, per_model, by)
    add_credits(totals, credits, deals, period, by, filters)
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


Totals = dict[
    tuple[str, str, str], dict[str, list[Any]]
]  # (period, campaign or channel, currency) -> model -> [deals, revenue]


def add_credits(
    totals: Totals, credits: Credits, deals: Sequence[WonDeal], period: str, by: str, filters: Filters
) -> None:
    """Sum the credits into report rows; revenue in integer quanta per row, so the sums stay exact."""
    if not len(credits.deal):
        return
    kept = np.array(
        [(filters.campaign in (None, c)) and (filters.channel in (None, ch)) for c, ch in credits.keys], dtype=bool
    )[credits.key]
    names = [ch if by == "channel" else c for c, ch in credits.keys]
    name_index = {n: i for i, n in enumerate(dict.fromkeys(names))}
    key_name = np.array([name_index[n] for n in names], dtype=np.int64)
    prefixes: dict[tuple[str, str, Decimal], int] = {}
    deal_prefix = np.array(
        [
            prefixes.setdefault((period_of(d.closed_at, period), d.currency, q), len(prefixes))
            for d, q in zip(deals, credits.quanta, strict=True)
        ],
        dtype=np.int64,
    )
    cells = deal_prefix[credits.deal] * len(name_index) + key_name[credits.key]
    rows, row_of = np.unique(cells[kept], return_inverse=True)
    prefix_list, name_list = list(prefixes), list(name_index)
    for m in MODELS:
        deals_credited = np.bincount(row_of, weights=credits.shares[m][kept], minlength=len(rows))
        units = _exact_sums(row_of, credits.units[m][kept], len(rows))
        for r, cell in enumerate(rows):
            (p, currency, q), name = prefix_list[cell // len(name_index)], name_list[cell % len(name_index)]
            total = totals[(p, name, currency)][m]
            total[0] += float(deals_credited[r])
            total[1] += q * units[r]


def _exact_sums(row_of: npt.NDArray[np.int64], units: npt.NDArray[np.int64], rows: int) -> list[int]:
    """Integer sums per row; in Python integers when int64 could overflow."""
    if len(units) == 0 or float(np.abs(units).max()) * len(units) < 2**62:
        sums = np.zeros(rows, dtype=np.int64)
        np.add.at(sums, row_of, units)
        return [int(x) for x in sums]
    exact = [0] * rows
    for r, u in zip(row_of.tolist(), units.tolist(), strict=True):
        exact[r] += u
    return exact


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
