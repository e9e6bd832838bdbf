"""Email-provider webhooks over HTTP into Kafka, each request signed the way the provider signs it."""

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import ADMIN_TOKEN, Tail, create_source

SG_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SG_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def new_email() -> str:
    return f"p{uuid.uuid4().hex[:10]}@example.com"


def problem_field(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/problem+json"
    field: str = response.json()["errors"][0]["field"]
    return field


# SendGrid


def new_key_pair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A P-256 key pair; the public half as SendGrid shows its Verification Key (base64 DER)."""
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(der).decode()


def sendgrid_headers(private: ec.EllipticCurvePrivateKey, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(timestamp or int(time.time()))
    signature = private.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {"content-type": "application/json", SG_SIGNATURE: base64.b64encode(signature).decode(), SG_TIMESTAMP: stamp}


def sendgrid_event(kind: str, email: str, **fields: Any) -> dict[str, Any]:
    return {
        "email": email,
        "timestamp": int(time.time()),
        "event": kind,
        "sg_event_id": secrets.token_urlsafe(16),
        "sg_message_id": f"{uuid.uuid4().hex}.filter0001.16648.5515E0B88.0",
        "category": ["newsletter"],
        **fields,
    }


async def sendgrid_source(ingest: httpx.AsyncClient) -> tuple[str, ec.EllipticCurvePrivateKey]:
    private, public = new_key_pair()
    source = await create_source(ingest, "sendgrid", public_key=public)
    return source["id"], private


async def test_signed_sendgrid_batch_puts_its_touches_in_kafka(ingest: httpx.AsyncClient, tail: Tail) -> None:
    source_id, private = await sendgrid_source(ingest)
    email = new_email()
    url = "https://example.com/pricing?utm_source=newsletter"
    batch = [
        sendgrid_event("delivered", email, response="250 OK"),
        sendgrid_event("open", email, sg_machine_open=True, useragent="Mozilla/5.0", ip="81.2.69.160"),
        sendgrid_event("click", email, url=url, useragent="Mozilla/5.0 (Macintosh) Safari/605.1.15"),
    ]
    body = json.dumps(batch).encode()
    response = await ingest.post(
        f"/v1/webhooks/sendgrid/{source_id}", content=body, headers=sendgrid_headers(private, body)
    )
    assert response.status_code == 200, response.text
    assert response.json()["ids"] == [batch[1]["sg_event_id"], batch[2]["sg_event_id"]]
    records = await tail.wait_for(response.json()["ids"])
    opened, clicked = (records[e["sg_event_id"]] for e in batch[1:])
    assert (opened.type, clicked.type) == ("leadflow.touch.email_open.v1", "leadflow.touch.email_click.v1")
    assert (opened.key, opened.headers["ce_source"]) == (email.encode(), f"/leadflow/ingest/sendgrid/{source_id}")
    assert json.loads(opened.value)["machine_generated"] is True
    assert json.loads(opened.value)["country"] == "GB"
    assert json.loads(clicked.value)["link_url"] == url
    assert tail.count(batch[0]["sg_event_id"]) == 0


async def test_a_sendgrid_batch_posted_twice_carries_the_same_ids(ingest: httpx.AsyncClient) -> None:
    source_id, private = await sendgrid_source(ingest)
    body = json.dumps([sendgrid_event("open", new_email())]).encode()
    first = await ingest.post(
        f"/v1/webhooks/sendgrid/{source_id}", content=body, headers=sendgrid_headers(private, body)
    )
    again = await ingest.post(
        f"/v1/webhooks/sendgrid/{source_id}", content=body, headers=sendgrid_headers(private, body)
    )
    assert first.status_code == again.status_code == 200
    assert first.json()["ids"] == again.json()["ids"]


async def test_a_badly_signed_sendgrid_batch_is_refused_and_publishes_nothing(
    ingest: httpx.AsyncClient, tail: Tail
) -> None:
    source_id, private = await sendgrid_source(ingest)
    email = new_email()
    forged = json.dumps([sendgrid_event("click", email, url="https://example.com")]).encode()
    impostor, _ = new_key_pair()
    cases = [
        sendgrid_headers(impostor, forged),
        {**sendgrid_headers(private, b"[]"), "content-type": "application/json"},
        {"content-type": "application/json"},
        sendgrid_headers(private, forged, timestamp=int(time.time()) - 3600),
    ]
    fields = []
    for headers in cases:
        response = await ingest.post(f"/v1/webhooks/sendgrid/{source_id}", content=forged, headers=headers)
        assert response.status_code == 401, response.text
        fields.append(problem_field(response))
    assert fields == [SG_SIGNATURE, SG_SIGNATURE, SG_SIGNATURE, SG_TIMESTAMP]
    genuine = json.dumps([sendgrid_event("open", email)]).encode()
    accepted = await ingest.post(
        f"/v1/webhooks/sendgrid/{source_id}", content=genuine, headers=sendgrid_headers(private, genuine)
    )
    await tail.wait_for(accepted.json()["ids"])  # same key, same partition: anything forged would be before it
    assert [r.id for r in tail.records if r.key == email.encode()] == accepted.json()["ids"]
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    detail = (await ingest.get(f"/v1/admin/sources/{source_id}", headers=admin)).json()
    assert (detail["accepted"], detail["rejected"]) == (1, 4)


async def test_webhooks_for_an_unknown_source_or_another_kind_are_not_found(ingest: httpx.AsyncClient) -> None:
    api = await create_source(ingest, "api")
    for path in ("/v1/webhooks/sendgrid/src_nope", f"/v1/webhooks/mailgun/{api['id']}"):
        response = await ingest.post(path, json=[])
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


# Mailgun

MAILGUN_KEY = "0123456789abcdef0123456789abcdef-1a2b3c4d-5e6f7a8b"


def mailgun_post(event_data: dict[str, Any], key: str = MAILGUN_KEY, timestamp: int | None = None) -> dict[str, Any]:
    stamp, token = str(timestamp or int(time.time())), secrets.token_hex(25)
    signature = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": stamp, "token": token, "signature": signature}, "event-data": event_data}


def mailgun_event(kind: str, email: str, **fields: Any) -> dict[str, Any]:
    return {
        "event": kind,
        "id": secrets.token_urlsafe(16),
        "timestamp": time.time(),
        "recipient": email,
        "tags": ["spring-launch"],
        "user-variables": {},
        "client-info": {"user-agent": "Mozilla/5.0 (Windows NT 10.0) Chrome/120.0", "bot": ""},
        "message": {"headers": {"message-id": f"{uuid.uuid4().hex}@mg.example.com"}},
        **fields,
    }


async def mailgun_source(ingest: httpx.AsyncClient) -> str:
    source = await create_source(ingest, "mailgun", signing_secret=MAILGUN_KEY)
    source_id: str = source["id"]
    return source_id


async def test_signed_mailgun_click_is_in_kafka(ingest: httpx.AsyncClient, tail: Tail) -> None:
    source_id = await mailgun_source(ingest)
    event = mailgun_event("clicked", new_email(), url="https://example.com/demo")
    response = await ingest.post(f"/v1/webhooks/mailgun/{source_id}", json=mailgun_post(event))
    assert response.status_code == 200, response.text
    assert response.json()["ids"] == [event["id"]]
    record = (await tail.wait_for([event["id"]]))[event["id"]]
    assert record.type == "leadflow.touch.email_click.v1"
    assert json.loads(record.value)["campaign"] == {"campaign_id": "spring-launch"}


async def test_mailgun_retrying_an_event_gets_the_same_id_but_a_replayed_token_is_refused(
    ingest: httpx.AsyncClient,
) -> None:
    source_id = await mailgun_source(ingest)
    event = mailgun_event("opened", new_email())
    first = await ingest.post(f"/v1/webhooks/mailgun/{source_id}", json=mailgun_post(event))
    retried = await ingest.post(f"/v1/webhooks/mailgun/{source_id}", json=mailgun_post(event))
    assert first.json()["ids"] == retried.json()["ids"] == [event["id"]]
    captured = mailgun_post(mailgun_event("opened", new_email()))
    assert (await ingest.post(f"/v1/webhooks/mailgun/{source_id}", json=captured)).status_code == 200
    replayed = await ingest.post(f"/v1/webhooks/mailgun/{source_id}", json=captured)
    assert replayed.status_code == 401
    assert problem_field(replayed) == "signature.token"


async def test_a_stale_or_wrongly_signed_mailgun_post_is_refused_and_publishes_nothing(
    ingest: httpx.AsyncClient, tail: Tail
) -> None:
    source_id = await mailgun_source(ingest)
    email = new_email()
    stale = mailgun_post(mailgun_event("opened", email), timestamp=int(time.time()) - 3600)
    forged = mailgun_post(mailgun_event("opened", email), key="not-the-signing-key")
    unsigned = {"event-data": mailgun_event("opened", email)}
    fields = []
    for post in (stale, forged, unsigned):
        response = await ingest.post(f"/v1/webhooks/mailgun/{source_id}", json=post)
        assert response.status_code == 401, response.text
        fields.append(problem_field(response))
    assert fields == ["signature.timestamp", "signature.signature", "signature"]
    accepted = await ingest.post(f"/v1/webhooks/mailgun/{source_id}", json=mailgun_post(mailgun_event("opened", email)))
    await tail.wait_for(accepted.json()["ids"])
    assert [r.id for r in tail.records if r.key == email.encode()] == accepted.json()["ids"]


async def test_an_oversized_mailgun_post_is_refused_with_413(ingest: httpx.AsyncClient) -> None:
    source_id = await mailgun_source(ingest)
    post = mailgun_post(mailgun_event("opened", new_email(), padding="x" * (1024 * 1024)))
    response = await ingest.post(f"/v1/webhooks/mailgun/{source_id}", json=post)
    assert response.status_code == 413
    assert problem_field(response) == "body"


# Mailchimp


async def mailchimp_source(ingest: httpx.AsyncClient) -> tuple[str, str]:
    source = await create_source(ingest, "mailchimp")
    url = urlsplit(source["credentials"]["webhook_url"])
    return f"{url.path}?{url.query}", source["credentials"]["url_secret"]


def mailchimp_form(kind: str, email: str) -> bytes:
    fields = {
        "type": kind,
        "fired_at": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "data[id]": uuid.uuid4().hex[:10],
        "data[list_id]": "a6b5da1054",
        "data[email]": email,
        "data[merges][EMAIL]": email,
        "data[merges][FNAME]": "Ada",
        "data[merges][COMPANY]": "Analytical Engines",
    }
    return urlencode(fields).encode()


FORM = {"content-type": "application/x-www-form-urlencoded"}


async def test_mailchimp_url_check_answers_200_only_with_the_secret(ingest: httpx.AsyncClient) -> None:
    webhook_url, _ = await mailchimp_source(ingest)
    assert (await ingest.get(webhook_url)).status_code == 200
    wrong = await ingest.get(webhook_url.split("?")[0], params={"secret": "mc_wrong"})
    assert wrong.status_code == 401
    assert problem_field(wrong) == "secret"


async def test_mailchimp_subscribe_identifies_the_person_in_kafka(ingest: httpx.AsyncClient, tail: Tail) -> None:
    webhook_url, _ = await mailchimp_source(ingest)
    email = new_email()
    body = mailchimp_form("subscribe", email)
    first = await ingest.post(webhook_url, content=body, headers=FORM)
    again = await ingest.post(webhook_url, content=body, headers=FORM)
    assert first.status_code == again.status_code == 200, first.text
    assert first.json()["ids"] == again.json()["ids"]
    [event_id] = first.json()["ids"]
    record = (await tail.wait_for([event_id]))[event_id]
    assert (record.type, record.key) == ("leadflow.touch.identify.v1", email.encode())
    attributes = json.loads(record.value)["attributes"]
    assert attributes == {"mailchimp_list_id": "a6b5da1054", "first_name": "Ada", "company": "Analytical Engines"}


async def test_a_mailchimp_post_with_a_wrong_secret_is_refused_and_publishes_nothing(
    ingest: httpx.AsyncClient, tail: Tail
) -> None:
    webhook_url, _ = await mailchimp_source(ingest)
    email = new_email()
    path = webhook_url.split("?")[0]
    for params in ({"secret": "mc_wrong"}, {}):
        response = await ingest.post(path, params=params, content=mailchimp_form("unsubscribe", email), headers=FORM)
        assert response.status_code == 401
        assert problem_field(response) == "secret"
    accepted = await ingest.post(webhook_url, content=mailchimp_form("subscribe", email), headers=FORM)
    await tail.wait_for(accepted.json()["ids"])
    assert [r.id for r in tail.records if r.key == email.encode()] == accepted.json()["ids"]
