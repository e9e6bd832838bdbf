"""Segment calls to touches. Payloads follow the shape the SDKs send (analytics.js, analytics-python) and
the examples of Segment's Identify, Track, Page, Alias, Group and Email specs."""

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.ingest.sources.segment import (
    MAX_CALL_BYTES,
    CallType,
    Receipt,
    corrected_time,
    decode,
    parse_batch,
    parse_call,
    write_key_in,
)
from shared.events import (
    AdClicked,
    CustomTracked,
    EmailClicked,
    EmailOpened,
    FormFilled,
    Identified,
    TouchData,
    Unsubscribed,
    WebVisited,
)
from shared.web import Invalid, InvalidBody, PayloadTooLarge

RECEIVED = datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC)
BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.3 Safari/605.1.15"
)
COUNTRIES = {"81.2.69.160": "GB", "67.207.109.102": "US"}


def locate(ip: str | None) -> str | None:
    return COUNTRIES.get(ip or "")


def receipt(client_ip: str | None = "81.2.69.160") -> Receipt:
    return Receipt("src_1", RECEIVED, client_ip, locate)


def one(raw: dict[str, Any], call_type: CallType, client_ip: str | None = "81.2.69.160") -> tuple[str, TouchData]:
    [(event_id, touch)] = parse_call(raw, call_type, receipt(client_ip))
    return event_id, touch


def identify() -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": "97980cfea0067",
        "traits": {"name": "Peter Gibbons", "email": "Peter.Gibbons@Initech.com", "plan": "premium", "logins": 5},
        "context": {"ip": "67.207.109.102", "library": {"name": "analytics-python", "version": "2.3.2"}},
        "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
        "timestamp": "2026-03-02T10:00:00Z",
    }


def email_opened(user_agent: str = BROWSER) -> dict[str, Any]:
    return {
        "userId": "019mr8mf4r",
        "type": "track",
        "event": "Email Opened",
        "context": {"ip": "67.207.109.102", "userAgent": user_agent, "traits": {"email": "pgibbons@initech.com"}},
        "properties": {
            "email_id": "18vzF7u3z",
            "email_subject": "First shirt on us!",
            "campaign_id": "123",
            "campaign_name": "New Customer Discount",
        },
        "messageId": "ajs-next-1709373600123-8d1f",
    }


UTM_URL = "https://acme.example/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=spring"


def page(url: str = UTM_URL) -> dict[str, Any]:
    """What analytics.js posts for `analytics.page()` (to /v1/p, as text/plain)."""
    seen = {"path": "/pricing", "referrer": "https://www.google.com/", "title": "Pricing - Acme", "url": url}
    return {
        "type": "page",
        "properties": dict(seen),
        "context": {"page": dict(seen), "userAgent": BROWSER, "locale": "en-GB"},
        "anonymousId": "6f1c3a8e-51d4-4c3e-9c0b-2f1a0c7e5d11",
        "userId": None,
        "messageId": "ajs-next-1709373600123-4d3c",
        "timestamp": "2026-03-02T10:00:00.123Z",
        "sentAt": "2026-03-02T10:00:00.130Z",
        "writeKey": "wk_browser",
        "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []},
    }


def test_identify_keeps_traits_as_attributes_and_keys_the_person_by_email() -> None:
    event_id, touch = one(identify(), "identify")
    assert isinstance(touch, Identified)
    assert event_id == "022bb90c-bbac-11e4-8dfc-aa07a5b093db"
    assert touch.identity.email == "peter.gibbons@initech.com"
    assert touch.identity.user_id == "97980cfea0067"
    assert touch.attributes["plan"] == "premium"
    assert touch.country == "US"
    assert touch.occurred_at == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_the_published_touch_holds_no_ip_address() -> None:
    _, touch = one(identify(), "identify")
    assert "67.207.109.102" not in touch.model_dump_json()


def test_email_opened_becomes_an_email_open_with_message_and_campaign() -> None:
    _, touch = one(email_opened(), "track")
    assert isinstance(touch, EmailOpened)
    assert (touch.message_id, touch.channel) == ("18vzF7u3z", "email")
    assert touch.campaign is not None
    assert touch.campaign.campaign_id == "123"
    assert touch.identity.email == "pgibbons@initech.com"
    assert touch.machine_generated is False


def test_an_open_by_apples_privacy_proxy_is_flagged_not_dropped() -> None:
    _, touch = one(email_opened(user_agent="Mozilla/5.0"), "track")
    assert isinstance(touch, EmailOpened)
    assert touch.machine_generated is True
    assert touch.machine_reason == "privacy_proxy"


def test_a_link_click_by_a_mail_scanner_is_flagged() -> None:
    raw = email_opened(user_agent="Mozilla/5.0 (compatible; Proofpoint URL Defense)")
    raw["event"] = "Email Link Clicked"
    raw["properties"]["link_url"] = "https://www.buymyshirts.com?promo=NEWCUSTOMER"
    _, touch = one(raw, "track")
    assert isinstance(touch, EmailClicked)
    assert touch.link_url == "https://www.buymyshirts.com?promo=NEWCUSTOMER"
    assert (touch.machine_generated, touch.machine_reason) == (True, "scanner_agent")


