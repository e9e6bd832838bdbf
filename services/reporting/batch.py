"""Every model's credits for all won deals at once, as array operations: the attribution report's hot path.

`attribution.attribute_deal` is the one-deal reference: tests check that both give the same shares, the
same revenue to within one quantum (a tie between equal remainders may go to another campaign) plus 1e-11
of the amount (times here are float seconds: their sub-microsecond rounding moves time-decay weights in the
12th digit), and that every deal's credits add up to its amount exactly in every model.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from services.reporting.attribution import MODELS, MarkovEffects, Parameters, Touch, WonDeal, allocate_units, quantum

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
EXACT_IN_FLOAT = 2**53  # deals counting more quanta than this are allocated by the reference, in Python integers


@dataclass(frozen=True)
class DealRows:
    """The won deals' journeys, touch by touch: deal after deal, each in time order."""

    deal: Ints  # which deal
    at: Floats  # seconds since the epoch
    key: Ints  # code into `keys`: the touch's (campaign, channel)
    state: Ints  # code into `effects`: the Markov state (campaign or channel)
    keys: list[tuple[str, str]]
    effects: Floats  # removal effect per state code


@dataclass(frozen=True)
class Credits:
    """One row per deal and (campaign, channel) on its journey; per model its share and revenue in quanta."""

    keys: list[tuple[str, str]]
    deal: Ints
    key: Ints
    shares: dict[str, Floats]
    units: dict[str, Ints]
    quanta: list[Decimal]  # per deal


def rows_of(deals: Sequence[WonDeal], paths: Sequence[Sequence[Touch]], markov: MarkovEffects, by: str) -> DealRows:
    """DealRows from journeys of Touch values (the reference's input)."""
    key_index: dict[tuple[str, str], int] = {}
    state_index: dict[str, int] = {}
    deal, at, keys, states = [], [], [], []
    for d, path in enumerate(paths):
        for t in path:
            deal.append(d)
            at.append(t.at.timestamp())
            keys.append(key_index.setdefault((t.campaign, t.channel), len(key_index)))
            states.append(state_index.setdefault(t.channel if by == "channel" else t.campaign, len(state_index)))
    removal = markov.by_channel if by == "channel" else markov.by_campaign
    return DealRows(
        np.array(deal, dtype=np.int64),
        np.array(at, dtype=np.float64),
        np.array(keys, dtype=np.int64),
        np.array(states, dtype=np.int64),
        list(key_index),
        np.array([removal.get(s, 0.0) for s in state_index], dtype=np.float64),
    )


def _seconds(at: datetime | None) -> float:
    return at.timestamp() if at is not None else math.nan


def _key_position(rows: DealRows, at: Floats, deals: int, default: Ints) -> Ints:
    """Per deal: the last touch at or before `at` (the first touch if none; `default` when `at` is unknown)."""
    before = np.bincount(rows.deal, weights=rows.at <= at[rows.deal], minlength=deals).astype(np.int64)
    return np.where(np.isnan(at), default, np.maximum(before - 1, 0))


def _weights(rows: DealRows, deals: Sequence[WonDeal], parameters: Parameters) -> dict[str, Floats]:
    count = len(deals)
    lengths = np.bincount(rows.deal, minlength=count)
    starts = np.cumsum(lengths) - lengths
    position = np.arange(len(rows.deal)) - starts[rows.deal]
    length = lengths[rows.deal]
    n = length.astype(np.float64)
    first, last = position == 0, position == length - 1
    u_shaped = np.where(length <= 2, 1 / n, np.where(first | last, 0.4, 0.2 / np.maximum(n - 2, 1)))
    lead_at = np.array([_seconds(d.lead_created_at) for d in deals], dtype=np.float64)
    opportunity_at = np.array([_seconds(d.opportunity_at) for d in deals], dtype=np.float64)
    lead_key = _key_position(rows, lead_at, count, np.zeros(count, dtype=np.int64))
    opportunity_key = _key_position(rows, opportunity_at, count, lengths - 1)
    w_shaped = 0.3 * first + 0.3 * (position == lead_key[rows.deal]) + 0.3 * (position == opportunity_key[rows.deal])
    rest = w_shaped == 0
    rest_count = np.bincount(rows.deal, weights=rest, minlength=count)[rows.deal]
    w_shaped = np.where(rest_count > 0, np.where(rest, 0.1 / np.maximum(rest_count, 1), w_shaped), w_shaped / 0.9)
    closed = np.array([d.closed_at.timestamp() for d in deals], dtype=np.float64)
    age = closed[rows.deal] - rows.at
    newest = age[starts + lengths - 1][rows.deal]  # weights relative to the newest touch: none underflows to 0
    states = len(rows.effects)
    per_state = np.bincount(rows.deal * states + rows.state, minlength=count * states)
    markov = np.maximum(rows.effects[rows.state], 0.0) / per_state[rows.deal * states + rows.state]
    markov_total = np.bincount(rows.deal, weights=markov, minlength=count)[rows.deal]
    return {
        "first_touch": first.astype(np.float64),
        "last_touch": last.astype(np.float64),
        "linear": 1 / n,
        "u_shaped": u_shaped,
        "w_shaped": w_shaped,
        "time_decay": 0.5 ** ((age - newest) / parameters.half_life.total_seconds()),
        "markov": np.where(markov_total > 0, markov, 1 / n),
    }


