import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from services.ingest.sources import hubspot
from services.ingest.sources.hubspot import Delivery
from shared.events import DealCreated, DealData, DealLost, DealStageChanged, DealWon, Identified, identity_key
from shared.web import Invalid, Unauthorized

# The test vectors of HubSpot's own SDK: HubSpot/hubspot-api-python, tests/spec/utils/test_signature.py.
SDK_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
SDK_BODY = b"{'example_field':'example_value'}"
SDK_URL = "https://www.example.com/webhook_uri"

SECRET = "client-secret-0000"
URI = "https://leadflow.example.com/v1/webhooks/hubspot/src_1"
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
WINDOW = timedelta(minutes=5)


def ms(at: datetime) -> str:
    return str(int(at.timestamp() * 1000))


def delivery(body: bytes, *, at: datetime = NOW, secret: str = SECRET, uri: str = URI) -> Delivery:
    stamp = ms(at)
    return Delivery("POST", uri, body, hubspot.signature_v3(secret, "POST", uri, body, stamp), stamp)


def event(subscription_type: str, **fields: Any) -> dict[str, Any]:
    """Shaped like the examples of HubSpot's webhooks API docs."""
    return {
        "eventId": 1863743092,
        "subscriptionId": 25,
        "portalId": 33,
        "appId": 1160452,
        "occurredAt": 1462216307945,
        "subscriptionType": subscription_type,
        "attemptNumber": 0,
        "objectId": 1246965,
        "changeSource": "CRM_UI",
        **fields,
    }


def one(subscription_type: str, **fields: Any) -> Any:
    [(_, payload)] = hubspot.parse(orjson.dumps([event(subscription_type, **fields)]))
    return payload


def test_v3_signature_matches_hubspots_sdk_test_vector() -> None:
    signature = hubspot.signature_v3(SDK_SECRET, "POST", SDK_URL, SDK_BODY, "15000000")
    assert signature == "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw="
    sdk_request = Delivery("POST", SDK_URL, SDK_BODY, signature, "15000000")
    hubspot.verify(sdk_request, SDK_SECRET, now=datetime.fromtimestamp(15_000 + 60, UTC), tolerance=WINDOW)


def test_signed_uri_is_the_public_url_with_hubspots_listed_escapes_decoded() -> None:
    uri = hubspot.signed_uri("https://leadflow.example.com/", "/v1/webhooks/hubspot/src_1", "to=a%40b.com&t=x%3Ay")
    assert uri == "https://leadflow.example.com/v1/webhooks/hubspot/src_1?to=a@b.com&t=x:y"


def test_signed_uri_keeps_escapes_hubspot_does_not_list() -> None:
    uri = hubspot.signed_uri("https://l.example", "/p", "q=a%20b%26c%3db")
    assert uri == "https://l.example/p?q=a%20b%26c%3db"


def test_a_fresh_v3_signature_is_accepted() -> None:
    body = orjson.dumps([event("contact.creation")])
    hubspot.verify(delivery(body, at=NOW - timedelta(minutes=4)), SECRET, now=NOW, tolerance=WINDOW)


def test_a_v3_signature_older_than_five_minutes_is_refused_naming_the_timestamp_header() -> None:
    body = orjson.dumps([event("contact.creation")])
    with pytest.raises(Unauthorized) as refused:
        hubspot.verify(delivery(body, at=NOW - timedelta(minutes=6)), SECRET, now=NOW, tolerance=WINDOW)
    assert refused.value.errors[0]["field"] == "X-HubSpot-Request-Timestamp"


def test_a_timestamp_far_in_the_future_is_refused() -> None:
    body = orjson.dumps([event("contact.creation")])
    with pytest.raises(Unauthorized):
        hubspot.verify(delivery(body, at=NOW + timedelta(hours=1)), SECRET, now=NOW, tolerance=WINDOW)


def test_a_tampered_body_is_refused_naming_the_v3_header() -> None:
    signed = delivery(orjson.dumps([event("deal.creation")]))
    tampered = Delivery(signed.method, signed.uri, b"[]", signed.signature, signed.timestamp)
    with pytest.raises(Unauthorized) as refused:
        hubspot.verify(tampered, SECRET, now=NOW, tolerance=WINDOW)
    assert refused.value.errors[0]["field"] == "X-HubSpot-Signature-v3"


def test_a_signature_for_another_url_is_refused() -> None:
    body = orjson.dumps([event("deal.creation")])
    signed = delivery(body, uri="https://attacker.example/hook")
    moved = Delivery("POST", URI, body, signed.signature, signed.timestamp)
    with pytest.raises(Unauthorized):
        hubspot.verify(moved, SECRET, now=NOW, tolerance=WINDOW)


def test_a_request_without_any_signature_is_refused_naming_the_v3_header() -> None:
    with pytest.raises(Unauthorized) as refused:
        hubspot.verify(Delivery("POST", URI, b"[]"), SECRET, now=NOW, tolerance=WINDOW)
    assert refused.value.errors[0]["field"] == "X-HubSpot-Signature-v3"


