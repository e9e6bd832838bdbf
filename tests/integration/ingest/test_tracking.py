import asyncio
import json
import uuid
from typing import Any

import httpx

from shared.stack import free_port
from tests.conftest import ADMIN_TOKEN, Record, Stack, Tail, create_source, ingest_client, ingest_settings

CLIENT_IP = "81.2.69.160"  # the test client's address, in GB
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def new_anonymous_id() -> str:
    return str(uuid.uuid4())


async def touches_of(tail: Tail, key: str, type_: str, n: int = 1, timeout_s: float = 10) -> list[Record]:
    """The first n records of one type under one Kafka key (for answers that carry no event id)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        found = [r for r in tail.records if r.key == key.encode() and r.type == type_]
        if len(found) >= n:
            return found[:n]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{len(found)} of {n} {type_} records under {key} reached the broker")
        await asyncio.sleep(0.05)


def no_raw_ip(record: Record) -> bool:
    return CLIENT_IP not in record.value.decode() and all(CLIENT_IP not in v for v in record.headers.values())


async def collect(client: httpx.AsyncClient, call: dict[str, Any], content_type: str = "text/plain") -> httpx.Response:
    headers = {"content-type": content_type, "user-agent": BROWSER}
    return await client.post("/v1/collect", content=json.dumps(call).encode(), headers=headers)


async def test_the_script_is_served_as_javascript(ingest: httpx.AsyncClient) -> None:
    response = await ingest.get("/t.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert len(response.content) < 3 * 1024
    assert b"/v1/collect" in response.content


async def test_a_page_view_and_its_time_on_page_reach_kafka_as_web_visits(
    ingest: httpx.AsyncClient, tail: Tail
) -> None:
    key = (await create_source(ingest, "web"))["credentials"]["write_key"]
    anon = new_anonymous_id()
    page = {
        "writeKey": key,
        "anonymousId": anon,
        "messageId": "m-1",
        "pageViewId": "pv-1",
        "url": "https://acme.io/pricing",
        "title": "Pricing",
        "referrer": "https://google.com/",
        "visit": 2,
        "utm": {"utm_source": "newsletter", "utm_campaign": "spring"},
    }
    viewed = await collect(ingest, {**page, "type": "page"})
    left = await collect(ingest, {**page, "type": "leave", "messageId": "m-2", "durationS": 42.5}, "application/json")
    assert (viewed.status_code, left.status_code) == (202, 202), left.text
    ids = viewed.json()["ids"] + left.json()["ids"]
    records = await tail.wait_for(ids)
    first, second = (records[i] for i in ids)
    assert first.type == second.type == "leadflow.touch.web_visit.v1"
    assert first.key == second.key == f"anon:{anon}".encode()
    view, leave = json.loads(first.value), json.loads(second.value)
    assert view["campaign"] == {"utm_source": "newsletter", "utm_campaign": "spring"}
    assert (view["url"], view["title"], view["referrer"]) == (page["url"], "Pricing", "https://google.com/")
    assert (view["return_visit"], view["visit_number"], view["country"], view["user_agent"]) == (True, 2, "GB", BROWSER)
    assert "duration_s" not in view
    assert (leave["duration_s"], leave["page_view_id"]) == (42.5, view["page_view_id"])
    assert no_raw_ip(first)
    assert no_raw_ip(second)


async def test_a_call_sent_again_keeps_its_event_id(ingest: httpx.AsyncClient) -> None:
    key = (await create_source(ingest, "web"))["credentials"]["write_key"]
    call = {"writeKey": key, "anonymousId": new_anonymous_id(), "messageId": "m-1", "url": "https://acme.io/"}
    first, again = await collect(ingest, call), await collect(ingest, call)
    assert first.json()["ids"] == again.json()["ids"]


async def test_identify_links_the_visitor_to_the_email_and_track_keeps_its_name(
    ingest: httpx.AsyncClient, tail: Tail
) -> None:
    key = (await create_source(ingest, "web"))["credentials"]["write_key"]
    anon, email = new_anonymous_id(), f"v{uuid.uuid4().hex[:8]}@example.com"
    who = {"writeKey": key, "anonymousId": anon, "url": "https://acme.io/signup"}
    identified = await collect(ingest, {**who, "type": "identify", "email": email, "traits": {"plan": "pro"}})
    tracked = await collect(ingest, {**who, "type": "track", "event": "Demo Requested", "properties": {"seats": 40}})
    ids = identified.json()["ids"] + tracked.json()["ids"]
    records = await tail.wait_for(ids)
    identify, track = (records[i] for i in ids)
    assert (identify.type, identify.key) == ("leadflow.touch.identify.v1", email.encode())
    assert json.loads(identify.value)["identity"] == {"email": email, "anonymous_id": anon}
    assert json.loads(identify.value)["attributes"] == {"plan": "pro"}
    assert (track.type, track.key) == ("leadflow.touch.custom.v1", f"anon:{anon}".encode())
    assert json.loads(track.value)["event"] == "Demo Requested"


async def test_bad_calls_get_problem_json_naming_the_field(ingest: httpx.AsyncClient) -> None:
    web_key = (await create_source(ingest, "web"))["credentials"]["write_key"]
    api_key = (await create_source(ingest, "api"))["credentials"]["write_key"]
    anon = new_anonymous_id()
    cases = [
        (await collect(ingest, {"writeKey": "wk_nope", "anonymousId": anon}), 401, "authorization"),
        (await collect(ingest, {"writeKey": api_key, "anonymousId": anon}), 403, "writeKey"),
        (await collect(ingest, {"writeKey": web_key, "anonymousId": anon, "type": "identify"}), 422, "email"),
        (await collect(ingest, {"writeKey": web_key, "anonymousId": anon}, "application/xml"), 415, "Content-Type"),
        (await ingest.post("/v1/collect", content=b"{", headers={"content-type": "text/plain"}), 422, "body"),
    ]
    for response, status, field in cases:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["field"] == field


async def test_the_pixel_records_a_page_view_and_answers_a_gif(ingest: httpx.AsyncClient, tail: Tail) -> None:
    key = (await create_source(ingest, "web"))["credentials"]["write_key"]
    anon = new_anonymous_id()
    params = {"k": key, "a": anon, "u": "https://acme.io/?utm_source=print", "t": "Home", "v": "1"}
    response = await ingest.get("/p.gif", params=params, headers={"user-agent": BROWSER})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content.startswith(b"GIF89a")
    assert "no-store" in response.headers["cache-control"]
    [record] = await touches_of(tail, f"anon:{anon}", "leadflow.touch.web_visit.v1")
    visit = json.loads(record.value)
    assert (visit["url"], visit["title"], visit["campaign"], visit["country"]) == (
        params["u"],
        "Home",
        {"utm_source": "print"},
        "GB",
    )
    assert no_raw_ip(record)


async def test_the_pixel_without_an_id_sets_a_fresh_anonymous_cookie(ingest: httpx.AsyncClient, tail: Tail) -> None:
    ingest.cookies.clear()
    key = (await create_source(ingest, "web"))["credentials"]["write_key"]
    response = await ingest.get("/p.gif", params={"k": key}, headers={"referer": "https://acme.io/about"})
    anon = response.cookies["lf_aid"]
    ingest.cookies.clear()
    [record] = await touches_of(tail, f"anon:{anon}", "leadflow.touch.web_visit.v1")
    assert json.loads(record.value)["url"] == "https://acme.io/about"


async def test_the_pixel_answers_a_gif_for_refused_calls_and_counts_them(ingest: httpx.AsyncClient) -> None:
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    source = await create_source(ingest, "web")
    await ingest.post(f"/v1/admin/sources/{source['id']}/disable", headers=admin)
    for params in ({"k": "wk_unknown"}, {"k": source["credentials"]["write_key"], "a": new_anonymous_id()}):
        response = await ingest.get("/p.gif", params=params)
        assert (response.status_code, response.headers["content-type"]) == (200, "image/gif")
    detail = (await ingest.get(f"/v1/admin/sources/{source['id']}", headers=admin)).json()
    assert (detail["accepted"], detail["rejected"]) == (0, 1)


async def test_without_a_broker_collect_answers_503_but_the_pixel_still_answers_a_gif(stack: Stack) -> None:
    settings = ingest_settings(stack, kafka_bootstrap=f"127.0.0.1:{free_port()}")
    async with ingest_client(settings) as client:
        source = await create_source(client, "web")
        key = source["credentials"]["write_key"]
        refused = await collect(client, {"writeKey": key, "anonymousId": new_anonymous_id(), "url": "https://a.io/"})
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) > 0
        pixel = await client.get("/p.gif", params={"k": key, "a": new_anonymous_id()})
        assert (pixel.status_code, pixel.content[:6]) == (200, b"GIF89a")
        detail = await client.get(
            f"/v1/admin/sources/{source['id']}", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert (detail.json()["accepted"], detail.json()["rejected"]) == (0, 1)
