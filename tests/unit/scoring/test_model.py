import json
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from services.scoring.model import DEFAULT_MODEL, ModelInvalid, ScoringModel, TouchType, short_type, validate_model
from shared.events import Touch


def raw_model(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(DEFAULT_MODEL.model_dump_json())
    raw.update(changes)
    return raw


def refusal(raw: Any) -> list[tuple[str, str]]:
    with pytest.raises(ModelInvalid) as refused:
        validate_model(raw)
    return [(e["field"], e["rule"]) for e in refused.value.errors]


def web_rule(**extra: Any) -> dict[str, Any]:
    return {"id": "page", "touch": "web_visit", "points": 5, **extra}


def test_the_default_model_survives_a_round_trip_through_json() -> None:
    assert validate_model(json.loads(DEFAULT_MODEL.model_dump_json())) == DEFAULT_MODEL


def test_a_model_is_frozen() -> None:
    with pytest.raises(ValidationError):
        DEFAULT_MODEL.half_life_days = 1  # type: ignore[misc]


def test_a_rule_may_name_the_full_touch_type() -> None:
    model = validate_model(raw_model(engagement=[web_rule(touch="leadflow.touch.web_visit.v1")]))
    assert model.engagement[0].touch == "web_visit"


def test_the_short_touch_types_are_exactly_those_of_the_event_contract() -> None:
    touch_classes = get_args(get_args(Touch)[0])
    assert {short_type(cls.model_fields["type"].default) for cls in touch_classes} == set(get_args(TouchType))


def test_an_unknown_touch_type_is_refused_naming_the_rule() -> None:
    assert refusal(raw_model(engagement=[web_rule(touch="fax_sent")])) == [("engagement[0].touch", "literal_error")]


def test_an_unknown_field_is_refused() -> None:
    assert refusal(raw_model(engagement=[web_rule(when={"urll": "/pricing"})])) == [
        ("engagement[0].when.urll", "extra_forbidden")
    ]


def test_an_invalid_regex_is_refused_naming_the_field() -> None:
    with pytest.raises(ModelInvalid) as refused:
        validate_model(raw_model(engagement=[web_rule(when={"url": "re:/(pricing"})]))
    [error] = refused.value.errors
    assert (error["field"], error["rule"]) == ("engagement[0].when.url", "regex")
    assert "regular expression" in error["message"]


def test_a_glob_with_brackets_is_not_a_regex() -> None:
    validate_model(raw_model(engagement=[web_rule(when={"url": "/pricing(*"})]))


def test_rule_ids_are_unique_across_engagement_and_fit() -> None:
    fit_rule = {"id": "page", "kind": "persona", "values": ["buyer"], "points": 5}
    assert refusal(raw_model(engagement=[web_rule()], fit=[fit_rule])) == [
        ("engagement[0].id", "unique"),
        ("fit[0].id", "unique"),
    ]


@pytest.mark.parametrize(
    ("condition", "value"), [("form_id", "demo"), ("link_url", "*/x"), ("event", "Trial"), ("min_duration_s", 30)]
)
def test_a_condition_the_touch_type_cannot_have_is_refused(condition: str, value: Any) -> None:
    rule = {"id": "unsub", "touch": "unsubscribe", "points": -5, "when": {condition: value}}
    assert refusal(raw_model(engagement=[rule])) == [(f"engagement[0].when.{condition}", "applicable")]


def test_a_daily_cap_must_allow_at_least_one_firing() -> None:
    assert refusal(raw_model(engagement=[web_rule(daily_cap=0)])) == [("engagement[0].daily_cap", "greater_than_equal")]


def test_a_half_life_must_be_positive() -> None:
    assert refusal(raw_model(half_life_days=0)) == [("half_life_days", "greater_than")]


def test_an_unknown_fit_kind_is_refused_naming_the_kind() -> None:
    assert refusal(raw_model(fit=[{"id": "x", "kind": "vibes", "points": 5}])) == [("fit[0].kind", "union_tag_invalid")]


def test_a_fit_rule_error_names_the_field_without_the_union_member() -> None:
    rule = {"id": "hq", "kind": "distance", "latitude": 91, "longitude": 0, "within_miles": 50, "points": 5}
    assert refusal(raw_model(fit=[rule])) == [("fit[0].latitude", "less_than_equal")]


def test_a_range_needs_an_end_and_its_ends_in_order() -> None:
    base = {"id": "size", "kind": "range", "attribute": "employees", "points": 5}
    assert refusal(raw_model(fit=[base])) == [("fit[0].min", "missing")]
    assert refusal(raw_model(fit=[{**base, "min": 500, "max": 50}])) == [("fit[0].max", "ordered")]


def test_grade_bands_must_fall() -> None:
    bands = [{"grade": "A", "min_fit": 40}, {"grade": "B", "min_fit": 60}, {"grade": "C", "min_fit": 20}]
    assert refusal(raw_model(grades=bands)) == [("grades[1].min_fit", "ordered")]


def test_grade_names_are_unique_including_the_lowest() -> None:
    bands = [{"grade": "A", "min_fit": 60}, {"grade": "D", "min_fit": 40}]
    assert ("grades[1].grade", "unique") in refusal(raw_model(grades=bands, lowest_grade="D"))


def test_a_threshold_for_an_unknown_grade_is_refused() -> None:
    qualification = {"min_engagement": {"A": 20, "Z": 30}, "recycle_below": 10}
    assert refusal(raw_model(qualification=qualification)) == [("qualification.min_engagement.Z", "known_grade")]


def test_a_worse_grade_may_not_need_less_engagement_than_a_better_one() -> None:
    qualification = {"min_engagement": {"A": 50, "B": 40}, "recycle_below": 10}
    assert refusal(raw_model(qualification=qualification)) == [("qualification.min_engagement.B", "ordered")]


def test_the_recycle_threshold_must_sit_below_every_qualification_threshold() -> None:
    qualification = {"min_engagement": {"A": 20, "B": 40}, "recycle_below": 20}
    assert refusal(raw_model(qualification=qualification)) == [("qualification.recycle_below", "ordered")]


def test_qualification_needs_a_positive_threshold() -> None:
    qualification = {"min_engagement": {"A": 0}, "recycle_below": 0}
    assert refusal(raw_model(qualification=qualification)) == [("qualification.min_engagement", "greater_than")]


def test_every_problem_is_reported_at_once() -> None:
    fields = {field for field, _ in refusal(raw_model(half_life_days=-1, grades=[], engagement=[web_rule(points="x")]))}
    assert fields == {"half_life_days", "grades", "engagement[0].points"}


def test_something_that_is_not_a_model_is_refused() -> None:
    assert refusal("pricing=10") == [("model", "model_type")]


def test_a_refusal_is_a_value_error_that_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"half_life_days: "):
        validate_model(raw_model(half_life_days=0))


def test_constructing_an_inconsistent_model_directly_also_fails() -> None:
    with pytest.raises(ValidationError, match="recycle_below"):
        ScoringModel.model_validate(raw_model(qualification={"min_engagement": {"A": 5}, "recycle_below": 5}))
