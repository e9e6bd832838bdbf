"""The Segment-compatible API through HTTP, as the SDKs call it: server libraries with Basic auth and JSON,
analytics.js with `writeKey` in a text/plain body. Events are read back from the broker."""

import asyncio
import gzip
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN, Tail, create_source

CLIENT_IP = "81.2.69.160"  # the test client's address (conftest); GeoIP says GB
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0 Safari/537.36"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4()}"


async def segment_source(ingest: httpx.AsyncClient) -> tuple[dict[str, Any], str]:
    source = await create_source(ingest, "segment")
    return source, source["credentials"]["write_key"]


def python_track(event: str = "Trial Started", **fields: Any) -> dict[str, Any]:
    """A message as analytics-python queues it."""
    return {
        "type": "track",
        "event": event,
        "userId": new_id("user"),
        "properties": {"plan": "pro"},
        "context": {"library": {"name": "analytics-python", "version": "2.3.2"}},
        "timestamp": "2026-03-02T10:00:00+00:00",
        "messageId": new_id("msg"),
        "integrations": {},
        **fields,
    }


async def test_server_sdk_batch_with_basic_auth_lands_in_kafka_under_its_message_ids(
    ingest: httpx.AsyncClient, tail: Tail
) -> None:
    source, key = await segment_source(ingest)
    email = f"p{uuid.uuid4().hex[:8]}@example.com"
    opened = python_track(
        "Email Opened",
        properties={"email_id": "18vzF7u3z", "campaign_id": "123"},
        context={"traits": {"email": email}, "ip": "67.207.109.102", "userAgent": "Mozilla/5.0"},
    )
    batch: dict[str, Any] = {"batch": [python_track(), opened], "sentAt": "2026-03-02T10:00:01+00:00"}
    response = await ingest.post("/v1/batch", json=batch, auth=(key, ""))
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    ids = [m["messageId"] for m in batch["batch"]]
    records = await tail.wait_for(ids)
    custom, open_ = records[ids[0]], records[ids[1]]
    assert (custom.topic, custom.type) == ("leadflow.touches", "leadflow.touch.custom.v1")
    assert custom.headers["ce_source"] == f"/leadflow/ingest/segment/{source['id']}"
    assert (open_.type, open_.key) == ("leadflow.touch.email_open.v1", email.encode())
    value = json.loads(open_.value)
    assert (value["message_id"], value["country"], value["machine_generated"]) == ("18vzF7u3z", "US", True)


async def test_analytics_js_page_with_the_write_key_in_a_text_plain_body_is_accepted(
    ingest: httpx.AsyncClient, tail: Tail
) -> None:
    _, key = await segment_source(ingest)
    url = "https://acme.example/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=spring"
    anonymous_id = str(uuid.uuid4())
    call: dict[str, Any] = {
        "type": "page",
        "properties": {"url": url, "title": "Pricing", "referrer": "https://www.google.com/"},
        "context": {"page": {"url": url}, "userAgent": BROWSER, "library": {"name": "analytics.js"}},
        "anonymousId": anonymous_id,
        "messageId": new_id("ajs-next"),
        "timestamp": "2026-03-02T10:00:00.123Z",
        "sentAt": "2026-03-02T10:00:00.130Z",
        "writeKey": key,
    }
    response = await ingest.post("/v1/p", content=json.dumps(call), headers={"content-type": "text/plain"})
    assert response.status_code == 200, response.text
    record = (await tail.wait_for([call["messageId"]]))[call["messageId"]]
    assert (record.type, record.key) == ("leadflow.touch.web_visit.v1", f"anon:{anonymous_id}".encode())
    value = json.loads(record.value)
    assert value["campaign"] == {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "spring"}
    assert value["country"] == "GB"
    assert CLIENT_IP.encode() not in record.value


async def test_the_raw_ip_of_the_context_is_turned_into_a_country_and_dropped(
    ingest: httpx.AsyncClient, tail: Tail
) -> None:
    _, key = await segment_source(ingest)
    call: dict[str, Any] = {
        "userId": new_id("user"),
        "traits": {"name": "Ada", "plan": "enterprise"},
        "context": {"ip": CLIENT_IP},
        "messageId": new_id("msg"),
    }
    response = await ingest.post("/v1/identify", json=call, auth=(key, ""))
    assert response.status_code == 200, response.text
    record = (await tail.wait_for([call["messageId"]]))[call["messageId"]]
    value = json.loads(record.value)
    assert (value["country"], value["attributes"]["plan"]) == ("GB", "enterprise")
    assert CLIENT_IP.encode() not in record.value


async def eventually(check: Callable[[], bool]) -> None:
    """Poll the tail until check holds; records arrive a moment after the 200."""
    for _ in range(200):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the expected records never arrived")


async def test_a_retried_call_with_the_same_message_id_keeps_its_event_id(
    ingest: httpx.AsyncClient, tail: Tail
) -> None:
    _, key = await segment_source(ingest)
    call = python_track()
    for _ in range(2):
        assert (await ingest.post("/v1/track", json=call, auth=(key, ""))).status_code == 200
    await eventually(lambda: tail.count(call["messageId"]) == 2)


