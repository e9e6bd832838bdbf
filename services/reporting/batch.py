"""Every model's credits for all won deals at once, as array operations: the attribution report's hot path.

`attribution.attribute_deal` is the one-deal reference: tests check that both give the same shares, the
same revenue to within one quantum (a tie between equal remainders may go to another campaign; weights
computed another way may differ in their 16th digit), and that
every deal's credits add up to its amount exactly in every model.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from services.reporting.attribution import (
    MODELS,
    MarkovEffects,
    Parameters,
    Touch,
    WonDeal,
    allocate_units,
    quantum,
)

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
EXACT_IN_FLOAT = 2**53  # deals counting more quanta than this are allocated by the reference, in Python integers


@dataclass(frozen=True)
class Credits:
    """One row per deal and (campaign, channel) on its journey; per model its share and revenue in quanta."""

    keys: list[tuple[str, str]]
    deal: Ints
    key: Ints
    shares: dict[str, Floats]
    units: dict[str, Ints]
    quanta: list[Decimal]  # per deal


@dataclass(frozen=True)
class _Touches:
    deal: Ints
    position: Ints
    length: Ints
    seconds: Floats  # before the deal's close
    key: Ints
    state: Ints
    starts: Ints


def _flatten(
    deals: Sequence[WonDeal], paths: Sequence[Sequence[Touch]], by: str
) -> tuple[_Touches, list[tuple[str, str]], list[str]]:
    lengths = np.fromiter((len(p) for p in paths), dtype=np.int64, count=len(paths))
    starts = np.cumsum(lengths) - lengths
    deal = np.repeat(np.arange(len(paths), dtype=np.int64), lengths)
    position = np.arange(int(lengths.sum()), dtype=np.int64) - starts[deal]
    key_index: dict[tuple[str, str], int] = {}
    state_index: dict[str, int] = {}
    keys, states, seconds = [], [], []
    for d, path in zip(deals, paths, strict=True):
        for t in path:
            keys.append(key_index.setdefault((t.campaign, t.channel), len(key_index)))
            states.append(state_index.setdefault(t.channel if by == "channel" else t.campaign, len(state_index)))
            seconds.append((d.closed_at - t.at).total_seconds())
    touches = _Touches(
        deal,
        position,
        lengths[deal],
        np.array(seconds, dtype=np.float64),
        np.array(keys, dtype=np.int64),
        np.array(states, dtype=np.int64),
        starts,
    )
    return touches, list(key_index), list(state_index)


def _key_position(paths: Sequence[Sequence[Touch]], at: Sequence[datetime | None], default_last: bool) -> Ints:
    """Per deal: the last touch at or before `at` (first touch if none; first/last touch when `at` is unknown)."""
    found = np.empty(len(paths), dtype=np.int64)
    for d, (path, when) in enumerate(zip(paths, at, strict=True)):
        if when is None:
            found[d] = len(path) - 1 if default_last else 0
            continue
        before = 0
        for i, touch in enumerate(path):
            if touch.at <= when:
                before = i
            else:
                break
        found[d] = before
    return found


def _weights(
    t: _Touches, deals: Sequence[WonDeal], paths: Sequence[Sequence[Touch]], parameters: Parameters, effects: Floats
) -> dict[str, Floats]:
    n = t.length.astype(np.float64)
    first, last = t.position == 0, t.position == t.length - 1
    middle = 0.2 / np.maximum(n - 2, 1)
    u_shaped = np.where(t.length <= 2, 1 / n, np.where(first | last, 0.4, middle))
    lead_key = _key_position(paths, [d.lead_created_at for d in deals], default_last=False)[t.deal]
    opportunity_key = _key_position(paths, [d.opportunity_at for d in deals], default_last=True)[t.deal]
    w_shaped = 0.3 * first + 0.3 * (t.position == lead_key) + 0.3 * (t.position == opportunity_key)
    rest = w_shaped == 0
    rest_count = np.bincount(t.deal, weights=rest, minlength=len(paths))[t.deal]
    w_shaped = np.where(rest_count > 0, np.where(rest, 0.1 / np.maximum(rest_count, 1), w_shaped), w_shaped / 0.9)
    half_life = parameters.half_life.total_seconds()
    newest = t.seconds[t.starts + t.length[t.starts] - 1] if len(t.starts) else t.seconds  # no underflow to 0
    per_state = np.bincount(t.deal * len(effects) + t.state, minlength=len(paths) * len(effects))
    markov = np.maximum(effects[t.state], 0.0) / per_state[t.deal * len(effects) + t.state]
    markov_total = np.bincount(t.deal, weights=markov, minlength=len(paths))[t.deal]
    return {
        "first_touch": first.astype(np.float64),
        "last_touch": last.astype(np.float64),
        "linear": 1 / n,
        "u_shaped": u_shaped,
        "w_shaped": w_shaped,
        "time_decay": 0.5 ** ((t.seconds - newest[t.deal]) / half_life),
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
    add = (rank < owed).astype(np.int64) - ((count - 1 - rank) < -owed).astype(np.int64)
    shares[order] += add
    for d, u in enumerate(units):
        if u >= EXACT_IN_FLOAT:
            mine = group_deal == d
            shares[mine] = allocate_units(u, list(weights[mine]))
    return shares


def credit_deals(
    deals: Sequence[WonDeal],
    paths: Sequence[Sequence[Touch]],
    parameters: Parameters,
    markov: MarkovEffects,
    by: str = "campaign",
) -> Credits:
    """`paths` are the deals' non-empty journeys, as `attribution.journey` cuts them."""
    t, keys, states = _flatten(deals, paths, by)
    removal = markov.by_channel if by == "channel" else markov.by_campaign
    effects = np.array([removal.get(s, 0.0) for s in states], dtype=np.float64)
    weights = _weights(t, deals, paths, parameters, effects)
    groups, group_of_touch = np.unique(t.deal * max(len(keys), 1) + t.key, return_inverse=True)
    group_deal, group_key = groups // max(len(keys), 1), groups % max(len(keys), 1)
    quanta = [quantum(d.amount) for d in deals]
    units = [int((d.amount / q).to_integral_value()) for d, q in zip(deals, quanta, strict=True)]
    shares: dict[str, Floats] = {}
    allocated: dict[str, Ints] = {}
    for model in MODELS:
        grouped = np.asarray(np.bincount(group_of_touch, weights=weights[model], minlength=len(groups)), np.float64)
        totals = np.bincount(group_deal, weights=grouped, minlength=len(deals))[group_deal]
        shares[model] = np.divide(grouped, totals, out=np.zeros_like(grouped), where=totals > 0)
        allocated[model] = _allocate(units, group_deal, grouped)
    return Credits(keys, group_deal, group_key, shares, allocated, quanta)
