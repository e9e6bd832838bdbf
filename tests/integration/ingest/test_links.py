import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.stack import free_port
from tests.conftest import ADMIN_TOKEN, Stack, Tail, create_source, ingest_client, ingest_settings
from tests.integration.ingest.test_tracking import BROWSER, no_raw_ip, touches_of

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
SCANNER = "Mozilla/5.0 (compatible; Proofpoint URL Defense)"


async def mint(client: httpx.AsyncClient, urls: list[str], **fields: Any) -> dict[str, Any]:
    source = await create_source(client, "web")
    body = {
        "source_id": source["id"],
        "campaign_id": "spring-launch",
        "email": f"r{uuid.uuid4().hex[:8]}@example.com",
        "message_id": f"msg-{uuid.uuid4().hex[:8]}",
        "urls": urls,
        "sent_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        **fields,
    }
    response = await client.post("/v1/admin/email-links", json=body, headers=ADMIN)
    assert response.status_code == 200, response.text
    minted: dict[str, Any] = response.json()
    return {**body, **minted}


def path_of(url: str) -> str:
    return httpx.URL(url).path


async def test_minting_links_needs_the_admin_token(ingest: httpx.AsyncClient) -> None:
    response = await ingest.post("/v1/admin/email-links", json={}, headers={"authorization": "Bearer wrong"})
    assert response.status_code == 401


async def test_minting_refuses_targets_that_are_not_web_urls(ingest: httpx.AsyncClient) -> None:
    source = await create_source(ingest, "web")
    body = {"source_id": source["id"], "campaign_id": "c", "email": "a@example.com", "message_id": "m"}
    response = await ingest.post(
        "/v1/admin/email-links", json={**body, "urls": ["https://acme.io/", "javascript:alert(1)"]}, headers=ADMIN
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "urls[1]"


async def test_a_click_is_recorded_then_redirects_to_the_signed_target(ingest: httpx.AsyncClient, tail: Tail) -> None:
    minted = await mint(ingest, ["https://acme.io/pricing?plan=pro"])
    [link] = minted["links"]
    assert link["click_url"].startswith("http://ingest.test/c/")
    response = await ingest.get(path_of(link["click_url"]), headers={"user-agent": BROWSER})
    assert response.status_code == 302
    assert response.headers["location"] == "https://acme.io/pricing?plan=pro"
    [record] = await touches_of(tail, minted["email"], "leadflow.touch.email_click.v1")
    click = json.loads(record.value)
    assert (click["link_url"], click["message_id"], click["channel"]) == (link["url"], minted["message_id"], "email")
    assert (click["campaign"], click["country"], click["machine_generated"]) == (
        {"campaign_id": "spring-launch"},
        "GB",
        False,
    )
    assert no_raw_ip(record)


async def test_a_tampered_token_is_not_found_and_never_redirects(ingest: httpx.AsyncClient) -> None:
    minted = await mint(ingest, ["https://acme.io/"])
    token = path_of(minted["links"][0]["click_url"]).removeprefix("/c/")
    body, mac = token.split(".")
    other = await mint(ingest, ["https://evil.example/"])
    evil_body = path_of(other["links"][0]["click_url"]).removeprefix("/c/").split(".")[0]
    open_token = path_of(minted["open_url"]).removeprefix("/o/").removesuffix(".gif")
    for bad in (f"{evil_body}.{mac}", f"{body}.{mac[:-1]}{'B' if mac.endswith('A') else 'A'}", body, open_token):
        response = await ingest.get(f"/c/{bad}")
        assert response.status_code == 404, bad
        assert response.headers["content-type"] == "application/problem+json"
        assert "location" not in response.headers
    assert (await ingest.get(f"/o/{body}.{mac[::-1]}.gif")).status_code == 404


async def test_a_scanner_click_is_flagged_as_machine_and_still_redirected(
    ingest: httpx.AsyncClient, tail: Tail
) -> None:
    minted = await mint(ingest, ["https://acme.io/a"])
    response = await ingest.get(path_of(minted["links"][0]["click_url"]), headers={"user-agent": SCANNER})
    assert response.status_code == 302
    [record] = await touches_of(tail, minted["email"], "leadflow.touch.email_click.v1")
    click = json.loads(record.value)
    assert (click["machine_generated"], click["machine_reason"]) == (True, "scanner_agent")


async def test_a_click_from_a_tracked_browser_carries_its_anonymous_id(ingest: httpx.AsyncClient, tail: Tail) -> None:
    minted = await mint(ingest, ["https://acme.io/a"])
    anon = str(uuid.uuid4())
    ingest.cookies.set("lf_aid", anon)
    try:
        await ingest.get(path_of(minted["links"][0]["click_url"]), headers={"user-agent": BROWSER})
    finally:
        ingest.cookies.clear()
    [record] = await touches_of(tail, minted["email"], "leadflow.touch.email_click.v1")
    assert json.loads(record.value)["identity"] == {"email": minted["email"], "anonymous_id": anon}


async def test_an_open_answers_a_gif_and_flags_privacy_proxy_opens(ingest: httpx.AsyncClient, tail: Tail) -> None:
    minted = await mint(ingest, [])
    for agent in ("Mozilla/5.0", BROWSER):
        response = await ingest.get(path_of(minted["open_url"]), headers={"user-agent": agent})
        assert (response.status_code, response.headers["content-type"]) == (200, "image/gif")
        assert response.content.startswith(b"GIF89a")
    proxy, person = await touches_of(tail, minted["email"], "leadflow.touch.email_open.v1", n=2)
    proxied, opened = json.loads(proxy.value), json.loads(person.value)
    assert (proxied["machine_generated"], proxied["machine_reason"]) == (True, "privacy_proxy")
    assert (opened["machine_generated"], opened["message_id"], opened["user_agent"]) == (
        False,
        minted["message_id"],
        BROWSER,
    )


async def test_without_a_broker_a_click_still_redirects_and_an_open_still_answers_a_gif(stack: Stack) -> None:
    settings = ingest_settings(stack, kafka_bootstrap=f"127.0.0.1:{free_port()}")
    async with ingest_client(settings) as client:
        minted = await mint(client, ["https://acme.io/x"])
        click = await client.get(path_of(minted["links"][0]["click_url"]))
        assert (click.status_code, click.headers["location"]) == (302, "https://acme.io/x")
        opened = await client.get(path_of(minted["open_url"]))
        assert (opened.status_code, opened.content[:6]) == (200, b"GIF89a")
        detail = await client.get(f"/v1/admin/sources/{minted['source_id']}", headers=ADMIN)
        assert (detail.json()["accepted"], detail.json()["rejected"]) == (0, 2)
