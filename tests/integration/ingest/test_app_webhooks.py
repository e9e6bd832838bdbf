"""Typeform, HubSpot and generic signed webhooks over HTTP into Kafka, each request signed as its sender signs it."""

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import orjson

from tests.conftest import ADMIN_TOKEN, Tail, create_source

HUBSPOT_SECRET = "hubspot-client-secret-1234"


def new_email() -> str:
    return f"p{uuid.uuid4().hex[:10]}@example.com"


def typeform_signed(secret: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {"content-type": "application/json", "Typeform-Signature": "sha256=" + base64.b64encode(digest).decode()}


def hubspot_signed(secret: str, url: str, body: bytes, *, age_s: float = 0) -> dict[str, str]:
    timestamp = str(int((time.time() - age_s) * 1000))
    message = b"POST" + url.encode() + body + timestamp.encode()
    signature = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    return {
        "content-type": "application/json",
        "X-HubSpot-Signature-v3": signature,
        "X-HubSpot-Request-Timestamp": timestamp,
        "X-HubSpot-Signature-Version": "v1",
        "X-HubSpot-Signature": hashlib.sha256(secret.encode() + body).hexdigest(),
    }


def generic_signed(secret: str, body: bytes, *, age_s: float = 0) -> dict[str, str]:
    timestamp = str(int(time.time() - age_s))
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/json",
        "X-Leadflow-Timestamp": timestamp,
        "X-Leadflow-Signature": f"v1={signature}",
    }


def form_response(email: str | None, *, event_id: str | None = None, hidden: dict[str, str] | None = None) -> bytes:
    answers: list[dict[str, Any]] = [
        {"type": "text", "text": "Ada", "field": {"id": "JwWggjAKtOkA", "type": "short_text", "ref": "first_name"}},
    ]
    if email:
        answers.append({"type": "email", "email": email, "field": {"id": "SMEUb7VJz92Q", "type": "email"}})
    payload = {
        "event_id": event_id or uuid.uuid4().hex[:10],
        "event_type": "form_response",
        "form_response": {
            "form_id": "lT4Z3j",
            "token": uuid.uuid4().hex,
            "submitted_at": "2026-03-02T09:15:00Z",
            "hidden": hidden or {},
            "definition": {"id": "lT4Z3j", "title": "Request a demo", "fields": []},
            "answers": answers,
        },
    }
    return orjson.dumps(payload)


def hubspot_event(subscription_type: str, object_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "eventId": uuid.uuid4().int % 10**9,
        "subscriptionId": 25,
        "portalId": 62515,
        "appId": 1160452,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": subscription_type,
        "attemptNumber": 0,
        "objectId": object_id,
        "changeSource": "CRM_UI",
        **fields,
    }


