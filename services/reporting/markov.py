"""The data-driven model: a first-order Markov chain over journeys, removal effects, and a bootstrap range.

States are campaigns (or channels). Every journey starts in `(start)` and ends in `(conversion)` when it
led to a won deal or in `(null)` when it did not (null paths count as much as converting ones). The
removal effect of a state is the share of conversion probability lost when every transition into it
goes to `(null)` instead; effects are normalised to split the conversions and revenue. The chain is
solved exactly (a linear system), not simulated.
"""

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Journeys:
    """Unique paths with how often each converted and how often it did not."""

    states: tuple[str, ...]
    paths: tuple[tuple[int, ...], ...]  # state indexes, 1-based (0 is the start)
    conversions: Floats
    nulls: Floats


def aggregate(journeys: Sequence[tuple[Sequence[str], bool]]) -> Journeys:
    counts: dict[tuple[str, ...], list[float]] = {}
    for path, converted in journeys:
        if path:
            counts.setdefault(tuple(path), [0.0, 0.0])[0 if converted else 1] += 1
    states = tuple(sorted({s for path in counts for s in path}))
    index = {s: i + 1 for i, s in enumerate(states)}
    paths = tuple(tuple(index[s] for s in path) for path in counts)
    conversions = np.array([c for c, _ in counts.values()], dtype=np.float64)
    nulls = np.array([n for _, n in counts.values()], dtype=np.float64)
    return Journeys(states, paths, conversions, nulls)


@dataclass(frozen=True)
class _Transitions:
    """Transition entries of every unique path, so a resample only reweights them."""

    path_of: npt.NDArray[np.int64]  # which unique path an inner transition belongs to
    cell: npt.NDArray[np.int64]  # from * width + to, for inner transitions (start and state to state)
    last: npt.NDArray[np.int64]  # each path's last state
    width: int  # start + states + conversion + null


def _transitions(journeys: Journeys) -> _Transitions:
    width = len(journeys.states) + 3
    lengths = np.fromiter((len(p) for p in journeys.paths), dtype=np.int64, count=len(journeys.paths))
    states = np.fromiter(itertools.chain.from_iterable(journeys.paths), dtype=np.int64, count=int(lengths.sum()))
    starts = np.cumsum(lengths) - lengths
    previous = np.roll(states, 1)
    previous[starts] = 0  # every path begins at the start state
    path_of = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    last = states[starts + lengths - 1]
    return _Transitions(path_of, previous * width + states, last, width)


def _counts(t: _Transitions, conversions: Floats, nulls: Floats) -> Floats:
    width = t.width
    flat = np.bincount(t.cell, weights=(conversions + nulls)[t.path_of], minlength=width * width)
    flat += np.bincount(t.last * width + width - 2, weights=conversions, minlength=width * width)
    flat += np.bincount(t.last * width + width - 1, weights=nulls, minlength=width * width)
    return np.asarray(flat, dtype=np.float64).reshape(width, width)


def _removal_effects(counts: Floats) -> Floats:
    """1 - P(conversion without s) / P(conversion), for every state s (start excluded)."""
    transient = counts.shape[0] - 2
    leaving = counts[:transient].sum(axis=1, keepdims=True)
    probabilities = np.divide(counts[:transient], leaving, out=np.zeros_like(counts[:transient]), where=leaving > 0)
    q, to_conversion = probabilities[:, :transient], probabilities[:, transient]
    identity = np.eye(transient)
    base = _conversion_probability(identity - q, to_conversion)
    effects = np.zeros(transient - 1)
    if base <= 0:
        return effects
    for s in range(1, transient):
        removed = q.copy()
        removed[:, s] = 0.0  # into s now means into (null)
        removed[s, :] = 0.0
        without = to_conversion.copy()
        without[s] = 0.0
        effects[s - 1] = 1.0 - _conversion_probability(identity - removed, without) / base
    return effects


def _conversion_probability(i_minus_q: Floats, to_conversion: Floats) -> float:
    return float(np.linalg.solve(i_minus_q, to_conversion)[0])


@dataclass(frozen=True)
class StateEffect:
    state: str
    removal_effect: float
    share: float  # of the attributable conversions and revenue
    share_low: float  # bootstrap percentile range of the share
    share_high: float


@dataclass(frozen=True)
class MarkovResult:
    effects: tuple[StateEffect, ...]
    conversions: float
    resamples: int

    def removal_effects(self) -> dict[str, float]:
        return {e.state: e.removal_effect for e in self.effects}


def _shares(effects: Floats) -> Floats:
    total = effects.sum()
    return effects / total if total > 0 else np.zeros_like(effects)


def markov_attribution(
    journeys: Sequence[tuple[Sequence[str], bool]],
    *,
    resamples: int = 200,
    confidence: float = 0.9,
    seed: int = 0,
) -> MarkovResult:
    """Removal effects and shares of a first-order chain, with a Poisson-bootstrap range over journeys.

    Each resample draws every journey Poisson(1) times (so a path seen n times is drawn Poisson(n) times)
    and recomputes the shares; the range is the central `confidence` interval of those shares.
    """
    aggregated = aggregate(journeys)
    if not aggregated.states:
        return MarkovResult((), 0.0, 0)
    transitions = _transitions(aggregated)
    effects = _removal_effects(_counts(transitions, aggregated.conversions, aggregated.nulls))
    shares = _shares(effects)
    rng = np.random.default_rng(seed)
    samples = np.empty((resamples, len(shares)))
    for r in range(resamples):
        conversions = rng.poisson(aggregated.conversions).astype(np.float64)
        nulls = rng.poisson(aggregated.nulls).astype(np.float64)
        samples[r] = _shares(_removal_effects(_counts(transitions, conversions, nulls)))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail], axis=0) if resamples else (shares, shares)
    return MarkovResult(
        tuple(
            StateEffect(state, float(effects[i]), float(shares[i]), float(low[i]), float(high[i]))
            for i, state in enumerate(aggregated.states)
        ),
        float(aggregated.conversions.sum()),
        resamples,
    )
