import json
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import httpx

from shared.stack import free_port
from tests.conftest import ADMIN_TOKEN, Stack, Tail, create_source, ingest_client, ingest_settings
from tests.integration.ingest.test_tracking import BROWSER, no_raw_ip, touches_of

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


async def create_qr(client: httpx.AsyncClient, campaign_id: str = "fair-2026", **fields: Any) -> dict[str, Any]:
    source = await create_source(client, "web")
    body = {"source_id": source["id"], "campaign_id": campaign_id, "target_url": "https://acme.io/fair", **fields}
    response = await client.post("/v1/admin/qr-codes", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_a_scan_records_the_touch_and_redirects_to_the_target(ingest: httpx.AsyncClient, tail: Tail) -> None:
    ingest.cookies.clear()
    qr = await create_qr(ingest, name="Booth poster")
    assert qr["scan_url"] == f"http://ingest.test/q/{qr['code']}"
    assert (qr["png_url"], qr["svg_url"]) == (qr["scan_url"] + ".png", qr["scan_url"] + ".svg")
    response = await ingest.get(f"/q/{qr['code']}", headers={"user-agent": BROWSER})
    ingest.cookies.clear()
    assert response.status_code == 302
    assert response.headers["location"] == "https://acme.io/fair"
    anon = response.cookies["lf_aid"]
    [record] = await touches_of(tail, f"anon:{anon}", "leadflow.touch.qr_scan.v1")
    scan = json.loads(record.value)
    assert (scan["code"], scan["target_url"], scan["campaign"]) == (
        qr["code"],
        "https://acme.io/fair",
        {"campaign_id": "fair-2026"},
    )
    assert (scan["country"], scan["user_agent"], scan["channel"]) == ("GB", BROWSER, "qr")
    assert no_raw_ip(record)


async def test_a_scan_keeps_the_anonymous_id_of_the_tracking_cookie(ingest: httpx.AsyncClient, tail: Tail) -> None:
    qr = await create_qr(ingest)
    anon = str(uuid.uuid4())
    ingest.cookies.set("lf_aid", anon)
    try:
        response = await ingest.get(f"/q/{qr['code']}")
    finally:
        ingest.cookies.clear()
    assert response.status_code == 302
    assert "set-cookie" not in response.headers
    await touches_of(tail, f"anon:{anon}", "leadflow.touch.qr_scan.v1")


async def test_printable_codes_are_a_png_and_an_svg(ingest: httpx.AsyncClient) -> None:
    qr = await create_qr(ingest)
    png = await ingest.get(f"/q/{qr['code']}.png")
    assert (png.status_code, png.headers["content-type"]) == (200, "image/png")
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    svg = await ingest.get(f"/q/{qr['code']}.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert ET.fromstring(svg.content).tag == "{http://www.w3.org/2000/svg}svg"


async def test_qr_codes_are_listed_by_campaign(ingest: httpx.AsyncClient) -> None:
    campaign = f"c-{uuid.uuid4().hex[:8]}"
    made = [await create_qr(ingest, campaign), await create_qr(ingest, campaign), await create_qr(ingest)]
    response = await ingest.get("/v1/admin/qr-codes", params={"campaign_id": campaign}, headers=ADMIN)
    assert response.status_code == 200
    assert [q["code"] for q in response.json()] == [made[0]["code"], made[1]["code"]]
    assert (await ingest.get("/v1/admin/qr-codes")).status_code == 401


async def test_an_unknown_code_is_not_found(ingest: httpx.AsyncClient) -> None:
    for path in ("/q/nosuchcode", "/q/nosuchcode.png", "/q/nosuchcode.svg", "/q/NOT..valid"):
        response = await ingest.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"


async def test_creating_a_code_checks_the_source_and_the_target(ingest: httpx.AsyncClient) -> None:
    api = await create_source(ingest, "api")
    web = await create_source(ingest, "web")
    not_web = {"source_id": api["id"], "campaign_id": "c", "target_url": "https://acme.io/"}
    bad_target = {"source_id": web["id"], "campaign_id": "c", "target_url": "javascript:alert(1)"}
    assert (await ingest.post("/v1/admin/qr-codes", json=not_web, headers=ADMIN)).status_code == 404
    refused = await ingest.post("/v1/admin/qr-codes", json=bad_target, headers=ADMIN)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "target_url"


async def test_without_a_broker_a_scan_still_redirects(stack: Stack) -> None:
    settings = ingest_settings(stack, kafka_bootstrap=f"127.0.0.1:{free_port()}")
    async with ingest_client(settings) as client:
        qr = await create_qr(client)
        response = await client.get(f"/q/{qr['code']}")
        assert (response.status_code, response.headers["location"]) == (302, "https://acme.io/fair")
        detail = await client.get(f"/v1/admin/sources/{qr['source_id']}", headers=ADMIN)
        assert (detail.json()["accepted"], detail.json()["rejected"]) == (0, 1)
