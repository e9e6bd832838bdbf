import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.scoring.identity import (
    LEAD_NAMESPACE,
    IdentityLinked,
    KnownLead,
    LeadCreated,
    LeadsMerged,
    Unidentified,
    identifiers_of,
    lead_id_for,
    resolve_identity,
)
from shared.events import FormFilled, Identified, Identity, WebVisited

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def known(lead_id: str, *, days_old: int = 0, email: bool = False) -> KnownLead:
    return KnownLead(lead_id=lead_id, created_at=T0 - timedelta(days=days_old), has_email=email)


def identity(**ids: Any) -> Identity:
    return Identity(**ids)


def test_identifiers_are_written_like_the_identity_key_strongest_first() -> None:
    touch = FormFilled(identity=identity(anonymous_id="c1", email=" Ada@Example.COM ", user_id="42", recipient_id="r9"))
    assert identifiers_of(touch) == ("ada@example.com", "anon:c1", "user:42", "rcpt:r9")


def test_an_alias_that_is_an_email_links_the_old_address() -> None:
    touch = Identified(identity=identity(email="new@acme.com"), previous_id="Old@Acme.com")
    assert identifiers_of(touch) == ("new@acme.com", "old@acme.com")


def test_an_alias_of_unknown_kind_links_both_the_anonymous_and_the_user_name() -> None:
    touch = Identified(identity=identity(user_id="42"), previous_id="c1")
    assert identifiers_of(touch) == ("user:42", "anon:c1", "user:c1")


def test_an_already_prefixed_alias_is_taken_as_it_is() -> None:
    touch = Identified(identity=identity(user_id="42"), previous_id="anon:c1")
    assert identifiers_of(touch) == ("user:42", "anon:c1")


def test_an_unknown_person_becomes_a_new_lead_named_after_the_first_identifier() -> None:
    resolution = resolve_identity(["ada@example.com", "anon:c1"], {}, T0)
    lead = str(uuid.uuid5(LEAD_NAMESPACE, "ada@example.com"))
    assert resolution.lead_id == lead
    assert resolution.facts == (
        LeadCreated(lead, "ada@example.com", T0),
        IdentityLinked(lead, "ada@example.com", T0),
        IdentityLinked(lead, "anon:c1", T0),
    )


def test_a_redelivered_touch_creates_the_same_lead() -> None:
    first = resolve_identity(["anon:c1"], {}, T0)
    again = resolve_identity(["anon:c1"], {}, T0 + timedelta(minutes=5))
    assert first.lead_id == again.lead_id == lead_id_for("anon:c1")


def test_a_redelivered_touch_after_it_was_applied_changes_nothing() -> None:
    lead = lead_id_for("anon:c1")
    resolution = resolve_identity(["anon:c1"], {"anon:c1": known(lead)}, T0)
    assert resolution.lead_id == lead
    assert resolution.facts == ()


def test_different_first_identifiers_make_different_leads() -> None:
    assert lead_id_for("anon:c1") != lead_id_for("anon:c2")


def test_a_new_identifier_is_linked_to_the_lead_that_owns_the_others() -> None:
    resolution = resolve_identity(["ada@example.com", "anon:c1"], {"anon:c1": known("L-anon")}, T0)
    assert resolution.lead_id == "L-anon"
    assert resolution.created is None
    assert resolution.facts == (IdentityLinked("L-anon", "ada@example.com", T0),)


def test_a_form_fill_joining_an_anonymous_lead_to_a_known_one_merges_into_the_known_one() -> None:
    owners = {"ada@example.com": known("L-known", email=True), "anon:c1": known("L-anon", days_old=30)}
    resolution = resolve_identity(["ada@example.com", "anon:c1"], owners, T0)
    assert resolution.lead_id == "L-known"
    assert resolution.facts == (LeadsMerged(survivor="L-known", absorbed="L-anon", at=T0),)


def test_merges_in_either_order_of_identifiers_reach_the_same_survivor() -> None:
    owners = {"user:42": known("L-user", days_old=1), "anon:c1": known("L-anon", days_old=9)}
    one = resolve_identity(["anon:c1", "user:42"], owners, T0)
    other = resolve_identity(["user:42", "anon:c1"], owners, T0)
    assert one.lead_id == other.lead_id == "L-anon"  # neither has an email: the older survives
    assert one.merges == other.merges == (LeadsMerged("L-anon", "L-user", T0),)


def test_two_leads_with_the_same_age_and_no_email_merge_into_the_smaller_id() -> None:
    owners = {"anon:a": known("L-b"), "anon:b": known("L-a")}
    assert resolve_identity(["anon:a", "anon:b"], owners, T0).lead_id == "L-a"


def test_pairwise_merges_in_any_order_end_in_the_same_lead_as_one_merge_of_all() -> None:
    leads = {"L-email": known("L-email", email=True), "L-old": known("L-old", days_old=5), "L-new": known("L-new")}
    by_id = {"x@acme.com": leads["L-email"], "anon:old": leads["L-old"], "anon:new": leads["L-new"]}
    at_once = resolve_identity(list(by_id), by_id, T0).lead_id
    first_pair = resolve_identity(["anon:old", "anon:new"], by_id, T0).lead_id
    then = resolve_identity(["anon:new", "x@acme.com"], {**by_id, "anon:new": leads[first_pair]}, T0).lead_id
    assert at_once == then == "L-email"


def test_an_alias_joining_three_leads_absorbs_two_into_the_survivor() -> None:
    owners = {"user:42": known("L-1", days_old=3), "anon:c1": known("L-2", days_old=2), "user:c1": known("L-3")}
    resolution = resolve_identity(["user:42", "anon:c1", "user:c1"], owners, T0)
    assert resolution.lead_id == "L-1"
    assert [m.absorbed for m in resolution.merges] == ["L-2", "L-3"]


def test_a_touch_without_any_identifier_is_refused() -> None:
    touch = WebVisited(identity=identity())
    with pytest.raises(Unidentified):
        resolve_identity(identifiers_of(touch), {}, T0)
