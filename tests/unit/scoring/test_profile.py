from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from services.scoring.profile import (
    Attribute,
    PersonaRule,
    Profile,
    SegmentBand,
    account_key,
    apply_attributes,
    buying_group_coverage,
    normalise_attributes,
    persona_of,
    segment_of,
    seniority_of,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
EMPTY = Profile()


def hours(n: int) -> timedelta:
    return timedelta(hours=n)


def profile_with(at: datetime = T0, source: str = "segment", **values: Any) -> Profile:
    return Profile(attributes={k: Attribute(value=v, source=source, at=at) for k, v in values.items()})


def test_identify_traits_and_form_fields_share_one_set_of_names() -> None:
    raw = {
        "firstName": "Ada",
        "Last Name": "Lovelace",
        "title": "CTO",
        "company": "Acme",
        "numberOfEmployees": "1,200",
        "state": "Bavaria",
        "country": "de",
        "Phone": " +49 30 1234 ",
        "website": "acme.example",
        "plan": "enterprise",
    }
    assert normalise_attributes(raw) == {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "job_title": "CTO",
        "company_name": "Acme",
        "employees": 1200,
        "region": "Bavaria",
        "country": "DE",
        "phone": "+49 30 1234",
        "website": "acme.example",
        "plan": "enterprise",
    }


@pytest.mark.parametrize(
    ("sent", "employees"), [(350, 350), (350.0, 350), ("200-499", 200), ("5000+", 5000), ("about 40", None)]
)
def test_employee_counts_become_whole_numbers_and_ranges_their_lower_bound(sent: Any, employees: int | None) -> None:
    assert normalise_attributes({"company_size": sent}).get("employees") == employees


def test_segments_nested_company_and_address_traits_are_flattened() -> None:
    raw = {"company": {"id": "g-7", "name": "Acme", "employee_count": 80}, "address": {"city": "Paris"}}
    assert normalise_attributes(raw) == {"company_id": "g-7", "company_name": "Acme", "employees": 80, "city": "Paris"}


def test_blank_and_structured_values_are_left_out() -> None:
    assert normalise_attributes({"city": "  ", "phone": None, "tags": ["a"], "industry": "Software"}) == {
        "industry": "Software"
    }


def test_a_new_attribute_keeps_its_value_source_and_time() -> None:
    profile, changed = apply_attributes(EMPTY, {"jobTitle": "CTO"}, "typeform", T0)
    assert profile.attributes == {"job_title": Attribute(value="CTO", source="typeform", at=T0)}
    assert changed == {"job_title"}


def test_a_later_update_replaces_the_value() -> None:
    profile, changed = apply_attributes(profile_with(city="Paris"), {"city": "Lyon"}, "hubspot", T0 + hours(1))
    assert profile.value("city") == "Lyon"
    assert changed == {"city"}


def test_an_older_update_arriving_late_never_overwrites_a_newer_one() -> None:
    newer = profile_with(at=T0, city="Lyon")
    profile, changed = apply_attributes(newer, {"city": "Paris", "industry": "Retail"}, "segment", T0 - hours(2))
    assert profile.value("city") == "Lyon"
    assert profile.value("industry") == "Retail"  # new to the profile, so it is kept whatever its age
    assert changed == {"industry"}


def test_updates_applied_in_either_order_give_the_same_profile() -> None:
    early, late = ({"city": "Paris"}, "segment", T0), ({"city": "Lyon"}, "hubspot", T0 + hours(1))
    in_order = apply_attributes(apply_attributes(EMPTY, *early)[0], *late)[0]
    reversed_ = apply_attributes(apply_attributes(EMPTY, *late)[0], *early)[0]
    assert in_order == reversed_
    assert in_order.value("city") == "Lyon"


def test_updates_at_the_same_time_are_decided_by_source_name_whatever_arrives_first() -> None:
    a = apply_attributes(apply_attributes(EMPTY, {"city": "Paris"}, "b-crm", T0)[0], {"city": "Lyon"}, "a-form", T0)
    b = apply_attributes(apply_attributes(EMPTY, {"city": "Lyon"}, "a-form", T0)[0], {"city": "Paris"}, "b-crm", T0)
    assert a[0].value("city") == b[0].value("city") == "Paris"


def test_the_same_value_sent_again_later_changes_no_key_but_refreshes_its_time() -> None:
    profile, changed = apply_attributes(profile_with(city="Paris"), {"city": "Paris"}, "hubspot", T0 + hours(3))
    assert changed == frozenset()
    assert profile.attributes["city"] == Attribute(value="Paris", source="hubspot", at=T0 + hours(3))


def test_fit_rules_read_the_plain_values_of_a_profile() -> None:
    assert profile_with(city="Paris", employees=80).values() == {"city": "Paris", "employees": 80}


def test_a_company_email_domain_names_the_account() -> None:
    assert account_key("Ada@Acme.com") == "domain:acme.com"


@pytest.mark.parametrize(
    "email",
    ["ada@gmail.com", "ada@yahoo.co.uk", "ada@hotmail.fr", "ada@gmx.net", "ada@proton.me", "ada@web.de", "a@163.com"],
)
def test_free_mail_addresses_name_no_account(email: str) -> None:
    assert account_key(email) is None


def test_an_explicit_company_id_wins_over_the_email_domain() -> None:
    assert account_key("ada@gmail.com", company_id="crm-7") == "company:crm-7"
    assert account_key("ada@acme.com", company_id="crm-7") == "company:crm-7"


def test_no_email_and_no_company_id_name_no_account() -> None:
    assert account_key(None) is None


@pytest.mark.parametrize(
    ("title", "persona"),
    [
        ("CEO & Co-Founder", "executive"),
        ("VP Engineering", "executive"),
        ("Head of Data", "executive"),
        ("Senior Procurement Manager", "buyer"),
        ("Staff Software Engineer", "engineer"),
        ("DevOps Lead", "engineer"),
        ("Solutions Architect", "engineer"),
        ("Director of Marketing", "marketer"),
        ("Account Executive", "sales"),
        ("Marketing Coordinator", "marketer"),
        ("Office Manager", "other"),
        (None, "other"),
    ],
)
def test_the_first_matching_title_rule_gives_the_persona(title: str | None, persona: str) -> None:
    assert persona_of(title) == persona


def test_persona_rules_are_data_and_their_order_decides() -> None:
    rules = [
        PersonaRule(persona="buyer", patterns=("procurement",)),
        PersonaRule(persona="executive", patterns=("vp",)),
    ]
    assert persona_of("VP Procurement", rules) == "buyer"
    assert persona_of("VP Procurement") == "executive"


@pytest.mark.parametrize(
    ("title", "seniority"),
    [
        ("Chief Revenue Officer", "c_level"),
        ("SVP Sales", "vp"),
        ("Head of IT", "director"),
        ("Developer", "individual"),
    ],
)
def test_seniority_comes_from_the_title(title: str, seniority: str) -> None:
    assert seniority_of(title) == seniority


@pytest.mark.parametrize(
    ("employees", "segment"), [(1, "small"), (199, "small"), (200, "medium"), (1999, "medium"), (2000, "large")]
)
def test_company_size_bands_give_the_segment(employees: int, segment: str) -> None:
    assert segment_of(employees) == segment


def test_unknown_size_has_no_segment() -> None:
    assert segment_of(None) is None


def test_segment_bands_are_configurable() -> None:
    bands = [SegmentBand(segment="smb", max_employees=49), SegmentBand(segment="enterprise", min_employees=50)]
    assert (segment_of(49, bands), segment_of(50, bands)) == ("smb", "enterprise")


def test_a_band_whose_max_is_below_its_min_is_refused() -> None:
    with pytest.raises(ValidationError, match="max_employees"):
        SegmentBand(segment="odd", min_employees=100, max_employees=10)


def test_rules_and_bands_round_trip_through_json_for_the_scoring_model() -> None:
    band = SegmentBand(segment="large", min_employees=2000)
    assert SegmentBand.model_validate_json(band.model_dump_json()) == band


def test_buying_group_coverage_names_the_engaged_and_the_missing_personas() -> None:
    coverage = buying_group_coverage(["engineer", "marketer", "engineer"])
    assert coverage.engaged == ("engineer",)
    assert coverage.missing == ("executive", "buyer")
    assert not coverage.complete


def test_an_account_with_every_required_persona_is_covered() -> None:
    coverage = buying_group_coverage(["buyer", "engineer"], required=["buyer", "engineer"])
    assert coverage.complete
