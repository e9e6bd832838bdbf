"""Which rep of a target gets the lead: weighted round-robin over those who can take it, with the why.

Each (team, rep) carries a load: what the team has handed the rep so far (one per lead, or the lead's
expected value when the team balances by value), less what was credited back. The eligible rep with
the least load per unit of weight is next, ties by rep id, so the order is the same on every replica
that reads the same loads under the same locks.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from services.routing.rules import Target

SkipReason = Literal["inactive", "away", "at_capacity", "excluded", "unknown_rep", "empty_team"]


@dataclass(frozen=True)
class Candidate:
    rep_id: str
    weight: float = 1.0
    load: float = 0.0
    open_leads: int = 0
    capacity: int = 50
    away: bool = False
    active: bool = True


@dataclass(frozen=True)
class Considered:
    rule: str
    rep_id: str | None
    skipped: SkipReason | None  # None: eligible
    load: float | None = None


@dataclass(frozen=True)
class Choice:
    """The decision and its why: the target that placed the lead and everyone considered on the way."""

    target: Target
    rep_id: str | None
    charge: float
    considered: tuple[Considered, ...]

    def why(self) -> str:
        skipped = [f"{c.rep_id} ({c.skipped})" for c in self.considered if c.skipped]
        placed = f"{self.rep_id} by {self.target.rule}" if self.rep_id else f"the open queue ({self.target.rule})"
        return f"{placed}; skipped: {', '.join(skipped) or 'none'}"[:2000]


def skip_reason(candidate: Candidate, excluded: frozenset[str]) -> SkipReason | None:
    if candidate.rep_id in excluded:
        return "excluded"
    if not candidate.active:
        return "inactive"
    if candidate.away:
        return "away"
    if candidate.open_leads >= candidate.capacity:
        return "at_capacity"
    return None


def charge_for(balance: Literal["count", "expected_value"], score: float, typical_deal_size: float) -> float:
    """What one lead adds to a rep's load: 1, or its expected value (score x typical deal size, at least 1)."""
    return 1.0 if balance == "count" else max(score, 1.0) * typical_deal_size


def initial_load(others: Sequence[Candidate], weight: float) -> float:
    """A rep joining a team starts level with the least-loaded member, not at zero (no flood of catch-up leads)."""
    return min((c.load / c.weight for c in others), default=0.0) * weight


def pick_rep(
    target: Target, candidates: Sequence[Candidate], excluded: frozenset[str]
) -> tuple[str | None, list[Considered]]:
    """The next eligible rep of one target and who was considered; None when nobody can take the lead."""
    if not candidates:
        return None, [Considered(target.rule, target.rep_id, "unknown_rep" if target.rep_id else "empty_team")]
    considered = [Considered(target.rule, c.rep_id, skip_reason(c, excluded), c.load) for c in candidates]
    eligible = [c for c, seen in zip(candidates, considered, strict=True) if seen.skipped is None]
    if not eligible:
        return None, considered
    return min(eligible, key=lambda c: (c.load / c.weight, c.rep_id)).rep_id, considered


def choose(
    targets: Sequence[Target],
    candidates: Mapping[Target, Sequence[Candidate]],
    charges: Mapping[Target, float],
    excluded: frozenset[str] = frozenset(),
) -> Choice:
    """Walk the targets in order; the first with an eligible rep places the lead, else the last (the queue)."""
    considered: list[Considered] = []
    for target in targets:
        if target.rep_id is None and target.team_id is None:
            return Choice(target, None, 0.0, tuple(considered))
        rep_id, seen = pick_rep(target, candidates.get(target, ()), excluded)
        considered += seen
        if rep_id is not None:
            return Choice(target, rep_id, charges.get(target, 0.0), tuple(considered))
    return Choice(Target(rule="queue"), None, 0.0, tuple(considered))
