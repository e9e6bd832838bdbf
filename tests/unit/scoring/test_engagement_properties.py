import math

from hypothesis import given
from hypothesis import strategies as st

from services.scoring.rules import TimedTouch, engagement
from tests.unit.scoring.builders import T0, days, hours, make_model, make_touch, rule

MODEL = make_model(
    engagement=[
        rule("any_page", "web_visit", 2),
        rule("pricing", "web_visit", 10, when={"url": "/pricing*"}, daily_cap=2),
        rule("careers", "web_visit", -5, when={"url": "/careers*"}, half_life_days=90),
        rule("demo", "form_fill", 40, daily_cap=1),
    ],
    half_life=days(14),
)
POSITIVE = make_model(form_fill=40, web_visit=3, half_life=days(7))

offsets = st.floats(min_value=0, max_value=24 * 60, allow_nan=False)  # hours after T0, up to 60 days


@st.composite
def histories(draw: st.DrawFn, kinds: tuple[str, ...] = ("/pricing", "/careers", "/blog", "form")) -> list[TimedTouch]:
    touches = []
    for kind, offset in draw(st.lists(st.tuples(st.sampled_from(kinds), offsets), max_size=25)):
        at = T0 + hours(offset)
        touches.append(make_touch("form_fill", at=at) if kind == "form" else make_touch(url=kind, at=at))
    return touches


@given(histories(), offsets)
def test_the_total_is_the_sum_of_the_breakdown(touches: list[TimedTouch], now_offset: float) -> None:
    result = engagement(touches, MODEL, now=T0 + hours(now_offset))
    assert math.isclose(result.total, sum(c.points_now for c in result.breakdown), abs_tol=1e-9)


@given(histories(), offsets)
def test_no_contribution_grows_with_age(touches: list[TimedTouch], now_offset: float) -> None:
    now = T0 + hours(now_offset)
    for c in engagement(touches, MODEL, now=now).breakdown:
        assert c.fired_at <= now
        assert abs(c.points_now) <= abs(c.points)
        assert math.copysign(1, c.points_now) == math.copysign(1, c.points)


@given(histories(("/pricing", "form")), st.floats(min_value=0, max_value=1000, allow_nan=False))
def test_without_new_touches_positive_engagement_only_decays(touches: list[TimedTouch], later: float) -> None:
    last_touch = T0 + days(60)
    earlier = engagement(touches, POSITIVE, now=last_touch).total
    assert engagement(touches, POSITIVE, now=last_touch + hours(later)).total <= earlier + 1e-9


@given(histories())
def test_the_order_touches_are_given_in_does_not_matter(touches: list[TimedTouch]) -> None:
    now = T0 + days(61)
    assert engagement(touches, MODEL, now).total == engagement(list(reversed(touches)), MODEL, now).total
