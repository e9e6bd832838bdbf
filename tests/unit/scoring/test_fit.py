from typing import Any

import pytest

from services.scoring.model import DEFAULT_MODEL
from services.scoring.rules import Engagement, Fit, fit, grade, miles_between, qualify, should_recycle
from tests.unit.scoring.builders import make_model


def in_list(attribute: str, values: list[str], points: float = 20, **extra: Any) -> dict[str, Any]:
    return {"id": attribute, "kind": "in_list", "attribute": attribute, "values": values, "points": points, **extra}


def employees(low: float | None = 50, high: float | None = 5000, **extra: Any) -> dict[str, Any]:
    return {"id": "size", "kind": "range", "attribute": "employees", "min": low, "max": high, "points": 25, **extra}


def near(miles: float, lat: float = 0.0, lon: float = 0.0) -> dict[str, Any]:
    return {"id": "near", "kind": "distance", "latitude": lat, "longitude": lon, "within_miles": miles, "points": 15}


def free_mail(is_free: bool = True, **extra: Any) -> dict[str, Any]:
    return {"id": "free_mail", "kind": "free_mail", "is_free": is_free, "points": -20, **extra}


def test_an_attribute_in_the_list_adds_points_and_names_the_value() -> None:
    model = make_model(fit=[in_list("industry", ["software", "healthcare"])])
    result = fit({"industry": "Software"}, None, None, model)
    assert result.total == 20
    assert [(m.rule_id, m.points, m.value) for m in result.breakdown] == [("industry", 20, "Software")]


def test_an_attribute_outside_the_list_or_missing_adds_nothing() -> None:
    model = make_model(fit=[in_list("industry", ["software"])])
    assert fit({"industry": "retail"}, None, None, model).breakdown == ()
    assert fit({}, None, None, model).breakdown == ()


@pytest.mark.parametrize(("count", "fits"), [(49, False), (50, True), (1200, True), (5000, True), (5001, False)])
def test_a_range_includes_both_ends(count: int, fits: bool) -> None:
    model = make_model(fit=[employees(50, 5000)])
    assert fit({"employees": count}, None, None, model).total == (25 if fits else 0)


def test_a_range_reads_numbers_written_as_text_and_ignores_anything_else() -> None:
    model = make_model(fit=[employees(50, 5000)])
    assert fit({"employees": "1200"}, None, None, model).breakdown[0].value == 1200
    assert fit({"employees": "lots"}, None, None, model).total == 0
    assert fit({"employees": True}, None, None, model).total == 0


def test_a_range_may_be_open_at_one_end() -> None:
    model = make_model(fit=[employees(1000, None)])
    assert fit({"employees": 10**6}, None, None, model).total == 25
    assert fit({"employees": 999}, None, None, model).total == 0


def test_an_account_rule_reads_the_account_not_the_profile() -> None:
    model = make_model(fit=[in_list("industry", ["software"], on="account")])
    assert fit({"industry": "software"}, {"industry": "retail"}, None, model).total == 0
    assert fit({"industry": "retail"}, {"industry": "software"}, None, model).total == 20
    assert fit({"industry": "software"}, None, None, model).total == 0


def test_a_persona_rule_matches_the_persona_given() -> None:
    model = make_model(fit=[{"id": "persona", "kind": "persona", "values": ["executive", "buyer"], "points": 20}])
    assert fit({}, None, "buyer", model).breakdown[0].value == "buyer"
    assert fit({}, None, "engineer", model).total == 0
    assert fit({}, None, None, model).total == 0


def test_one_degree_of_latitude_is_about_69_miles() -> None:
    # 3958.8 miles * pi / 180 = 69.0940 miles
    assert miles_between((0.0, 0.0), (1.0, 0.0)) == pytest.approx(69.094, abs=1e-3)


def test_london_to_paris_is_about_213_miles() -> None:
    assert miles_between((51.5074, -0.1278), (48.8566, 2.3522)) == pytest.approx(213.5, abs=1)


