"""The attribution report: every won deal in range credited by every model, side by side, per campaign or
channel and period, plus the Markov model's removal effects with their bootstrap range."""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from services.reporting.attribution import (
    MODELS,
    UNATTRIBUTED,
    Parameters,
    WonDeal,
)
from services.reporting.batch import Credits, DealRows, credit_rows
from services.reporting.facts import Facts, Filters, View, period_of
from services.reporting.markov import Journeys, MarkovResult, chain_attribution

Ints = npt.NDArray[np.int64]
# (period, campaign or channel, currency) -> model -> [deals, revenue]
Totals = dict[tuple[str, str, str], dict[str, list[Any]]]


@dataclass(frozen=True)
class JourneyRows:
    """Journeys as rows of the touch table: journey after journey, each in time order."""

    rows: Ints
    lengths: Ints  # per journey (a won deal's may be 0: unattributed)
    deals: list[WonDeal | None]  # per journey; None: a lead that has not converted (a null path)


def _expand(starts: Ints, ends: Ints) -> tuple[Ints, Ints]:
    """The rows start..end of every span, and which span each belongs to."""
    lengths = ends - starts
    span = np.repeat(np.arange(len(starts), dtype=np.int64), lengths)
    offsets = np.cumsum(lengths) - lengths
    return np.arange(int(lengths.sum()), dtype=np.int64) - offsets[span] + starts[span], span


def journeys(facts: Facts, view: View, parameters: Parameters, filters: Filters) -> JourneyRows:
    """A journey per won deal closed in range, and a null path per lead of the filters without a won deal.

    A journey is the lead's counted touches in (close - lookback, close]; a null path runs to the end of
    the range (or of the data) and counts only if it reaches into the range.
    """
    t = view.touches
    deals: list[WonDeal | None] = []
    first_rows: list[int] = []
    end_rows: list[int] = []
    closes: list[float] = []
    converted: set[str] = set()
    for deal in facts.deals:
        if deal.won_at is None or not filters.in_range(deal.won_at):
            continue
        lead_id = view.lead_of_deal.get(deal.deal_id)
        lead = facts.leads.get(lead_id) if lead_id else None
        if not filters.keeps_lead(lead):
            continue
        created = lead.created_at if lead else None
        deals.append(WonDeal(deal.deal_id, deal.amount, deal.currency, deal.won_at, created, deal.created_at))
        first_row, end_row = t.rows_of(lead_id) if lead_id else (0, 0)
        first_rows.append(first_row)
        end_rows.append(end_row)
        closes.append(deal.won_at.timestamp())
        if lead_id:
            converted.add(lead_id)
    won = len(deals)
    range_end = filters.end()
    end = range_end.timestamp() if range_end else float(t.at.max()) if len(t.at) else 0.0
    open_leads = np.array([lead_id not in converted for lead_id in t.leads], dtype=bool)
    if filters.segment is not None or filters.persona is not None:
        open_leads &= np.array([filters.keeps_lead(facts.leads.get(lead_id)) for lead_id in t.leads], dtype=bool)
    deals += [None] * int(open_leads.sum())
    starts = np.concatenate([np.array(first_rows, dtype=np.int64), t.starts[open_leads]])
    ends = np.concatenate([np.array(end_rows, dtype=np.int64), t.ends[open_leads]])
    until = np.concatenate([np.array(closes, dtype=np.float64), np.full(int(open_leads.sum()), end)])
    rows, journey = _expand(starts, ends)
    counted = np.array([parameters.counts_type(name) for name in t.types] or [False], dtype=bool)
    at = t.at[rows]
    keep = (at <= until[journey]) & (at > until[journey] - parameters.lookback.total_seconds()) & counted[t.type[rows]]
    if not parameters.include_machine_generated:
        keep &= ~t.machine_generated[rows]
    rows, journey = rows[keep], journey[keep]
    lengths = np.bincount(journey, minlength=len(deals))
    last = np.full(len(deals), -np.inf)
    last[journey] = t.at[rows]  # rows are in time order: the last write per journey is its last touch
    since = datetime.combine(filters.since, datetime.min.time(), tzinfo=UTC).timestamp() if filters.since else -np.inf
    valid = np.ones(len(deals), dtype=bool)
    valid[won:] = (lengths[won:] > 0) & (last[won:] >= since)
    return JourneyRows(rows[valid[journey]], lengths[valid], [d for d, v in zip(deals, valid, strict=True) if v])


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
    t = view.touches
    states, names = (t.channel, t.channels) if by == "channel" else (t.campaign, t.campaigns)
    travelled = found.lengths > 0
    converted = np.array([d is not None for d in found.deals], dtype=bool)
    chain = Journeys.of(names, states[found.rows], found.lengths[travelled], converted[travelled])
    markov = chain_attribution(chain, resamples=resamples)
    effects = markov.removal_effects()
    totals: Totals = defaultdict(lambda: {m: [0.0, Decimal(0)] for m in MODELS})
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    unattributed: dict[str, Decimal] = defaultdict(Decimal)
    for deal, length in zip(found.deals, found.lengths.tolist(), strict=True):
        if deal is None:
            continue
        revenue[deal.currency] += deal.amount
        if length == 0:
            unattributed[deal.currency] += deal.amount
            for m in MODELS:
                cell = totals[(period_of(deal.closed_at, period), UNATTRIBUTED, deal.currency)][m]
                cell[0] += 1.0
                cell[1] += deal.amount
    deals = [d for d, length in zip(found.deals, found.lengths.tolist(), strict=True) if d is not None and length]
    rows = deal_rows(found, view, by, effects)
    add_credits(totals, credit_rows(deals, rows, parameters), deals, period, by, filters)
    report_rows = [
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
        "won_deals": sum(1 for d in found.deals if d is not None),
        "attributed_deals": len(deals),
        "null_paths": sum(1 for d in found.deals if d is None),
        "revenue": dict(revenue),
        "unattributed_revenue": dict(unattributed),
    }
    return AttributionReport(report_rows, markov_rows(markov, by, attributable), summary)


def deal_rows(found: JourneyRows, view: View, by: str, effects: dict[str, float]) -> DealRows:
    """The touches of the won deals' journeys, numbered deal by deal, for `credit_rows`."""
    t = view.touches
    journey = np.repeat(np.arange(len(found.lengths), dtype=np.int64), found.lengths)
    won = np.array([d is not None for d in found.deals], dtype=bool)
    mine = won[journey]
    rows = found.rows[mine]
    deal = (np.cumsum(won & (found.lengths > 0)) - 1)[journey[mine]]
    pairs = t.campaign[rows] * max(len(t.channels), 1) + t.channel[rows]
    used, key = np.unique(pairs, return_inverse=True)
    keys = [(t.campaigns[p // max(len(t.channels), 1)], t.channels[p % max(len(t.channels), 1)]) for p in used.tolist()]
    states, names = (t.channel, t.channels) if by == "channel" else (t.campaign, t.campaigns)
    return DealRows(
        deal, t.at[rows], key.astype(np.int64), states[rows], keys, np.array([effects.get(n, 0.0) for n in names])
    )


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
