"""ICP from won revenue: the top customers, lift against all leads, and the fit rules it proposes."""

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.scoring.icp import LeadFacts, band_of, derive_icp, proposed_model, top_customers
from services.scoring.model import DEFAULT_MODEL
from services.scoring.rules import fit


def lead(
    n: int, account: str | None = None, won: float | None = None, persona: str | None = None, **attributes: Any
) -> LeadFacts:
    return LeadFacts(
        lead_id=f"l{n}",
        account=account,
        attributes=attributes,
        persona=persona,
        won=1 if won is not None else 0,
        revenue=Decimal(str(won or 0)),
    )


def test_customers_are_accounts_ranked_by_summed_revenue_and_a_lead_without_account_stands_alone() -> None:
    leads = [lead(1, "a", 100), lead(2, "a", 150), lead(3, "b", 200), lead(4, None, 300), lead(5, "c")]
    best, customers = top_customers(leads, 1.0)
    assert customers == 3
    assert [(c.key, c.revenue) for c in best] == [("lead:l4", Decimal(300)), ("a", Decimal(250)), ("b", Decimal(200))]


@pytest.mark.parametrize(("top", "kept"), [(0.2, 2), (0.1, 1), (0.01, 1), (1.0, 10)])
def test_the_top_fraction_rounds_up_and_keeps_at_least_one(top: float, kept: int) -> None:
    leads = [lead(n, f"acc{n}", 1000 - n) for n in range(10)]
    best, _ = top_customers(leads, top)
    assert len(best) == kept
    assert best[0].key == "acc0"


@pytest.mark.parametrize(
    ("employees", "band"),
    [
        (0, "0-49"),
        (49, "0-49"),
        (50, "50-199"),
        (4999, "1000-4999"),
        (10**6, "5000+"),
        (None, None),
        ("many", None),
        (True, None),
    ],
)
def test_employee_bands(employees: Any, band: str | None) -> None:
    assert band_of(employees) == band


def market() -> list[LeadFacts]:
    """Two big software customers with executives at 200-999 employees; a long tail of others."""
    big = [
        lead(1, "big1", 50_000, "executive", industry="Software", employees=300, country="DE"),
        lead(2, "big1", None, "engineer", industry="Software", employees=300, country="US"),
        lead(3, "big2", 40_000, "executive", industry="software", employees=800, country="US"),
    ]
    small = [lead(10 + n, f"s{n}", 1_000, "marketer", industry="Retail", employees=20, country="US") for n in range(8)]
    prospects = [
        lead(30 + n, f"p{n}", None, "engineer", industry="Retail", employees=5000, country="US") for n in range(10)
    ]
    return big + small + prospects


def test_lift_finds_what_the_best_customers_share_and_proposes_rules_in_model_format() -> None:
    icp = derive_icp(market(), top=0.2, min_lift=1.5, min_support=2)

    assert [c.key for c in icp.top] == ["big1", "big2"]
    assert (icp.customers, icp.cohort_leads, icp.leads) == (10, 3, 21)
    software = next(x for x in icp.lifts if (x.attribute, x.value) == ("industry", "software"))
    assert (software.cohort, software.overall) == (3, 3)
    assert software.lift == pytest.approx(7.0)
    by_id = {r["id"]: r for r in icp.rules}
    assert set(by_id) == {"icp_industry", "icp_persona", "icp_employees"}  # DE (1 lead) lacks support
    assert by_id["icp_industry"]["values"] == ["software"]
    assert by_id["icp_persona"] == {
        "id": "icp_persona",
        "kind": "persona",
        "values": ["executive"],
        "points": by_id["icp_persona"]["points"],
    }
    assert (by_id["icp_employees"]["min"], by_id["icp_employees"]["max"]) == (200, 999)
    assert sum(r["points"] for r in icp.rules) == pytest.approx(100, abs=2)


def test_the_proposed_model_replaces_attribute_rules_keeps_free_mail_and_grades_the_icp_lead_best() -> None:
    icp = derive_icp(market(), top=0.2, min_lift=1.5, min_support=2)
    model = proposed_model(DEFAULT_MODEL, icp.rules)

    assert [r.id for r in model.fit] == ["free_mail", "icp_industry", "icp_persona", "icp_employees"]
    assert model.engagement == DEFAULT_MODEL.engagement
    ideal = fit({"industry": "Software", "employees": 400, "email": "ceo@big.com"}, None, "executive", model)
    assert ideal.grade == "A"
    assert fit({"industry": "Retail", "employees": 20}, None, "marketer", model).grade == "D"


def test_no_won_customers_gives_no_cohort_and_no_rules() -> None:
    icp = derive_icp([lead(1, "a", None, industry="x")])
    assert (icp.customers, icp.cohort_leads, icp.rules) == (0, 0, ())
    assert proposed_model(DEFAULT_MODEL, icp.rules).fit[0].id == "free_mail"


facts = st.builds(
    lead,
    st.integers(0, 10_000),
    st.sampled_from(["a", "b", "c", None]),
    st.one_of(st.none(), st.floats(0, 1e6)),
    st.sampled_from(["executive", "buyer", None]),
    industry=st.sampled_from(["software", "retail", "bank"]),
    employees=st.integers(0, 20_000),
)


@given(st.lists(facts, max_size=30), st.floats(0.01, 1.0))
def test_any_derived_icp_is_a_valid_model_and_shares_are_proportions(leads: list[LeadFacts], top: float) -> None:
    leads = [LeadFacts(f"l{n}", x.account, x.attributes, x.persona, x.won, x.revenue) for n, x in enumerate(leads)]
    icp = derive_icp(leads, top=top, min_support=1)
    proposed_model(DEFAULT_MODEL, icp.rules)  # validates
    assert all(0 < x.cohort_share <= 1 and 0 < x.overall_share <= 1 and x.lift > 0 for x in icp.lifts)
    assert all(r["points"] >= 1 for r in icp.rules)
    assert len(icp.top) <= icp.customers
