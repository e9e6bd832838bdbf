from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from services.scoring.rules import decayed, engagement
from shared.events import WebVisited
from tests.unit.scoring.builders import T0, days, hours, make_model, make_touch, rule


def pricing(points: float = 10, **extra: Any) -> dict[str, Any]:
    return rule("pricing", "web_visit", points, **{"when": {"url": "/pricing*"}, **extra})


def test_engagement_halves_after_one_half_life() -> None:
    model = make_model(form_fill=40, half_life=days(14))
    assert engagement([make_touch("form_fill", at=T0)], model, now=T0 + days(14)).total == pytest.approx(20)


def test_engagement_is_a_quarter_after_two_half_lives() -> None:
    model = make_model(form_fill=40, half_life=days(14))
    assert engagement([make_touch("form_fill", at=T0)], model, now=T0 + days(28)).total == pytest.approx(10)


def test_a_touch_scores_its_full_points_at_the_moment_it_happens() -> None:
    model = make_model(form_fill=40)
    assert engagement([make_touch("form_fill", at=T0)], model, now=T0).total == 40


def test_decay_is_exponential_in_the_age_over_the_half_life() -> None:
    # 3 days of a 2-day half-life: 2 ** -1.5 = 1 / (2 * sqrt 2) = 0.35355...
    assert decayed(100, days(3), days(2)) == pytest.approx(35.3553, abs=1e-4)


def test_a_rule_half_life_overrides_the_model_half_life() -> None:
    model = make_model(engagement=[rule("demo", "form_fill", 40, half_life_days=7)], half_life=days(14))
    assert engagement([make_touch("form_fill", at=T0)], model, now=T0 + days(7)).total == pytest.approx(20)


def test_each_contribution_tells_the_rule_when_it_fired_its_points_then_and_now_and_the_touch() -> None:
    model = make_model(engagement=[pricing(12)], half_life=days(10))
    at, touch = make_touch("web_visit", url="https://acme.com/pricing", at=T0)
    [contribution] = engagement([(at, touch)], model, now=T0 + days(10)).breakdown
    assert contribution.rule_id == "pricing"
    assert contribution.fired_at == T0
    assert contribution.points == 12
    assert contribution.points_now == pytest.approx(6)
    assert contribution.touch == touch


def test_the_total_adds_up_touches_of_different_ages() -> None:
    model = make_model(form_fill=40, email_click=8, half_life=days(10))
    touches = [make_touch("form_fill", at=T0), make_touch("email_click", at=T0 + days(10))]
    # 40 after two half-lives is 10, 8 after one is 4
    assert engagement(touches, model, now=T0 + days(20)).total == pytest.approx(10 + 4)


def test_every_rule_a_touch_matches_fires() -> None:
    model = make_model(engagement=[rule("any_page", "web_visit", 1), pricing(10)])
    result = engagement([make_touch("web_visit", url="/pricing")], model, now=T0)
    assert [c.rule_id for c in result.breakdown] == ["any_page", "pricing"]
    assert result.total == 11


def test_a_daily_cap_counts_only_the_first_firings_of_the_day() -> None:
    model = make_model(engagement=[pricing(10, daily_cap=2)])
    touches = [make_touch(at=T0 + hours(h)) for h in (2, 0, 1)]
    result = engagement(touches, model, now=T0 + hours(2))
    assert [c.fired_at for c in result.breakdown] == [T0, T0 + hours(1)]


def test_a_daily_cap_starts_again_the_next_utc_day() -> None:
    model = make_model(engagement=[pricing(10, daily_cap=1)])
    late, early_next_day = (
        datetime(2026, 3, 2, 23, 30, tzinfo=UTC),
        datetime(2026, 3, 3, 0, 30, tzinfo=UTC),
    )
    result = engagement([make_touch(at=late), make_touch(at=early_next_day)], model, now=early_next_day)
    assert [c.fired_at for c in result.breakdown] == [late, early_next_day]


def test_a_daily_cap_reads_days_in_utc_whatever_the_touch_offset() -> None:
    model = make_model(engagement=[pricing(10, daily_cap=1)])
    paris_night = datetime(2026, 3, 3, 0, 30, tzinfo=timezone(timedelta(hours=2)))  # 22:30 UTC on the 2nd
    utc_late = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)
    result = engagement([make_touch(at=utc_late), make_touch(at=paris_night)], model, now=utc_late)
    assert [c.fired_at for c in result.breakdown] == [paris_night]