def _allocate(units: list[int], group_deal: Ints, weights: Floats) -> Ints:
    """Largest remainder per deal, vectorised; exact because the leftovers are counted in integers."""
    deals = len(units)
    totals = np.bincount(group_deal, weights=weights, minlength=deals)
    weights = np.where(totals[group_deal] > 0, weights, 1.0)  # all zero: an equal split, as the reference does
    totals = np.bincount(group_deal, weights=weights, minlength=deals)
    units_f = np.array([float(u) if u < EXACT_IN_FLOAT else 0.0 for u in units], dtype=np.float64)
    raw = units_f[group_deal] * (weights / totals[group_deal])
    shares = np.floor(raw).astype(np.int64)
    remainders = raw - shares
    left = units_f - np.bincount(group_deal, weights=shares.astype(np.float64), minlength=deals)
    index = np.arange(len(shares))
    order = np.lexsort((index, -remainders, group_deal))  # per deal, largest remainder first
    first_of_deal = np.searchsorted(group_deal[order], group_deal[order], side="left")
    rank = index - first_of_deal
    count = np.bincount(group_deal, minlength=deals)[group_deal[order]]
    owed = left[group_deal[order]]
    shares[order] += (rank < owed).astype(np.int64) - ((count - 1 - rank) < -owed).astype(np.int64)
    for d, u in enumerate(units):
        if u >= EXACT_IN_FLOAT:
            mine = group_deal == d
            shares[mine] = allocate_units(u, list(weights[mine]))
    return shares


def credit_rows(deals: Sequence[WonDeal], rows: DealRows, parameters: Parameters) -> Credits:
    """Every model's credits of `deals` (each with a non-empty journey in `rows`)."""
    weights = _weights(rows, deals, parameters)
    width = max(len(rows.keys), 1)
    groups, group_of_row = np.unique(rows.deal * width + rows.key, return_inverse=True)
    group_deal, group_key = groups // width, groups % width
    quanta = [quantum(d.amount) for d in deals]
    units = [int((d.amount / q).to_integral_value()) for d, q in zip(deals, quanta, strict=True)]
    shares: dict[str, Floats] = {}
    allocated: dict[str, Ints] = {}
    for model in MODELS:
        grouped = np.asarray(np.bincount(group_of_row, weights=weights[model], minlength=len(groups)), np.float64)
        totals = np.bincount(group_deal, weights=grouped, minlength=len(deals))[group_deal]
        shares[model] = np.divide(grouped, totals, out=np.zeros_like(grouped), where=totals > 0)
        allocated[model] = _allocate(units, group_deal, grouped)
    return Credits(rows.keys, group_deal, group_key, shares, allocated, quanta)


def credit_deals(
    deals: Sequence[WonDeal],
    paths: Sequence[Sequence[Touch]],
    parameters: Parameters,
    markov: MarkovEffects,
    by: str = "campaign",
) -> Credits:
    """`credit_rows` for journeys of Touch values, as `attribution.journey` cuts them (each non-empty)."""
    return credit_rows(deals, rows_of(deals, paths, markov, by), parameters)
