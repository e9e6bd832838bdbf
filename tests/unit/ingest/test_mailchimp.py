from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from services.ingest.auth import hash_secret
from services.ingest.sources import mailchimp
from shared.events import Identified, TouchData, Unsubscribed
from shared.web import InvalidBody, Unauthorized

# Shaped like the examples of Mailchimp's "Sync audience data with webhooks" guide.
SUBSCRIBE = [
    ("type", "subscribe"),
    ("fired_at", "2009-03-26 21:35:57"),
    ("data[id]", "8a25ff1d98"),
    ("data[list_id]", "a6b5da1054"),
    ("data[email]", "api@mailchimp.com"),
    ("data[email_type]", "html"),
    ("data[ip_opt]", "10.20.10.30"),
    ("data[ip_signup]", "10.20.10.30"),
    ("data[merges][EMAIL]", "api@mailchimp.com"),
    ("data[merges][FNAME]", "Mailchimp"),
    ("data[merges][LNAME]", "API"),
    ("data[merges][INTERESTS]", "Group1,Group2"),
    ("data[merges][ADDRESS][city]", "Atlanta"),
]
UNSUBSCRIBE = [
    ("type", "unsubscribe"),
    ("fired_at", "2009-03-26 21:40:57"),
    ("data[action]", "unsub"),
    ("data[reason]", "manual"),
    ("data[id]", "8a25ff1d98"),
    ("data[list_id]", "a6b5da1054"),
    ("data[email]", "api+unsub@mailchimp.com"),
    ("data[email_type]", "html"),
    ("data[merges][EMAIL]", "api+unsub@mailchimp.com"),
    ("data[merges][FNAME]", "Mailchimp"),
    ("data[ip_opt]", "10.20.10.30"),
    ("data[campaign_id]", "cb398d21d2"),
]
UPEMAIL = [
    ("type", "upemail"),
    ("fired_at", "2009-03-26 22:15:09"),
    ("data[list_id]", "a6b5da1054"),
    ("data[new_id]", "51da8c3259"),
    ("data[new_email]", "api+new@mailchimp.com"),
    ("data[old_email]", "API+old@mailchimp.com"),
]
CLEANED = [
    ("type", "cleaned"),
    ("fired_at", "2009-03-26 22:01:00"),
    ("data[list_id]", "a6b5da1054"),
    ("data[campaign_id]", "4fjk2ma9xd"),
    ("data[reason]", "hard"),
    ("data[email]", "api+cleaned@mailchimp.com"),
]
CAMPAIGN = [
    ("type", "campaign"),
    ("fired_at", "2009-03-26 22:01:00"),
    ("data[id]", "5aa2102003"),
    ("data[subject]", "Test Campaign Subject"),
    ("data[status]", "sent"),
    ("data[list_id]", "a6b5da1054"),
]


def parse(fields: list[tuple[str, str]], source_id: str = "src_1") -> list[tuple[str, TouchData]]:
    return mailchimp.parse(urlencode(fields).encode(), source_id=source_id)


def test_bracket_keys_become_nested_fields() -> None:
    post = mailchimp.nested(SUBSCRIBE)
    assert post["type"] == "subscribe"
    assert post["data"]["merges"]["FNAME"] == "Mailchimp"
    assert post["data"]["merges"]["ADDRESS"] == {"city": "Atlanta"}


def test_subscribe_identifies_the_person_with_merge_fields_and_list() -> None:
    [(_, touch)] = parse(SUBSCRIBE)
    assert isinstance(touch, Identified)
    assert touch.identity.email == "api@mailchimp.com"
    assert touch.identity.recipient_id == "8a25ff1d98"
    assert touch.occurred_at == datetime(2009, 3, 26, 21, 35, 57, tzinfo=UTC)
    assert touch.attributes == {
        "mailchimp_list_id": "a6b5da1054",
        "first_name": "Mailchimp",
        "last_name": "API",
        "interests": "Group1,Group2",
        "address": {"city": "Atlanta"},
    }


def test_a_profile_update_identifies_too() -> None:
    profile = [("type", "profile"), *SUBSCRIBE[1:]]
    [(_, touch)] = parse(profile)
    assert isinstance(touch, Identified)
    assert touch.attributes["first_name"] == "Mailchimp"


def test_unsubscribe_carries_list_reason_and_campaign() -> None:
    [(_, touch)] = parse(UNSUBSCRIBE)
    assert isinstance(touch, Unsubscribed)
    assert (touch.identity.email, touch.list_id, touch.reason) == ("api+unsub@mailchimp.com", "a6b5da1054", "manual")
    assert touch.campaign is not None
    assert touch.campaign.campaign_id == "cb398d21d2"
    deleted = [("data[action]", "delete") if key == "data[action]" else (key, value) for key, value in UNSUBSCRIBE]
    [(_, deletion)] = parse(deleted)
    assert isinstance(deletion, Unsubscribed)
    assert deletion.reason == "deleted: manual"


def test_a_changed_address_links_the_old_one_as_previous_id() -> None:
    [(_, touch)] = parse(UPEMAIL)
    assert isinstance(touch, Identified)
    assert (touch.identity.email, touch.identity.recipient_id) == ("api+new@mailchimp.com", "51da8c3259")
    assert touch.previous_id == "api+old@mailchimp.com"


def test_a_cleaned_address_is_an_unsubscribe_with_the_reason() -> None:
    [(_, touch)] = parse(CLEANED)
    assert isinstance(touch, Unsubscribed)
    assert touch.reason == "cleaned: hard"


def test_a_campaign_status_post_is_not_a_touch() -> None:
    assert parse(CAMPAIGN) == []


def test_the_same_post_twice_gets_the_same_id_whatever_the_field_order() -> None:
    [(first, _)] = parse(SUBSCRIBE)
    [(again, _)] = parse(list(reversed(SUBSCRIBE)))
    [(other_source, _)] = parse(SUBSCRIBE, source_id="src_2")
    [(later, _)] = parse([("fired_at", "2009-03-27 08:00:00") if k == "fired_at" else (k, v) for k, v in SUBSCRIBE])
    assert first == again
    assert len({first, other_source, later}) == 3


def test_the_url_secret_is_compared_by_hash() -> None:
    stored = hash_secret("mc_right")
    mailchimp.check_secret("mc_right", stored)
    for secret in ("mc_wrong", None, ""):
        with pytest.raises(Unauthorized) as refused:
            mailchimp.check_secret(secret, stored)
        assert refused.value.errors[0]["field"] == "secret"


def test_a_bad_address_names_the_field() -> None:
    bad = [("data[email]", "nobody") if key == "data[email]" else (key, value) for key, value in SUBSCRIBE]
    with pytest.raises(InvalidBody) as invalid:
        parse(bad)
    assert invalid.value.errors[0]["field"] == "identity.email"


def test_fired_at_without_a_zone_is_read_as_utc() -> None:
    assert mailchimp.fired_at("2009-03-26 21:35:57") == datetime(2009, 3, 26, 21, 35, 57, tzinfo=UTC)
    assert mailchimp.fired_at("yesterday") is None