def test_a_cap_on_one_rule_leaves_other_rules_firing() -> None:
    model = make_model(engagement=[pricing(10, daily_cap=1), rule("any_page", "web_visit", 1)])
    result = engagement([make_touch(at=T0), make_touch(at=T0)], model, now=T0)
    assert result.total == 10 + 1 + 1


def test_negative_points_lower_engagement() -> None:
    model = make_model(form_fill=40, engagement=[rule("careers", "web_visit", -10, when={"url": "/careers*"})])
    touches = [make_touch("form_fill"), make_touch("web_visit", url="https://acme.com/careers/engineer")]
    assert engagement(touches, model, now=T0).total == 30


def test_negative_points_decay_toward_zero() -> None:
    model = make_model(unsubscribe=-30, half_life=days(14))
    assert engagement([make_touch("unsubscribe")], model, now=T0 + days(14)).total == pytest.approx(-15)


def test_a_daily_cap_also_limits_negative_rules() -> None:
    model = make_model(engagement=[rule("unsubscribe", "unsubscribe", -30, daily_cap=1)])
    touches = [make_touch("unsubscribe", at=T0), make_touch("unsubscribe", at=T0 + hours(3))]
    assert engagement(touches, model, now=T0 + hours(3)).total == pytest.approx(-30 * 0.5 ** (3 / (30 * 24)))


def test_machine_generated_touches_score_nothing_by_default() -> None:
    model = make_model(email_open=2, email_click=5)
    touches = [make_touch("email_open", machine_generated=True), make_touch("email_click", machine_generated=True)]
    assert engagement(touches, model, now=T0) == engagement([], model, now=T0)


def test_a_rule_can_choose_to_count_machine_generated_touches() -> None:
    model = make_model(engagement=[rule("opens", "email_open", 2, count_machine_generated=True)])
    assert engagement([make_touch("email_open", machine_generated=True)], model, now=T0).total == 2


def test_touches_after_now_are_ignored() -> None:
    model = make_model(form_fill=40, half_life=days(14))
    touches = [make_touch("form_fill", at=T0), make_touch("form_fill", at=T0 + days(20))]
    assert engagement(touches, model, now=T0 + days(14)).total == pytest.approx(20)


def test_an_as_of_read_equals_a_read_of_the_history_up_to_then() -> None:
    model = make_model(engagement=[pricing(10, daily_cap=2)], form_fill=40)
    touches = [make_touch(at=T0 + hours(h)) for h in range(5)] + [make_touch("form_fill", at=T0 + hours(3))]
    as_of = T0 + hours(2)
    assert engagement(touches, model, now=as_of) == engagement([t for t in touches if t[0] <= as_of], model, as_of)


def test_no_touches_is_no_engagement() -> None:
    result = engagement([], make_model(form_fill=40), now=T0)
    assert (result.total, result.breakdown) == (0, ())


# --- page views -------------------------------------------------------------------------------


def test_a_page_load_and_its_time_on_page_report_count_once() -> None:
    model = make_model(web_visit=3)
    touches = [make_touch(page_view_id="pv1", at=T0), make_touch(page_view_id="pv1", duration_s=45, at=T0 + hours(0.1))]
    [view] = engagement(touches, model, now=T0 + hours(0.1)).breakdown
    assert view.fired_at == T0
    assert isinstance(view.touch, WebVisited)
    assert view.touch.duration_s == 45


def test_a_page_view_keeps_its_longest_reported_duration() -> None:
    model = make_model(web_visit=3)
    touches = [make_touch(page_view_id="pv1", duration_s=60), make_touch(page_view_id="pv1", duration_s=20)]
    [view] = engagement(touches, model, now=T0).breakdown
    assert isinstance(view.touch, WebVisited)
    assert view.touch.duration_s == 60


