"""A NUL character anywhere in a request is a 422 naming where, in every service, and nothing is stored."""

import gzip
import json

import httpx

from tests.conftest import ADMIN_TOKEN, Stack, create_source, reporting_client, reporting_settings
from tests.e2e.counting import unique

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


def problem_field(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    field: str = response.json()["errors"][0]["field"]
    return field


async def test_ingest_refuses_a_nul_in_a_body_plain_or_gzipped_and_in_a_query(ingest: httpx.AsyncClient) -> None:
    api = await create_source(ingest, "api")
    key = api["credentials"]["write_key"]
    touch = {"type": "leadflow.touch.custom.v1", "identity": {"anonymous_id": "a1"}, "event": "x"}
    bad = [touch, {**touch, "properties": {"note": "a\u0000b"}}]
    response = await ingest.post("/v1/events", json=bad, headers={"authorization": f"Bearer {key}"})
    assert problem_field(response) == "[1].properties.note"

    segment = await create_source(ingest, "segment")
    call = {"type": "track", "event": "Signed Up", "anonymousId": "a2", "properties": {"plan": "\u0000"}}
    zipped = gzip.compress(json.dumps({"batch": [call]}).encode())
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    response = await ingest.post(
        "/v1/batch", content=zipped, headers=headers, auth=(segment["credentials"]["write_key"], "")
    )
    assert problem_field(response) == "batch[0].properties.plan"

    response = await ingest.get("/v1/admin/sources", params={"kind": "api\u0000"}, headers=ADMIN)
    assert problem_field(response) == "kind"


async def test_reporting_refuses_a_nul_or_a_bare_carriage_return_in_a_cost_csv(stack: Stack) -> None:
    async with reporting_client(reporting_settings(stack, consumer_group=unique("reporting"))) as reporting:
        header = "campaign_id,period_start,period_end,amount,currency\n"
        csv_headers = {**ADMIN, "content-type": "text/csv"}
        nul = await reporting.post(
            "/v1/costs/import", content=header + "spr\x00ing,2026-01-01,2026-01-31,5,EUR\n", headers=csv_headers
        )
        assert problem_field(nul) == "body"
        bare_cr = await reporting.post(
            "/v1/costs/import", content=header + "spring\r0,2026-01-01,2026-01-31,5,EUR\n", headers=csv_headers
        )
        assert problem_field(bare_cr) == "body"
        assert (await reporting.get("/v1/campaigns/x%00y", headers=ADMIN)).status_code == 422