async def test_a_retry_without_message_id_gets_the_id_it_had_the_first_time(
    ingest: httpx.AsyncClient, tail: Tail
) -> None:
    _, key = await segment_source(ingest)
    call = {k: v for k, v in python_track().items() if k != "messageId"}
    for sent_at in ("2026-03-02T10:00:01Z", "2026-03-02T10:09:00Z"):  # the SDK stamps each attempt anew
        response = await ingest.post("/v1/track", json={**call, "sentAt": sent_at}, auth=(key, ""))
        assert response.status_code == 200
    user_key = f"user:{call['userId']}".encode()
    await eventually(lambda: len([r for r in tail.records if r.key == user_key]) == 2)
    assert len({r.id for r in tail.records if r.key == user_key}) == 1


async def test_a_batch_with_one_bad_message_publishes_nothing_and_names_the_field(
    ingest: httpx.AsyncClient, tail: Tail
) -> None:
    source, key = await segment_source(ingest)
    good, nameless = python_track(), python_track()
    del nameless["userId"]
    response = await ingest.post("/v1/batch", json={"batch": [good, good, nameless]}, auth=(key, ""))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["batch[2].userId"]
    later = python_track()
    assert (await ingest.post("/v1/track", json=later, auth=(key, ""))).status_code == 200
    await tail.wait_for([later["messageId"]])
    assert tail.count(good["messageId"]) == 0
    detail = await ingest.get(f"/v1/admin/sources/{source['id']}", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert (detail.json()["accepted"], detail.json()["rejected"]) == (1, 1)


async def test_calls_over_32_kb_and_batches_over_500_kb_are_too_large(ingest: httpx.AsyncClient) -> None:
    _, key = await segment_source(ingest)
    big_call = python_track(properties={"notes": "x" * 33_000})
    big_message = {"batch": [python_track(), big_call]}
    big_batch = {"batch": [python_track(properties={"notes": "x" * 30_000}) for _ in range(18)]}
    cases = [
        (await ingest.post("/v1/track", json=big_call, auth=(key, "")), "body"),
        (await ingest.post("/v1/batch", json=big_message, auth=(key, "")), "batch[1]"),
        (await ingest.post("/v1/batch", json=big_batch, auth=(key, "")), "body"),
    ]
    for response, field in cases:
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["field"] == field


async def test_a_gzipped_batch_is_accepted_and_a_gzip_bomb_is_too_large(ingest: httpx.AsyncClient, tail: Tail) -> None:
    _, key = await segment_source(ingest)
    batch: dict[str, Any] = {"batch": [python_track()], "sentAt": "2026-03-02T10:00:01Z"}
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    zipped = gzip.compress(json.dumps(batch).encode())
    response = await ingest.post("/v1/import", content=zipped, headers=headers, auth=(key, ""))
    assert response.status_code == 200, response.text
    await tail.wait_for([batch["batch"][0]["messageId"]])
    bomb = gzip.compress(json.dumps({"batch": [{"pad": "0" * 600_000}]}).encode())
    assert (await ingest.post("/v1/b", content=bomb, headers=headers, auth=(key, ""))).status_code == 413


async def test_missing_or_unknown_write_keys_and_other_media_types_are_refused(ingest: httpx.AsyncClient) -> None:
    _, key = await segment_source(ingest)
    call = python_track()
    cases = [
        (await ingest.post("/v1/track", json=call), 401, "authorization"),
        (await ingest.post("/v1/t", json={**call, "writeKey": "wk_nope"}), 401, "authorization"),
        (await ingest.post("/v1/track", json=call, auth=("wk_nope", "")), 401, "authorization"),
        (
            await ingest.post("/v1/track", content=b"a=b", auth=(key, ""), headers={"content-type": "text/html"}),
            415,
            "Content-Type",
        ),
        (await ingest.post("/v1/track", json={**call, "event": ""}, auth=(key, "")), 422, "event"),
    ]
    for response, status, field in cases:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["field"] == field


async def test_every_segment_path_is_served_and_documented(ingest: httpx.AsyncClient, tail: Tail) -> None:
    _, key = await segment_source(ingest)
    calls: dict[str, dict[str, Any]] = {
        "/v1/i": {"traits": {"email": "ada@example.com"}},
        "/v1/t": {"event": "Form Submitted", "properties": {"form_id": "demo"}},
        "/v1/s": {"name": "Pricing"},
        "/v1/g": {"groupId": "acme"},
        "/v1/a": {"previousId": "anon-1"},
    }
    ids = []
    for path, fields in calls.items():
        call = {"userId": new_id("user"), "messageId": new_id("msg"), "writeKey": key, **fields}
        response = await ingest.post(path, content=json.dumps(call), headers={"content-type": "text/plain"})
        assert response.status_code == 200, (path, response.text)
        ids.append(call["messageId"])
    records = await tail.wait_for(ids)
    assert [records[i].type.split(".")[2] for i in ids] == [
        "identify",
        "form_fill",
        "web_visit",
        "identify",
        "identify",
    ]
    paths = (await ingest.get("/openapi.json")).json()["paths"]
    assert {"/v1/identify", "/v1/track", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias", "/v1/batch"} <= set(paths)