def assert_refused(response: httpx.Response, status: int, field: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == field


async def rejected_count(ingest: httpx.AsyncClient, source_id: str, expected: int) -> int:
    """Poll the admin counts (flushed every second) until they reach `expected` or 10 s pass."""
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        rejected: int = (await ingest.get(f"/v1/admin/sources/{source_id}", headers=admin)).json()["rejected"]
        if rejected >= expected or asyncio.get_running_loop().time() > deadline:
            return rejected
        await asyncio.sleep(0.1)


async def test_typeform_response_lands_on_touches_keyed_by_the_respondents_email(
    ingest: httpx.AsyncClient, tail: Tail
) -> None:
    source = await create_source(ingest, "typeform")
    secret = source["credentials"]["signing_secret"]
    email = new_email()
    body = form_response(email.upper(), hidden={"utm_source": "linkedin", "utm_campaign": "q1-demo"})
    response = await ingest.post(
        f"/v1/webhooks/typeform/{source['id']}", content=body, headers=typeform_signed(secret, body)
    )
    assert response.status_code == 202, response.text
    [event_id] = response.json()["ids"]
    assert event_id == "typeform:" + orjson.loads(body)["event_id"]
    record = (await tail.wait_for([event_id]))[event_id]
    assert (record.topic, record.key, record.type) == (
        "leadflow.touches",
        email.encode(),
        "leadflow.touch.form_fill.v1",
    )
    data = json.loads(record.value)
    assert data["fields"] == {"first_name": "Ada", "SMEUb7VJz92Q": email.upper()}
    assert data["campaign"] == {"utm_source": "linkedin", "utm_campaign": "q1-demo"}


async def test_the_same_typeform_delivery_twice_gets_the_same_event_id(ingest: httpx.AsyncClient) -> None:
    source = await create_source(ingest, "typeform")
    body = form_response(None)
    headers = typeform_signed(source["credentials"]["signing_secret"], body)
    first = await ingest.post(f"/v1/webhooks/typeform/{source['id']}", content=body, headers=headers)
    again = await ingest.post(f"/v1/webhooks/typeform/{source['id']}", content=body, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["ids"] == again.json()["ids"]


async def test_a_bad_typeform_signature_is_401_publishes_nothing_and_counts_as_rejected(
    ingest: httpx.AsyncClient, tail: Tail
) -> None:
    source = await create_source(ingest, "typeform")
    secret = source["credentials"]["signing_secret"]
    forged = form_response(new_email())
    refused = await ingest.post(
        f"/v1/webhooks/typeform/{source['id']}", content=forged, headers=typeform_signed("not-the-secret", forged)
    )
    assert_refused(refused, 401, "Typeform-Signature")
    unsigned = await ingest.post(
        f"/v1/webhooks/typeform/{source['id']}", content=forged, headers={"content-type": "application/json"}
    )
    assert_refused(unsigned, 401, "Typeform-Signature")
    genuine = form_response(new_email())
    ok = await ingest.post(
        f"/v1/webhooks/typeform/{source['id']}", content=genuine, headers=typeform_signed(secret, genuine)
    )
    await tail.wait_for(ok.json()["ids"])
    assert tail.count("typeform:" + orjson.loads(forged)["event_id"]) == 0
    assert await rejected_count(ingest, source["id"], 2) == 2


async def test_hubspot_deal_closed_won_lands_on_deals_keyed_by_the_deal(ingest: httpx.AsyncClient, tail: Tail) -> None:
    source = await create_source(ingest, "hubspot", signing_secret=HUBSPOT_SECRET)
    url, path = source["endpoint"], f"/v1/webhooks/hubspot/{source['id']}"  # the URL pasted into HubSpot
    deal = hubspot_event("deal.propertyChange", 9876, propertyName="dealstage", propertyValue="closedwon")
    body = orjson.dumps([deal, hubspot_event("company.creation", 5)])
    response = await ingest.post(path, content=body, headers=hubspot_signed(HUBSPOT_SECRET, url, body))
    assert response.status_code == 202, response.text
    [event_id] = response.json()["ids"]
    record = (await tail.wait_for([event_id]))[event_id]
    assert (record.topic, record.key) == ("leadflow.deals", b"hubspot:62515:9876")
    assert record.type == "leadflow.deal.closed_won.v1"
    assert json.loads(record.value)["source_system"] == "hubspot"


async def test_hubspot_contact_email_change_lands_on_touches_keyed_by_the_email(
    ingest: httpx.AsyncClient, tail: Tail
) -> None:
    source = await create_source(ingest, "hubspot", signing_secret=HUBSPOT_SECRET)
    # HubSpot signs the URL it called with `%40` and `%3A` decoded; the request still carries them encoded.
    path, query = f"/v1/webhooks/hubspot/{source['id']}", "owner=ops%40example.com&tag=a%3Ab"
    email = new_email()
    body = orjson.dumps([hubspot_event("contact.propertyChange", 501, propertyName="email", propertyValue=email)])
    signed_url = f"{source['endpoint']}?owner=ops@example.com&tag=a:b"
    response = await ingest.post(
        f"{path}?{query}", content=body, headers=hubspot_signed(HUBSPOT_SECRET, signed_url, body)
    )
    assert response.status_code == 202, response.text
    [event_id] = response.json()["ids"]
    record = (await tail.wait_for([event_id]))[event_id]
    assert (record.topic, record.key, record.type) == ("leadflow.touches", email.encode(), "leadflow.touch.identify.v1")
    assert json.loads(record.value)["identity"]["recipient_id"] == "hubspot:62515:501"


async def test_hubspot_requests_with_a_stale_timestamp_or_a_bad_signature_are_401(
    ingest: httpx.AsyncClient, tail: Tail
) -> None:
    source = await create_source(ingest, "hubspot", signing_secret=HUBSPOT_SECRET)
    url, path = source["endpoint"], f"/v1/webhooks/hubspot/{source['id']}"
    event = hubspot_event("deal.creation", 4242)
    body = orjson.dumps([event])
    stale = await ingest.post(path, content=body, headers=hubspot_signed(HUBSPOT_SECRET, url, body, age_s=360))
    assert_refused(stale, 401, "X-HubSpot-Request-Timestamp")
    forged = await ingest.post(path, content=body, headers=hubspot_signed("wrong-secret", url, body))
    assert_refused(forged, 401, "X-HubSpot-Signature-v3")
    elsewhere = await ingest.post(
        path, content=body, headers=hubspot_signed(HUBSPOT_SECRET, "https://x.test" + path, body)
    )
    assert_refused(elsewhere, 401, "X-HubSpot-Signature-v3")
    retried = await ingest.post(path, content=body, headers=hubspot_signed(HUBSPOT_SECRET, url, body))
    [event_id] = retried.json()["ids"]
    await tail.wait_for([event_id])
    assert tail.count(event_id) == 1


async def test_generic_webhook_routes_touches_and_deals_by_their_type(ingest: httpx.AsyncClient, tail: Tail) -> None:
    source = await create_source(ingest, "generic")
    secret = source["credentials"]["signing_secret"]
    email, deal_id = new_email(), f"crm-{uuid.uuid4().hex[:8]}"
    batch = [
        {"type": "leadflow.touch.web_visit.v1", "identity": {"email": email}, "url": "https://example.com/pricing"},
        {"type": "leadflow.deal.closed_won.v1", "deal_id": deal_id, "amount": "4200.00", "currency": "USD"},
    ]
    body = orjson.dumps(batch)
    path = f"/v1/webhooks/generic/{source['id']}"
    response = await ingest.post(path, content=body, headers=generic_signed(secret, body))
    assert response.status_code == 202, response.text
    touch_id, deal_event_id = response.json()["ids"]
    records = await tail.wait_for([touch_id, deal_event_id])
    assert (records[touch_id].topic, records[touch_id].key) == ("leadflow.touches", email.encode())
    assert (records[deal_event_id].topic, records[deal_event_id].key) == ("leadflow.deals", deal_id.encode())
    resent = await ingest.post(path, content=body, headers=generic_signed(secret, body, age_s=30))
    assert resent.json()["ids"] == [touch_id, deal_event_id]


async def test_generic_webhook_refuses_stale_and_wrongly_signed_requests(ingest: httpx.AsyncClient) -> None:
    source = await create_source(ingest, "generic", signing_secret="my-own-signing-secret")
    path = f"/v1/webhooks/generic/{source['id']}"
    body = orjson.dumps({"type": "leadflow.touch.email_open.v1", "identity": {"email": new_email()}})
    stale = await ingest.post(path, content=body, headers=generic_signed("my-own-signing-secret", body, age_s=3600))
    assert_refused(stale, 401, "X-Leadflow-Timestamp")
    forged = await ingest.post(path, content=body, headers=generic_signed("guessed-secret", body))
    assert_refused(forged, 401, "X-Leadflow-Signature")
    invalid = orjson.dumps({"type": "leadflow.touch.email_open.v1", "identity": {"email": "nope"}})
    bad_item = await ingest.post(path, content=invalid, headers=generic_signed("my-own-signing-secret", invalid))
    assert_refused(bad_item, 422, "identity.email")


async def test_unknown_sources_wrong_media_types_and_huge_bodies_get_problem_json(ingest: httpx.AsyncClient) -> None:
    typeform_source = await create_source(ingest, "typeform")
    secret = typeform_source["credentials"]["signing_secret"]
    body = form_response(new_email())
    headers = typeform_signed(secret, body)
    unknown = await ingest.post("/v1/webhooks/typeform/src_missing", content=body, headers=headers)
    assert unknown.status_code == 404
    other_kind = await ingest.post(f"/v1/webhooks/hubspot/{typeform_source['id']}", content=body, headers=headers)
    assert other_kind.status_code == 404
    path = f"/v1/webhooks/typeform/{typeform_source['id']}"
    as_text = await ingest.post(path, content=body, headers={**headers, "content-type": "text/plain"})
    assert_refused(as_text, 415, "Content-Type")
    huge = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    too_large = await ingest.post(path, content=huge, headers=typeform_signed(secret, huge))
    assert_refused(too_large, 413, "body")