def test_a_distance_rule_holds_within_the_radius_and_reports_the_miles() -> None:
    one_degree_north = {"latitude": 1.0, "longitude": 0.0}
    assert fit(one_degree_north, None, None, make_model(fit=[near(70)])).breakdown[0].value == pytest.approx(
        69.094, 1e-4
    )
    assert fit(one_degree_north, None, None, make_model(fit=[near(69)])).total == 0


def test_a_distance_rule_needs_both_coordinates() -> None:
    model = make_model(fit=[near(500)])
    assert fit({"latitude": "0.5", "longitude": "0.5"}, None, None, model).total == 15
    assert fit({"latitude": 0.5}, None, None, model).total == 0
    assert fit({"latitude": 0.5, "longitude": "east"}, None, None, model).total == 0


def test_a_free_mail_address_costs_points() -> None:
    model = make_model(fit=[free_mail()])
    assert [(m.points, m.value) for m in fit({"email": "ada@Gmail.com"}, None, None, model).breakdown] == [
        (-20, "gmail.com")
    ]
    assert fit({"email": "ada@acme.com"}, None, None, model).total == 0
    assert fit({}, None, None, model).total == 0


def test_a_company_address_can_be_the_one_that_scores() -> None:
    model = make_model(fit=[free_mail(is_free=False, points=10)])
    assert fit({"email": "ada@acme.com"}, None, None, model).total == 10
    assert fit({"email": "ada@gmail.com"}, None, None, model).total == 0


def test_a_free_mail_rule_may_bring_its_own_domains() -> None:
    model = make_model(fit=[free_mail(domains=["example.org"])])
    assert fit({"email": "ada@example.org"}, None, None, model).total == -20
    assert fit({"email": "ada@gmail.com"}, None, None, model).total == 0


def test_fit_adds_every_rule_that_holds_in_model_order() -> None:
    model = make_model(fit=[in_list("industry", ["software"]), employees(), free_mail()])
    result = fit({"industry": "software", "employees": 300, "email": "a@gmail.com"}, None, None, model)
    assert [m.rule_id for m in result.breakdown] == ["industry", "size", "free_mail"]
    assert result.total == 20 + 25 - 20


@pytest.mark.parametrize(
    ("total", "letter"), [(100, "A"), (60, "A"), (59.9, "B"), (40, "B"), (39, "C"), (20, "C"), (19.5, "D"), (-20, "D")]
)
def test_grades_are_bands_of_fit(total: float, letter: str) -> None:
    assert grade(total, make_model()) == letter


def test_the_default_model_grades_a_vp_at_a_mid_sized_software_company_a() -> None:
    profile = {"industry": "software", "employees": 300, "seniority": "vp", "email": "vp@acme.com"}
    result = fit(profile, None, "executive", DEFAULT_MODEL)
    assert (result.total, result.grade) == (20 + 25 + 20 + 10, "A")


def test_the_default_model_grades_a_free_mail_student_d() -> None:
    result = fit({"email": "kid@gmail.com"}, None, None, DEFAULT_MODEL)
    assert (result.total, result.grade) == (-20, "D")


# --- qualification ----------------------------------------------------------------------------


def scored(letter: str, engaged: float) -> tuple[Fit, Engagement]:
    return Fit(total=0, grade=letter, breakdown=()), Engagement(total=engaged, breakdown=())


@pytest.mark.parametrize(
    ("letter", "engaged", "mql"),
    [
        ("A", 20, True),
        ("A", 19.99, False),
        ("B", 40, True),
        ("B", 39.99, False),
        ("C", 60, True),
        ("C", 59.99, False),
        ("D", 1000, False),
    ],
)
def test_qualification_needs_the_engagement_of_the_fit_grade(letter: str, engaged: float, mql: bool) -> None:
    lead_fit, lead_engagement = scored(letter, engaged)
    assert qualify(lead_fit, lead_engagement, make_model(mql={"A": 20, "B": 40, "C": 60})) is mql


def test_a_lead_is_recycled_only_below_the_recycle_threshold() -> None:
    model = make_model(recycle_below=10)
    assert should_recycle(Engagement(total=9.99, breakdown=()), model)
    assert not should_recycle(Engagement(total=10, breakdown=()), model)
