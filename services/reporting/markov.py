"""The data-driven model: a first-order Markov chain over journeys, removal effects, and a bootstrap range.

States are campaigns (or channels). Every journey starts in `(start)` and ends in `(conversion)` when it
led to a won deal or in `(null)` when it did not (null paths count as much as converting ones). The
removal effect of a state is the share of conversion probability lost when every transition into it
goes to `(null)` instead; effects are normalised to split the conversions and revenue. The chain is
solved exactly (a linear system), not simulated.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Journeys:
    """Journeys touch by touch: each touch's state (1-based; 0 is the start), each journey's length and outcome."""

    names: tuple[str, ...]  # state code - 1 -> name
    states: npt.NDArray[np.int64]
    lengths: npt.NDArray[np.int64]  # every journey has at least one touch
    conversions: Floats  # per journey: 1 when it led to a won deal
    nulls: Floats  # per journey: 1 when it did not

    @classmethod
    def of(cls, names: Sequence[str], codes: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64],
           converted: npt.NDArray[np.bool_]) -> "Journeys":  # fmt: skip
        """From 0-based codes into `names`; names no touch uses are left out of the chain."""
        used = np.unique(codes)
        renumbered = np.zeros(len(names), dtype=np.int64)
        renumbered[used] = np.arange(1, len(used) + 1)
        conversions = converted.astype(np.float64)
        return cls(tuple(names[i] for i in used), renumbered[codes], lengths, conversions, 1.0 - conversions)


def flatten(journeys: Sequence[tuple[Sequence[str], bool]]) -> Journeys:
    """Journeys from (states, converted) pairs; empty ones are left out."""
    kept = [(path, converted) for path, converted in journeys if path]
    names = sorted({s for path, _ in kept for s in path})
    code = {name: i for i, name in enumerate(names)}
    states = np.fromiter((code[s] for path, _ in kept for s in path), dtype=np.int64)
    lengths = np.array([len(path) for path, _ in kept], dtype=np.int64)
    return Journeys.of(names, states, lengths, np.array([c for _, c in kept], dtype=bool))


@dataclass(frozen=True)
class _Transitions:
    """Every journey's transitions, so a resample only reweights them."""

    path_of: npt.NDArray[np.int64]  # which journey an inner transition belongs to
    cell: npt.NDArray[np.int64]  # from * width + to, for inner transitions (start and state to state)
    last: npt.NDArray[np.int64]  # each journey's last state
    width: int  # start + states + conversion + null


def _transitions(journeys: Journeys) -> _Transitions:
    width = len(journeys.names) + 3
    lengths = journeys.lengths
    starts = np.cumsum(lengths) - lengths
    previous = np.roll(journeys.states, 1)
    previous[starts] = 0  # every journey begins at the start state
    path_of = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    last = journeys.states[starts + lengths - 1]
    return _Transitions(path_of, previous * width + journeys.states, last, width)


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
    """Removal effects and shares of a first-order chain, with a bootstrap range over journeys.

    Each resample draws as many journeys as there are, with replacement, and recomputes the shares; the
    range is the central `confidence` interval of those shares.
    """
    return chain_attribution(flatten(journeys), resamples=resamples, confidence=confidence, seed=seed)


def chain_attribution(
    journeys: Journeys, *, resamples: int = 200, confidence: float = 0.9, seed: int = 0
) -> MarkovResult:
    """`markov_attribution` for journeys already in arrays."""
    if not journeys.names:
        return MarkovResult((), 0.0, 0)
    transitions = _transitions(journeys)
    effects = _removal_effects(_counts(transitions, journeys.conversions, journeys.nulls))
    shares = _shares(effects)
    rng = np.random.default_rng(seed)
    count = len(journeys.lengths)
    samples = np.empty((resamples, len(shares)))
    for r in range(resamples):
        drawn = np.bincount(rng.integers(0, count, count), minlength=count).astype(np.float64)
        samples[r] = _shares(
            _removal_effects(_counts(transitions, drawn * journeys.conversions, drawn * journeys.nulls))
        )
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail], axis=0) if resamples else (shares, shares)
    return MarkovResult(
        tuple(
            StateEffect(state, float(effects[i]), float(shares[i]), float(low[i]), float(high[i]))
            for i, state in enumerate(journeys.names)
        ),
        float(journeys.conversions.sum()),
        resamples,
    )
