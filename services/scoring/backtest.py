"""Backtest: replay every lead's stored touches under a model and measure it against known outcomes.

Replay: the lead's score is taken at each of its touches, as the consumer scores it, up to its first
outcome (won, lost or rejected): what happened after sales judged the lead cannot have predicted it.
Fit uses the lead's current profile and its account's facts (their history is not kept), with persona
and seniority as each model defines them. A lead *became an MQL* when
its fit and engagement qualified at one of those moments; like the stage machine, only a lead with an
email (a known person) can. Its *score* is the highest fit + engagement seen.

Measures: MQL volume; conversion (won MQLs / MQLs); precision and recall of "became MQL" against
outcomes, won leads positive and lost or sales-rejected (not won) leads negative, leads without an
outcome left out; rejected MQLs by reason; and the AUC of the score, won leads against all others.
"""

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.scoring.lead import LeadState, fit_of
from services.scoring.model import ScoringModel
from services.scoring.profile import Profile
from services.scoring.rules import Engagement, TimedTouch, decayed, engagement, qualify


@dataclass(frozen=True, slots=True)
class Outcomes:
    """What became of a lead: deals won and lost, sales rejections' reasons, and when the first was."""

    won: int = 0
    lost: int = 0
    rejected: tuple[str, ...] = ()
    first_at: datetime | None = None

    @property
    def positive(self) -> bool:
        return self.won > 0

    @property
    def negative(self) -> bool:
        return not self.won and (self.lost > 0 or bool(self.rejected))


@dataclass(frozen=True, slots=True)
class Case:
    lead_id: str
    known: bool
    profile: Profile
    account: Profile | None  # the account's collected company facts, for account fit rules
    touches: Sequence[TimedTouch]
    outcomes: Outcomes = field(default_factory=Outcomes)


@dataclass(frozen=True, slots=True)
class Replay:
    mql: bool
    score: float


@dataclass(frozen=True, slots=True)
class Report:
    leads: int
    mqls: int
    mql_rate: float | None
    mql_won: int
    conversion: float | None
    precision: float | None
    recall: float | None
    auc: float | None
    mql_lost: int
    mql_rejected: int
    mql_rejected_by_reason: dict[str, int]


def engagement_over_time(touches: Sequence[TimedTouch], model: ScoringModel) -> list[tuple[datetime, float]]:
    """Engagement at each distinct touch time, equal to `rules.engagement(touches, model, t).total`.

    The firings are decided once (caps count the earliest touches of a day, so the firings up to `t`
    are a prefix); totals then decay forward per half-life instead of summing every firing again. One
    approximation: a page view's later time-on-page report counts from the view's own time.
    """
    if not touches:
        return []
    last = max(at for at, _ in touches)
    firings = engagement(touches, model, last).breakdown
    half_lives = {r.id: timedelta(days=r.half_life_days or model.half_life_days) for r in model.engagement}
    sums: dict[timedelta, float] = {}
    out: list[tuple[datetime, float]] = []
    i, previous = 0, None
    for at in sorted({at for at, _ in touches}):
        if previous is not None:
            sums = {h: decayed(s, at - previous, h) for h, s in sums.items()}
        while i < len(firings) and firings[i].fired_at <= at:
            h = half_lives[firings[i].rule_id]
            sums[h] = sums.get(h, 0.0) + firings[i].points
            i += 1
        out.append((at, math.fsum(sums.values())))
        previous = at
    return out


def replay(case: Case, model: ScoringModel) -> Replay:
    horizon = case.outcomes.first_at
    touches = [t for t in case.touches if horizon is None or t[0] <= horizon]
    f = fit_of(LeadState(profile=case.profile), case.account, model)
    scores = engagement_over_time(touches, model)
    mql = case.known and any(qualify(f, Engagement(total, ()), model) for _, total in scores)
    return Replay(mql=mql, score=f.total + max((total for _, total in scores), default=0.0))


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """Area under the ROC curve: the chance a positive outscores a negative, ties counting half (Mann-Whitney)."""
    if not positives or not negatives:
        return None
    ranked = sorted([(s, 1) for s in positives] + [(s, 0) for s in negatives])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mid_rank = (i + 1 + j) / 2  # ranks i+1..j share their average
        rank_sum += mid_rank * sum(label for _, label in ranked[i:j])
        i = j
    p, n = len(positives), len(negatives)
    return (rank_sum - p * (p + 1) / 2) / (p * n)


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def report(results: Iterable[tuple[Outcomes, Replay]]) -> Report:
    results = list(results)
    mqls = [o for o, r in results if r.mql]
    tp = sum(1 for o in mqls if o.positive)
    fp = sum(1 for o in mqls if o.negative)
    won = sum(1 for o, _ in results if o.positive)
    reasons = Counter(reason for o in mqls if o.negative for reason in set(o.rejected))
    return Report(
        leads=len(results),
        mqls=len(mqls),
        mql_rate=_ratio(len(mqls), len(results)),
        mql_won=tp,
        conversion=_ratio(tp, len(mqls)),
        precision=_ratio(tp, tp + fp),
        recall=_ratio(tp, won),
        auc=auc([r.score for o, r in results if o.positive], [r.score for o, r in results if not o.positive]),
        mql_lost=sum(1 for o in mqls if o.negative and o.lost),
        mql_rejected=sum(1 for o in mqls if o.negative and o.rejected),
        mql_rejected_by_reason=dict(sorted(reasons.items())),
    )


def outcome_counts(outcomes: Iterable[Outcomes]) -> dict[str, Any]:
    """The known outcomes the models are measured against (lead counts)."""
    outcomes = list(outcomes)
    reasons = Counter(reason for o in outcomes if o.negative for reason in set(o.rejected))
    return {
        "won": sum(1 for o in outcomes if o.positive),
        "lost": sum(1 for o in outcomes if o.negative and o.lost),
        "rejected": sum(1 for o in outcomes if o.negative and o.rejected),
        "rejected_by_reason": dict(sorted(reasons.items())),
        "no_outcome": sum(1 for o in outcomes if not o.positive and not o.negative),
    }