def test_a_minimum_time_on_page_is_met_by_the_later_report_of_the_same_view() -> None:
    model = make_model(engagement=[pricing(10, when={"url": "/pricing", "min_duration_s": 30})])
    load, report = (
        make_touch(page_view_id="pv1", at=T0),
        make_touch(page_view_id="pv1", duration_s=45, at=T0 + hours(1)),
    )
    assert engagement([load], model, now=T0 + hours(1)).total == 0
    assert engagement([load, report], model, now=T0).total == 0  # as of the load, the report has not arrived
    assert [c.fired_at for c in engagement([load, report], model, now=T0 + hours(1)).breakdown] == [T0]


def test_visits_without_a_page_view_id_each_count() -> None:
    model = make_model(web_visit=3)
    assert engagement([make_touch(), make_touch()], model, now=T0).total == 6


def test_different_page_views_each_count() -> None:
    model = make_model(web_visit=3)
    assert engagement([make_touch(page_view_id="a"), make_touch(page_view_id="b")], model, now=T0).total == 6


# --- conditions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "url", "fires"),
    [
        ("/pricing*", "https://acme.com/pricing/teams?utm_source=x", True),
        ("/pricing*", "/Pricing", True),
        ("/pricing*", "https://acme.com/about/pricing", False),
        ("/pricing", "https://acme.com/pricing/teams", False),
        ("https://docs.acme.com/*", "https://docs.acme.com/api", True),
        ("https://docs.acme.com/*", "https://acme.com/api", False),
        ("re:/(pricing|plans)$", "https://acme.com/en/plans", True),
        ("re:/(pricing|plans)$", "https://acme.com/plans/enterprise", False),
    ],
)
def test_url_patterns_are_path_globs_full_url_globs_or_regexes(pattern: str, url: str, fires: bool) -> None:
    model = make_model(engagement=[rule("page", "web_visit", 5, when={"url": pattern})])
    assert engagement([make_touch(url=url)], model, now=T0).total == (5 if fires else 0)


def test_a_url_condition_never_matches_a_touch_without_url() -> None:
    model = make_model(engagement=[rule("qr", "qr_scan", 5, when={"url": "*"})])
    assert engagement([make_touch("qr_scan", code="booth-7")], model, now=T0).total == 0


@pytest.mark.parametrize(
    ("when", "fields", "fires"),
    [
        ({"campaign_id": "spring-launch"}, {"campaign": "spring-launch"}, True),
        ({"campaign_id": "spring-launch"}, {"campaign": "autumn"}, False),
        ({"campaign_id": "spring-launch"}, {}, False),
        ({"channel": "email"}, {"channel": "Email"}, True),
        ({"channel": "email"}, {"channel": "web"}, False),
        ({"link_url": "*/case-study*"}, {"link_url": "https://acme.com/case-study/bank"}, True),
        ({"link_url": "*/case-study*"}, {"link_url": "https://acme.com/blog"}, False),
    ],
)
def test_email_click_conditions(when: dict[str, Any], fields: dict[str, Any], fires: bool) -> None:
    model = make_model(engagement=[rule("click", "email_click", 5, when=when)])
    assert engagement([make_touch("email_click", **fields)], model, now=T0).total == (5 if fires else 0)


def test_a_form_rule_fires_only_for_its_form() -> None:
    model = make_model(engagement=[rule("demo", "form_fill", 40, when={"form_id": "demo"})])
    touches = [make_touch("form_fill", form_id="newsletter"), make_touch("form_fill", form_id="demo")]
    assert engagement(touches, model, now=T0).total == 40


def test_a_custom_event_rule_matches_the_event_name() -> None:
    model = make_model(engagement=[rule("trial", "custom", 30, when={"event": "Trial Started"})])
    touches = [make_touch("custom", event="trial started"), make_touch("custom", event="Logged In")]
    assert engagement(touches, model, now=T0).total == 30


def test_an_attended_event_rule_matches_the_event_name_by_glob() -> None:
    model = make_model(engagement=[rule("webinar", "event_attended", 25, when={"event": "*webinar*"})])
    touches = [
        make_touch("event_attended", event_name="Webinar: Scoring 101"),
        make_touch("event_attended", event_name="Expo"),
    ]
    assert engagement(touches, model, now=T0).total == 25


def test_a_rule_matches_only_its_touch_type() -> None:
    model = make_model(engagement=[rule("demo", "leadflow.touch.form_fill.v1", 40)])
    assert engagement([make_touch("web_visit"), make_touch("form_fill")], model, now=T0).total == 40