def test_unsubscribed_keeps_the_list() -> None:
    raw = email_opened()
    raw["event"] = "Unsubscribed"
    raw["properties"]["list_id"] = "1425"
    _, touch = one(raw, "track")
    assert isinstance(touch, Unsubscribed)
    assert touch.list_id == "1425"


def test_bounces_and_deliveries_stay_custom_email_events() -> None:
    raw = email_opened()
    raw["event"] = "Email Bounced"
    _, touch = one(raw, "track")
    assert isinstance(touch, CustomTracked)
    assert (touch.event, touch.channel) == ("Email Bounced", "email")


def test_page_view_with_utm_parameters_is_a_web_visit_of_that_campaign() -> None:
    event_id, touch = one(page(), "page")
    assert isinstance(touch, WebVisited)
    assert event_id == "ajs-next-1709373600123-4d3c"
    assert (touch.url or "").startswith("https://acme.example/pricing")
    assert (touch.referrer, touch.title, touch.channel) == ("https://www.google.com/", "Pricing - Acme", "web")
    assert touch.campaign is not None
    assert (touch.campaign.utm_source, touch.campaign.utm_medium, touch.campaign.utm_campaign) == (
        "newsletter",
        "email",
        "spring",
    )
    assert touch.identity.anonymous_id == "6f1c3a8e-51d4-4c3e-9c0b-2f1a0c7e5d11"
    assert touch.user_agent == BROWSER


def test_context_campaign_wins_over_the_url_field_by_field() -> None:
    raw = page()
    raw["context"]["campaign"] = {"name": "spring-retargeting", "source": "linkedin"}
    _, touch = one(raw, "page")
    assert touch.campaign is not None
    assert (touch.campaign.utm_source, touch.campaign.utm_medium, touch.campaign.utm_campaign) == (
        "linkedin",
        "email",
        "spring-retargeting",
    )


def test_browser_calls_without_context_ip_take_the_country_of_the_request() -> None:
    _, touch = one(page(), "page", client_ip="81.2.69.160")
    assert touch.country == "GB"


def test_server_calls_without_context_ip_get_no_country_from_the_data_centre() -> None:
    raw = identify()
    del raw["context"]["ip"]
    _, touch = one(raw, "identify", client_ip="81.2.69.160")
    assert touch.country is None


def test_screen_is_an_app_visit_named_after_the_screen() -> None:
    raw = {"type": "screen", "userId": "u1", "name": "Pricing", "properties": {"plan": "pro"}}
    _, touch = one(raw, "screen")
    assert isinstance(touch, WebVisited)
    assert (touch.title, touch.channel, touch.url) == ("Pricing", "app", None)


def test_alias_links_the_previous_id_to_the_user() -> None:
    raw = {"type": "alias", "previousId": "39239-239239-239239-23923", "userId": "507f191e81", "messageId": "m-alias"}
    _, touch = one(raw, "alias")
    assert isinstance(touch, Identified)
    assert (touch.previous_id, touch.identity.user_id) == ("39239-239239-239239-23923", "507f191e81")


def test_group_puts_the_company_in_the_attributes_and_not_its_email_in_the_identity() -> None:
    raw = {
        "type": "group",
        "groupId": "0e8c78ea9d97a7b8185e8632",
        "userId": "97980cfea0067",
        "traits": {"name": "Initech", "industry": "Technology", "employees": 329, "email": "hello@initech.com"},
    }
    _, touch = one(raw, "group")
    assert isinstance(touch, Identified)
    assert touch.identity.email is None
    assert touch.attributes["company"]["id"] == "0e8c78ea9d97a7b8185e8632"
    assert touch.attributes["company"]["employees"] == 329


def test_form_submitted_is_a_form_fill_with_the_fields_and_the_email() -> None:
    raw = {
        "type": "track",
        "event": "Form Submitted",
        "anonymousId": "anon-7",
        "properties": {"form_id": "demo-request", "email": "ada@example.com", "company": "Analytical Engines"},
        "context": {"page": {"url": "https://acme.example/demo"}, "userAgent": BROWSER},
    }
    _, touch = one(raw, "track")
    assert isinstance(touch, FormFilled)
    assert touch.form_id == "demo-request"
    assert touch.fields == {"email": "ada@example.com", "company": "Analytical Engines"}
    assert touch.identity.email == "ada@example.com"
    assert touch.identity.anonymous_id == "anon-7"


def test_ad_clicked_is_an_ad_click() -> None:
    raw = {"type": "track", "event": "Ad Clicked", "userId": "u1", "properties": {"ad_id": "ad-9", "network": "google"}}
    _, touch = one(raw, "track")
    assert isinstance(touch, AdClicked)
    assert (touch.ad_id, touch.network) == ("ad-9", "google")


