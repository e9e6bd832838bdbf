"""Backtest math: AUC (hand-computed and its properties), replay against the scoring rules, the report."""

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.scoring.backtest import Case, Outcomes, Replay, auc, engagement_over_time, outcome_counts, replay, report
from services.scoring.profile import Profile, apply_attributes
from services.scoring.rules import engagement
from tests.unit.scoring.builders import T0, days, hours, make_model, make_touch, rule


def test_auc_of_a_hand_computed_example() -> None:
    # Pairs won: 0.9 beats 3, 0.8 beats 3, 0.4 beats 0.1 and ties 0.4: (3 + 3 + 1.5) / 9
    assert auc([0.9, 0.8, 0.4], [0.7, 0.4, 0.1]) == pytest.approx(7.5 / 9)


def test_auc_of_perfect_reversed_and_tied_scores() -> None:
    assert auc([3, 4], [1, 2]) == 1.0
    assert auc([1, 2], [3, 4]) == 0.0
    assert auc([5, 5], [5]) == 0.5


def test_auc_needs_both_classes() -> None:
    assert auc([], [1.0]) is None
    assert auc([1.0], []) is None


scores = st.lists(st.integers(-50, 50).map(float), min_size=1, max_size=25)


@given(scores, scores)
def test_auc_equals_the_share_of_pairs_a_positive_wins(positives: list[float], negatives: list[float]) -> None:
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives)
    assert auc(positives, negatives) == pytest.approx(wins / (len(positives) * len(negatives)))


@given(scores, scores)
def test_auc_is_symmetric_and_ignores_monotone_rescaling(positives: list[float], negatives: list[float]) -> None:
    value = auc(positives, negatives)
    assert value is not None
    assert 0 <= value <= 1
    assert auc(negatives, positives) == pytest.approx(1 - value)
    assert auc([3 * p + 7 for p in positives], [3 * n + 7 for n in negatives]) == pytest.approx(value)


MODEL = make_model(
    engagement=[rule("visit", "web_visit", 10, daily_cap=2), rule("unsub", "unsubscribe", -15, half_life_days=90)],
    form_fill=40,
    fit=[{"id": "exec", "kind": "persona", "values": ["executive"], "points": 60}],
)
touch_kinds = st.sampled_from(["web_visit", "form_fill", "unsubscribe", "email_open"])
timed = st.builds(lambda kind, h: make_touch(kind, at=T0 + hours(h)), touch_kinds, st.integers(0, 24 * 60))


@given(st.lists(timed, max_size=20))
def test_engagement_over_time_equals_scoring_each_moment_afresh(touches: list[tuple[datetime, object]]) -> None:
    for at, total in engagement_over_time(touches, MODEL):  # type: ignore[arg-type]
        assert total == pytest.approx(engagement(touches, MODEL, at).total, abs=1e-6)  # type: ignore[arg-type]


def case(*touches: tuple[datetime, object], known: bool = True, title: str = "CEO", **outcomes: object) -> Case:
    profile, _ = apply_attributes(Profile(), {"job_title": title}, "test", T0)
    return Case("l", known, profile, None, touches, Outcomes(**outcomes))  # type: ignore[arg-type]


def test_a_lead_qualifies_at_a_touch_and_its_score_is_the_highest_seen() -> None:
    replayed = replay(case(make_touch("form_fill"), make_touch("web_visit", at=T0 + days(30))), MODEL)
    assert replayed.mql
    assert replayed.score == pytest.approx(60 + 40)


def test_touches_after_the_first_outcome_do_not_count_and_anonymous_leads_never_qualify() -> None:
    late = case(make_touch("web_visit"), make_touch("form_fill", at=T0 + days(2)), lost=1, first_at=T0 + days(1))
    replayed = replay(late, MODEL)
    assert not replayed.mql
    assert replayed.score == pytest.approx(70)
    assert not replay(case(make_touch("form_fill"), known=False), MODEL).mql


def test_a_weak_fit_needs_more_engagement() -> None:
    assert not replay(case(make_touch("form_fill"), title="Software Engineer"), MODEL).mql


def test_the_report_counts_precision_recall_conversion_and_rejections_by_reason() -> None:
    won, lost = Outcomes(won=1), Outcomes(lost=1)
    spam, budget, none = Outcomes(rejected=("spam", "spam")), Outcomes(rejected=("no_budget",)), Outcomes()
    results = [
        (won, Replay(True, 90)),
        (won, Replay(False, 30)),
        (lost, Replay(True, 80)),
        (spam, Replay(True, 50)),
        (budget, Replay(False, 10)),
        (none, Replay(True, 95)),
    ]
    r = report(results)
    assert (r.leads, r.mqls, r.mql_won, r.mql_lost, r.mql_rejected) == (6, 4, 1, 1, 1)
    assert (r.conversion, r.recall) == (0.25, 0.5)
    assert r.precision == pytest.approx(1 / 3)
    assert r.mql_rejected_by_reason == {"spam": 1}
    assert r.auc == pytest.approx((3 + 1) / 8)  # 90 beats 3 of 4 not-won; 30 beats 1
    assert outcome_counts(o for o, _ in results) == {
        "won": 2,
        "lost": 1,
        "rejected": 2,
        "rejected_by_reason": {"no_budget": 1, "spam": 1},
        "no_outcome": 1,
    }


def test_a_won_lead_that_was_rejected_before_counts_as_won() -> None:
    both = Outcomes(won=1, rejected=("no_budget",))
    r = report([(both, Replay(True, 50)), (Outcomes(lost=1), Replay(False, 10))])
    assert (r.precision, r.recall, r.mql_rejected, r.auc) == (1.0, 1.0, 0, 1.0)


def test_an_empty_backtest_has_no_ratios() -> None:
    r = report([])
    assert (r.leads, r.mql_rate, r.conversion, r.precision, r.recall, r.auc) == (0, None, None, None, None, None)
