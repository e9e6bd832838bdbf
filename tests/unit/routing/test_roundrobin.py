from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from services.routing.directory import charged, decide
from services.routing.model import Rule, Team
from services.routing.roundrobin import Candidate, charge_for, initial_load, pick_rep, skip_reason
from services.routing.rules import LeadFacts, Target
from tests.unit.routing.builders import T0, make_directory, make_rep

TEAM = Target(rule="r", team_id="t")


def deal(directory_reps: list[str], n: int, weights: dict[str, float] | None = None) -> Counter[str]:
    reps = [make_rep(r, "t", weight=(weights or {}).get(r, 1.0), capacity=10_000) for r in directory_reps]
    d = make_directory(reps, rules=[Rule(id="r", team_id="t")])
    loads: dict[tuple[str, str], float] = {}
    got: Counter[str] = Counter()
    for i in range(n):
        choice = decide(LeadFacts(f"l{i}"), d, loads, got, T0)
        assert choice.rep_id is not None
        loads = charged(choice, loads)
        got[choice.rep_id] += 1
    return got


def test_equal_weights_take_turns() -> None:
    assert deal(["a", "b", "c"], 9) == {"a": 3, "b": 3, "c": 3}


@given(st.lists(st.integers(1, 5), min_size=1, max_size=5), st.integers(1, 60))
def test_weighted_shares_never_drift_more_than_one_lead_from_the_weights(weights: list[int], rounds: int) -> None:
    names = [f"r{i}" for i in range(len(weights))]
    total = sum(weights) * rounds
    got = deal(names, total, dict(zip(names, map(float, weights), strict=True)))
    assert all(got[n] == w * rounds for n, w in zip(names, weights, strict=True))


def test_credit_back_gives_the_turn_back() -> None:
    a, b = Candidate("a", load=1.0), Candidate("b", load=1.0)
    assert pick_rep(TEAM, [a, b], frozenset())[0] == "a"
    credited = Candidate("b", load=0.0)  # b's last lead was rejected as junk and credited back
    assert pick_rep(TEAM, [a, credited], frozenset())[0] == "b"


def test_expected_value_balancing_charges_score_times_deal_size() -> None:
    assert charge_for("count", 80, 5000) == 1.0
    assert charge_for("expected_value", 80, 5000) == 400_000
    d = make_directory(
        [make_rep("a", "t", capacity=99), make_rep("b", "t", capacity=99)],
        [Team(id="t", name="t", balance="expected_value", typical_deal_size=1)],
        [Rule(id="r", team_id="t")],
    )
    loads = charged(decide(LeadFacts("big", score=90), d, {}, {}, T0), {})
    # a has 90 of value; b gets the next three 30-point leads before a gets another
    picks = []
    for i in range(4):
        choice = decide(LeadFacts(f"s{i}", score=30), d, loads, {}, T0)
        loads = charged(choice, loads)
        picks.append(choice.rep_id)
    assert picks == ["b", "b", "b", "a"]


def test_a_new_rep_starts_level_with_the_least_loaded_not_at_zero() -> None:
    assert initial_load([Candidate("a", load=10), Candidate("b", load=7)], weight=2.0) == 14.0


def test_an_excluded_rep_is_skipped_with_the_reason() -> None:
    rep, seen = pick_rep(TEAM, [Candidate("a"), Candidate("b", load=5)], frozenset({"a"}))
    assert rep == "b"
    assert seen[0].skipped == "excluded"


candidates = st.lists(
    st.builds(
        Candidate,
        rep_id=st.sampled_from(["a", "b", "c", "d", "e"]),
        weight=st.floats(0.1, 10),
        load=st.floats(0, 100),
        open_leads=st.integers(0, 5),
        capacity=st.integers(0, 5),
        away=st.booleans(),
        active=st.booleans(),
    ),
    max_size=5,
    unique_by=lambda c: c.rep_id,
)


@given(candidates, st.frozensets(st.sampled_from(["a", "b", "c"])))
def test_the_pick_is_never_a_skipped_rep_and_always_the_least_loaded_eligible_one(
    team: list[Candidate], excluded: frozenset[str]
) -> None:
    rep_id, considered = pick_rep(TEAM, team, excluded)
    eligible = [c for c in team if skip_reason(c, excluded) is None]
    assert [c.rep_id for c in considered] == [c.rep_id for c in team] or not team
    if not eligible:
        assert rep_id is None
        return
    chosen = next(c for c in team if c.rep_id == rep_id)
    assert skip_reason(chosen, excluded) is None
    assert chosen.load / chosen.weight == min(c.load / c.weight for c in eligible)