def test_any_other_event_is_custom_with_its_properties() -> None:
    raw = {"type": "track", "event": "Trial Started", "userId": 42, "properties": {"plan": "pro", "seats": 5}}
    _, touch = one(raw, "track")
    assert isinstance(touch, CustomTracked)
    assert (touch.event, touch.properties) == ("Trial Started", {"plan": "pro", "seats": 5})
    assert touch.identity.user_id == "42"


def test_a_malformed_email_stays_in_the_attributes_but_does_not_identify() -> None:
    raw = identify()
    raw["traits"]["email"] = "n/a"
    _, touch = one(raw, "identify")
    assert touch.identity.email is None
    assert touch.attributes["email"] == "n/a"


def test_the_path_decides_the_call_type() -> None:
    _, touch = one({**identify(), "type": "track"}, "identify")
    assert isinstance(touch, Identified)


def test_without_message_id_a_retry_gets_the_same_content_derived_id() -> None:
    raw = {k: v for k, v in identify().items() if k != "messageId"}
    first, _ = one({**raw, "sentAt": "2026-03-02T10:00:01Z"}, "identify")
    retried, _ = one({**raw, "sentAt": "2026-03-02T10:05:00Z"}, "identify")
    other, _ = one({**raw, "userId": "someone-else"}, "identify")
    assert first == retried != other


def test_clock_skew_is_corrected_from_sent_at() -> None:
    # The sender's clock runs an hour behind: it said 09:00:00 happened and 09:00:04 sent.
    raw = {**identify(), "timestamp": "2026-03-02T09:00:00Z", "sentAt": "2026-03-02T09:00:04Z"}
    _, touch = one(raw, "identify")
    assert touch.occurred_at == RECEIVED - timedelta(seconds=4)


def test_clock_correction_needs_both_times() -> None:
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    assert corrected_time(stamp, None, RECEIVED) == stamp
    assert corrected_time(None, stamp, RECEIVED) is None
    assert corrected_time(datetime(2026, 1, 1), None, RECEIVED) == stamp  # no zone means UTC


def test_a_batch_maps_every_message_and_shares_its_sent_at_and_context() -> None:
    batch: dict[str, Any] = {
        "batch": [identify(), {**email_opened(), "timestamp": "2026-03-02T09:59:00Z"}, page()],
        "sentAt": "2026-03-02T10:00:00Z",
        "context": {"library": {"name": "analytics-python", "version": "2.3.2"}, "ip": "81.2.69.160"},
    }
    del batch["batch"][2]["sentAt"]
    touches = parse_batch(batch, receipt(client_ip=None))
    assert [type(t).__name__ for _, t in touches] == ["Identified", "EmailOpened", "WebVisited"]
    assert touches[1][1].occurred_at == RECEIVED - timedelta(minutes=1)
    assert touches[0][1].country == "US"  # the message's own context.ip wins over the batch's
    assert touches[2][1].country == "GB"


def test_a_batch_with_one_bad_message_names_each_bad_field_and_maps_nothing() -> None:
    no_ids = {"type": "track", "event": "Signed Up", "properties": {}}
    no_event = {"type": "track", "userId": "u1"}
    with pytest.raises(InvalidBody) as caught:
        parse_batch({"batch": [identify(), no_ids, no_event, {"userId": "u2"}]}, receipt())
    fields = [e["field"] for e in caught.value.errors]
    assert fields == ["batch[1].userId", "batch[2].event", "batch[3].type"]


def test_wrong_types_are_named_by_their_segment_field() -> None:
    bad = copy.deepcopy(page())
    bad["context"]["page"] = "not an object"
    with pytest.raises(InvalidBody) as caught:
        parse_batch({"batch": [bad, {"type": "jump", "userId": "u"}, "text"]}, receipt())
    fields = [e["field"] for e in caught.value.errors]
    assert fields == ["batch[0].context.page", "batch[1].type", "batch[2]"]


def test_alias_and_group_need_their_ids() -> None:
    with pytest.raises(InvalidBody) as caught:
        parse_batch({"batch": [{"type": "alias", "userId": "u"}, {"type": "group", "userId": "u"}]}, receipt())
    assert [e["field"] for e in caught.value.errors] == ["batch[0].previousId", "batch[1].groupId"]


def test_an_empty_batch_is_refused() -> None:
    with pytest.raises(Invalid):
        parse_batch({"batch": []}, receipt())


def test_a_message_over_32_kb_inside_a_batch_is_too_large() -> None:
    big = {**identify(), "traits": {"notes": "x" * MAX_CALL_BYTES}}
    with pytest.raises(PayloadTooLarge) as caught:
        parse_batch({"batch": [identify(), big]}, receipt())
    assert caught.value.errors[0]["field"] == "batch[1]"


def test_the_body_must_be_a_json_object_and_may_carry_the_write_key() -> None:
    assert write_key_in(decode(b'{"writeKey": " wk_1 ", "batch": []}')) == "wk_1"
    assert write_key_in(decode(b"{}")) is None
    for body in (b"[1]", b"{nope"):
        with pytest.raises(Invalid):
            decode(body)
