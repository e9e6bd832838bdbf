from services.routing.directory import decide
from services.routing.model import Away, Rule, Territory
from services.routing.rules import LeadFacts, Target, account_owner
from tests.unit.routing.builders import T0, make_directory, make_list, make_rep

EMEA = Territory(id="emea", name="EMEA", countries=("de", "FR"))


def rule(rule_id: str, *, team: str | None = None, rep: str | None = None, **when: object) -> Rule:
    return Rule.model_validate({"id": rule_id, "team_id": team, "rep_id": rep, "when": when})


def test_named_account_leads_go_to_account_owner_before_any_rule() -> None:
    d = make_directory(
        [make_rep("ada"), make_rep("bob", "smb")],
        rules=[rule("all", team="smb")],
        lists=(make_list("top10", {"acme.com": "ada"}),),
    )
    choice = decide(LeadFacts("l1", account="ACME.com"), d, {}, {}, T0)
    assert (choice.rep_id, choice.target.rule) == ("ada", "account:top10")


def test_a_list_names_an_account_as_a_bare_domain_or_as_scoring_does() -> None:
    lists = [make_list("top10", {"acme.com": "ada", "company:42": "bob"})]
    assert account_owner("domain:acme.com", lists) == Target(rule="account:top10", rep_id="ada")
    assert account_owner("company:42", lists) == Target(rule="account:top10", rep_id="bob")
    assert account_owner("domain:other.com", lists) is None
    assert account_owner("42", lists) is None  # a bare name is a domain, never a company id


def test_the_top10_list_wins_over_the_wider_list() -> None:
    lists = [make_list("wide", {"acme.com": "bob"}, rank=1), make_list("top10", {"acme.com": "ada"})]
    assert account_owner("acme.com", lists) == Target(rule="account:top10", rep_id="ada")


def test_rules_are_tried_in_order_and_the_first_match_wins() -> None:
    d = make_directory(
        [make_rep("ada", "ent"), make_rep("bob", "smb")],
        rules=[rule("big", team="ent", segments=["large"]), rule("rest", team="smb")],
    )
    assert decide(LeadFacts("l", segment="large"), d, {}, {}, T0).rep_id == "ada"
    assert decide(LeadFacts("l", segment="small"), d, {}, {}, T0).rep_id == "bob"


def test_territory_score_band_persona_and_campaign_all_must_match() -> None:
    d = make_directory(
        [make_rep("ada", "emea")],
        rules=[
            rule(
                "emea-hot",
                team="emea",
                territories=["emea"],
                min_score=50,
                max_score=90,
                personas=["buyer"],
                campaigns=["c1"],
            )
        ],
        territories=(EMEA,),
    )
    hot = LeadFacts("l", score=60, persona="buyer", country="DE", campaigns=("c1",))
    assert decide(hot, d, {}, {}, T0).rep_id == "ada"
    for miss in (
        LeadFacts("l", score=90, persona="buyer", country="DE", campaigns=("c1",)),
        LeadFacts("l", score=60, persona="engineer", country="DE", campaigns=("c1",)),
        LeadFacts("l", score=60, persona="buyer", country="US", campaigns=("c1",)),
        LeadFacts("l", score=60, persona="buyer", country="DE", campaigns=("c2",)),
    ):
        assert decide(miss, d, {}, {}, T0).target == Target(rule="queue")


def test_a_team_with_nobody_available_passes_the_lead_to_the_next_rule_and_says_why() -> None:
    away = Away(start=T0.replace(hour=0), end=T0.replace(hour=23))
    d = make_directory(
        [make_rep("ada", "ent", away=[away]), make_rep("bob", "ent", capacity=1), make_rep("cy", "backup")],
        rules=[rule("ent", team="ent"), rule("backup", team="backup")],
    )
    choice = decide(LeadFacts("l"), d, {}, {"bob": 1}, T0)
    assert choice.rep_id == "cy"
    assert [(c.rep_id, c.skipped) for c in choice.considered] == [("ada", "away"), ("bob", "at_capacity"), ("cy", None)]
    assert "ada (away)" in choice.why()


def test_nobody_matching_leaves_the_lead_in_the_fallback_team_then_the_queue() -> None:
    d = make_directory(
        [make_rep("ada", "inbound")], rules=[rule("x", team="inbound", segments=["large"])], fallback="inbound"
    )
    assert decide(LeadFacts("l"), d, {}, {}, T0).target.rule == "fallback"
    empty = make_directory([], rules=[])
    assert decide(LeadFacts("l"), empty, {}, {}, T0).rep_id is None