def test_a_malformed_timestamp_is_refused() -> None:
    body = b"[]"
    signature = hubspot.signature_v3(SECRET, "POST", URI, body, "yesterday")
    with pytest.raises(Unauthorized) as refused:
        hubspot.verify(Delivery("POST", URI, body, signature, "yesterday"), SECRET, now=NOW, tolerance=WINDOW)
    assert refused.value.errors[0]["rule"] == "timestamp"


def test_hubspots_timestampless_v1_signature_alone_is_not_enough() -> None:
    body = orjson.dumps([event("contact.creation")])
    v1 = hashlib.sha256(SECRET.encode() + body).hexdigest()  # X-HubSpot-Signature, version v1
    with pytest.raises(Unauthorized) as refused:
        hubspot.verify(Delivery("POST", URI, body, signature=None, timestamp=None), SECRET, now=NOW, tolerance=WINDOW)
    assert refused.value.errors[0]["field"] == "X-HubSpot-Signature-v3"
    with pytest.raises(Unauthorized):
        hubspot.verify(Delivery("POST", URI, body, signature=v1, timestamp=ms(NOW)), SECRET, now=NOW, tolerance=WINDOW)


def test_contact_creation_is_an_identify_touch_of_the_hubspot_contact() -> None:
    touch = one("contact.creation")
    assert isinstance(touch, Identified)
    assert identity_key(touch.identity) == "rcpt:hubspot:33:1246965"
    assert touch.occurred_at == datetime(2016, 5, 2, 19, 11, 47, 945000, tzinfo=UTC)


def test_an_email_change_links_the_contact_to_its_email() -> None:
    touch = one("contact.propertyChange", propertyName="email", propertyValue="Ada@Example.com")
    assert identity_key(touch.identity) == "ada@example.com"
    assert touch.identity.recipient_id == "hubspot:33:1246965"
    assert touch.attributes == {"email": "Ada@Example.com"}


def test_a_property_change_becomes_the_attribute_it_changed() -> None:
    touch = one("contact.propertyChange", propertyName="lifecyclestage", propertyValue="subscriber")
    assert touch.attributes == {"lifecyclestage": "subscriber"}
    assert touch.identity.email is None


def test_contact_deletion_is_marked_as_a_deleted_attribute() -> None:
    assert one("contact.deletion").attributes == {"deleted": True}


def test_deal_creation_is_a_created_deal_with_a_portal_scoped_id() -> None:
    deal = one("deal.creation")
    assert isinstance(deal, DealCreated)
    assert (deal.deal_id, deal.source_system) == ("hubspot:33:1246965", "hubspot")


@pytest.mark.parametrize(
    ("stage", "kind"),
    [("closedwon", DealWon), ("closedlost", DealLost), ("contractsent", DealStageChanged)],
)
def test_a_dealstage_change_is_won_lost_or_a_stage_change(stage: str, kind: type[DealData]) -> None:
    deal = one("deal.propertyChange", propertyName="dealstage", propertyValue=stage)
    assert isinstance(deal, kind)
    assert deal.stage == stage


def test_an_amount_change_is_a_stage_change_without_a_stage_that_carries_the_amount() -> None:
    deal = one("deal.propertyChange", propertyName="amount", propertyValue="12500.50")
    assert isinstance(deal, DealStageChanged)
    assert (deal.stage, deal.amount) == (None, Decimal("12500.50"))


def test_values_the_contract_cannot_hold_and_unmapped_subscriptions_are_left_out() -> None:
    batch = [
        event("deal.propertyChange", propertyName="amount", propertyValue="lots"),
        event("deal.propertyChange", propertyName="hs_priority", propertyValue="high"),
        event("deal.deletion"),
        event("company.creation"),
        event("contact.merge"),
        event("deal.propertyChange", propertyName="dealstage", propertyValue="closedwon", eventId=2),
    ]
    [(_, deal)] = hubspot.parse(orjson.dumps(batch))
    assert isinstance(deal, DealWon)


def test_generic_object_subscriptions_are_mapped_by_object_type() -> None:
    deal = one("object.creation", objectTypeId="0-3")
    assert isinstance(deal, DealCreated)


def test_a_retried_event_keeps_its_id_and_distinct_subscriptions_get_distinct_ids() -> None:
    first = hubspot.parse(orjson.dumps([event("contact.creation")]))
    retry = hubspot.parse(orjson.dumps([event("contact.creation", attemptNumber=3)]))
    other = hubspot.parse(orjson.dumps([event("contact.creation", subscriptionId=26)]))
    assert first[0][0] == retry[0][0] == "hubspot:33:25:1863743092:1246965"
    assert other[0][0] != first[0][0]


def test_a_body_that_is_not_an_event_array_is_invalid_naming_the_field() -> None:
    with pytest.raises(Invalid) as invalid:
        hubspot.parse(orjson.dumps([{"eventId": 1, "subscriptionType": "contact.creation"}]))
    assert {e["field"] for e in invalid.value.errors} >= {"[0].portalId", "[0].objectId"}
