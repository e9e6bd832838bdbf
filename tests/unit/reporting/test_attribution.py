"""Attribution models on hand-made journeys, and credits that add up to the deal to the last cent."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from services.reporting.attribution import (
    MODELS,
    UNATTRIBUTED,
    MarkovEffects,
    Parameters,
    Touch,
    WonDeal,
    allocate,
    attribute_deal,
    journey,
    time_decay,
    u_shaped,
    w_shaped,
)

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def touch(day: float, campaign: str, kind: str = "web_visit", channel: str = "web") -> Touch:
    return Touch(T0 + timedelta(days=day), kind, campaign, channel)


def test_a_journey_keeps_the_counted_touches_up_to_the_close() -> None:
    touches = [touch(-400, "old"), touch(1, "a"), touch(2, "b", kind="identify"), touch(3, "c"), touch(10, "late")]

    path = journey(touches, T0 + timedelta(days=5), Parameters())

    assert [t.campaign for t in path] == ["a", "c"]


def test_a_journey_can_count_only_chosen_touch_types_within_a_shorter_lookback() -> None:
    touches = [touch(0, "a", "email_click"), touch(8, "b", "form_fill"), touch(9, "c", "web_visit")]
    parameters = Parameters(lookback=timedelta(days=5), touch_types=frozenset({"email_click", "form_fill"}))

    assert [t.campaign for t in journey(touches, T0 + timedelta(days=10), parameters)] == ["b"]


def test_u_shaped_gives_forty_percent_to_each_end() -> None:
    assert u_shaped(4) == [0.4, 0.1, 0.1, 0.4]
    assert u_shaped(2) == [0.5, 0.5]
    assert u_shaped(1) == [1.0]


def test_w_shaped_rewards_first_touch_lead_creation_and_opportunity_creation() -> None:
    path = [touch(d, str(d)) for d in range(5)]

    weights = w_shaped(path, T0 + timedelta(days=1, hours=1), T0 + timedelta(days=3, hours=1))

    assert [round(w, 4) for w in weights] == [0.3, 0.3, 0.05, 0.3, 0.05]


def test_w_shaped_with_only_key_touches_spreads_everything_over_them() -> None:
    path = [touch(0, "a"), touch(1, "b")]

    assert [round(w, 4) for w in w_shaped(path, T0, T0 + timedelta(days=1))] == [0.6667, 0.3333]


def test_time_decay_halves_a_touch_one_half_life_further_from_the_close() -> None:
    close = T0 + timedelta(days=14)

    weights = time_decay([touch(0, "a"), touch(7, "b"), touch(14, "c")], close, timedelta(days=7))

    assert weights == [0.25, 0.5, 1.0]


def test_linear_splits_per_touch_not_per_campaign() -> None:
    deal = WonDeal("d1", Decimal("300.00"), "EUR", T0 + timedelta(days=9))
    path = [touch(0, "a"), touch(1, "a"), touch(2, "b")]

    credits = attribute_deal(deal, path, Parameters(), MarkovEffects())

    linear: dict[str, Decimal] = {}
    for c in credits:
        if c.model == "linear":
            linear[c.campaign] = linear.get(c.campaign, Decimal(0)) + c.revenue
    assert linear == {"a": Decimal("200.00"), "b": Decimal("100.00")}


def test_a_deal_without_touches_is_unattributed_in_every_model() -> None:
    deal = WonDeal("d1", Decimal("50"), "EUR", T0)

    credits = attribute_deal(deal, [], Parameters(), MarkovEffects())

    assert {(c.model, c.campaign, c.revenue) for c in credits} == {(m, UNATTRIBUTED, Decimal("50")) for m in MODELS}


def test_allocation_rounds_to_cents_and_gives_leftover_cents_to_the_largest_remainders() -> None:
    assert allocate(Decimal("100.00"), [1, 1, 1]) == [Decimal("33.34"), Decimal("33.33"), Decimal("33.33")]
    assert allocate(Decimal("0.01"), [1, 2]) == [Decimal("0.00"), Decimal("0.01")]
    assert allocate(Decimal("10.1234"), [1, 1]) == [Decimal("5.0617"), Decimal("5.0617")]


amounts = st.decimals(min_value=0, max_value=Decimal("99999999999999.9999"), places=4, allow_nan=False)
weights = st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=60)


@given(amounts, weights)
def test_allocated_credits_sum_exactly_to_the_amount(amount: Decimal, weights: list[float]) -> None:
    shares = allocate(amount, weights)

    assert sum(shares, Decimal(0)) == amount
    assert all(s >= 0 for s in shares)


@given(
    amounts,
    st.lists(st.tuples(st.floats(min_value=0, max_value=200), st.sampled_from("abcde")), min_size=1, max_size=40),
    st.floats(min_value=0.5, max_value=30),
)
def test_every_model_credits_each_deal_exactly_its_amount(
    amount: Decimal, touches: list[tuple[float, str]], half_life_days: float
) -> None:
    close = T0 + timedelta(days=200)
    deal = WonDeal("d", amount, "USD", close, T0 + timedelta(days=50), T0 + timedelta(days=120))
    parameters = Parameters(half_life=timedelta(days=half_life_days))
    path = journey(sorted((touch(day, c) for day, c in touches), key=lambda t: t.at), close, parameters)
    markov = MarkovEffects(by_campaign={"a": 0.5, "b": 0.1, "c": 0.0, "d": 0.9})

    credits = attribute_deal(deal, path, parameters, markov)

    for model in MODELS:
        assert sum((c.revenue for c in credits if c.model == model), Decimal(0)) == amount
        assert abs(sum(c.share for c in credits if c.model == model) - 1.0) < 1e-9
