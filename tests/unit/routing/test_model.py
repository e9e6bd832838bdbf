import pytest
from pydantic import ValidationError

from services.routing.auth import User, may_see
from services.routing.model import Rep, RuleSet, Team, check_references
from services.routing.webhooks import next_attempt, signature, verify
from tests.unit.routing.builders import T0


def test_a_rule_set_naming_unknown_teams_and_territories_says_which_field() -> None:
    rules = RuleSet.model_validate(
        {"rules": [{"id": "a", "team_id": "ent"}, {"id": "b", "team_id": "nope", "when": {"territories": ["mars"]}}]}
    )
    errors = check_references(rules, {"teams": {"ent"}, "territories": set()})
    assert [e["field"] for e in errors] == ["rules[1].team_id", "rules[1].when.territories[0]"]


def test_a_rule_needs_exactly_one_target() -> None:
    with pytest.raises(ValidationError) as caught:
        RuleSet.model_validate({"rules": [{"id": "a", "team_id": "t", "rep_id": "r"}]})
    assert caught.value.errors()[0]["loc"][:2] == ("rules", 0)


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        Rep.model_validate({"id": "ada", "name": "Ada", "time_zone": "Mars/Olympus"})
    assert caught.value.errors()[0]["loc"] == ("time_zone",)


def test_team_defaults_give_a_working_sla() -> None:
    team = Team(id="t", name="T")
    assert (team.sla.accept_minutes, team.balance) == (240, "count")


def test_reps_see_their_own_managers_their_team_admins_all() -> None:
    rep, manager, admin = User("u1", "rep", rep_id="ada"), User("u2", "manager", team_id="t"), User("u3", "admin")
    assert may_see(rep, "ada", "t")
    assert not may_see(rep, "bob", "t")
    assert may_see(manager, "bob", "t")
    assert not may_see(manager, "bob", "other")
    assert may_see(admin, None, None)


def test_webhook_signatures_verify_and_a_tampered_body_does_not() -> None:
    header = signature("s3cret", 1000, b'{"a":1}')
    assert verify("s3cret", header, b'{"a":1}', now=1010)
    assert not verify("s3cret", header, b'{"a":2}', now=1010)
    assert not verify("s3cret", header, b'{"a":1}', now=5000)


def test_retries_back_off_exponentially_then_dead_letter() -> None:
    waits = [next_attempt(n, T0, max_attempts=5, first_s=1, max_s=60) for n in range(1, 6)]
    assert [(w - T0).total_seconds() for w in waits if w] == [1, 2, 4, 8]
    assert waits[-1] is None
