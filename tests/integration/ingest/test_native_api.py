import json
import uuid

import httpx

from tests.conftest import Tail, create_source


def touch(email: str, type_: str = "leadflow.touch.email_open.v1", **fields: object) -> dict[str, object]:
    return {"type": type_, "identity": {"email": email}, **fields}


def new_email() -> str:
    return f"p{uuid.uuid4().hex[:10]}@example.com"


async def test_single_event_is_in_kafka_when_acknowledged(ingest: httpx.AsyncClient, tail: Tail) -> None:
    source = await create_source(ingest, "api")
    email = new_email().upper()
    response = await ingest.post(
        "/v1/events",
        json=touch(email, campaign={"utm_source": "newsletter"}),
        headers={"authorization": f"Bearer {source['credentials']['write_key']}"},
    )
    assert response.status_code == 202, response.text
    [event_id] = response.json()["ids"]
    record = (await tail.wait_for([event_id]))[event_id]
    assert record.topic == "leadflow.touches"
    assert record.key == email.lower().encode()
    assert record.headers["ce_type"] == "leadflow.touch.email_open.v1"
    assert record.headers["ce_source"] == f"/leadflow/ingest/api/{source['id']}"
    assert json.loads(record.value)["campaign"] == {"utm_source": "newsletter"}


async def test_batch_with_one_bad_event_publishes_nothing_and_names_the_field(
    ingest: httpx.AsyncClient, tail: Tail
) -> None:
    source = await create_source(ingest, "api")
    email = new_email()
    batch = [touch(email), touch("not-an-email", "leadflow.touch.web_visit.v1")]
    response = await ingest.post(
        "/v1/events", json=batch, headers={"authorization": f"Bearer {source['credentials']['write_key']}"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "[1].identity.email"
    good = await ingest.post(
        "/v1/events",
        json=[touch(email)],
        headers={"authorization": f"Bearer {source['credentials']['write_key']}"},
    )
    await tail.wait_for(good.json()["ids"])
    assert not [r for r in tail.records if r.key == email.encode() and r.id not in good.json()["ids"]]


async def test_reposted_event_gets_the_same_id(ingest: httpx.AsyncClient) -> None:
    source = await create_source(ingest, "api")
    headers = {"authorization": f"Bearer {source['credentials']['write_key']}"}
    body = touch(new_email(), occurred_at="2026-11-01T10:00:00Z")
    first = await ingest.post("/v1/events", json=body, headers=headers)
    second = await ingest.post("/v1/events", json=body, headers=headers)
    assert first.json()["ids"] == second.json()["ids"]


async def test_deal_update_goes_to_the_deals_topic_keyed_by_deal(ingest: httpx.AsyncClient, tail: Tail) -> None:
    source = await create_source(ingest, "api")
    deal = {
        "type": "leadflow.deal.closed_won.v1",
        "deal_id": f"d-{uuid.uuid4().hex[:8]}",
        "amount": "12500.00",
        "currency": "EUR",
        "contact_email": new_email(),
    }
    response = await ingest.post(
        "/v1/deals", json=deal, headers={"authorization": f"Bearer {source['credentials']['write_key']}"}
    )
    assert response.status_code == 202, response.text
    [event_id] = response.json()["ids"]
    record = (await tail.wait_for([event_id]))[event_id]
    assert (record.topic, record.key) == ("leadflow.deals", deal["deal_id"].encode())
    assert json.loads(record.value)["amount"] == "12500.00"


async def test_bad_requests_get_problem_json(ingest: httpx.AsyncClient) -> None:
    source = await create_source(ingest, "api")
    auth = {"authorization": f"Bearer {source['credentials']['write_key']}"}
    cases = [
        (await ingest.post("/v1/events", json=touch(new_email())), 401, "authorization"),
        (
            await ingest.post("/v1/events", json=touch(new_email()), headers={"authorization": "Bearer nope"}),
            401,
            "authorization",
        ),
        (
            await ingest.post("/v1/events", content=b"a=b", headers={**auth, "content-type": "text/plain"}),
            415,
            "Content-Type",
        ),
        (
            await ingest.post("/v1/events", json=[touch(new_email())] * 501, headers=auth),
            422,
            "body",
        ),
        (
            await ingest.post(
                "/v1/events",
                content=b"["
                + b",".join([json.dumps(touch(new_email(), attributes={"x": "y" * 4000})).encode()] * 300)
                + b"]",
                headers={**auth, "content-type": "application/json"},
            ),
            413,
            "body",
        ),
        (await ingest.post("/v1/events", json={"type": "leadflow.touch.nope.v1"}, headers=auth), 422, "type"),
        (
            await ingest.post("/v1/events", content=b'{"type": ', headers={**auth, "content-type": "application/json"}),
            400,
            "body",
        ),
        (
            await ingest.post("/v1/events", json=touch(new_email()), headers={**auth, "idempotency-key": "k" * 201}),
            422,
            "Idempotency-Key",
        ),
        (
            await ingest.post(
                "/v1/deals",
                json={"type": "leadflow.deal.created.v1", "deal_id": "x", "currency": "euro"},
                headers=auth,
            ),
            422,
            "currency",
        ),
    ]
    for response, status, field in cases:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == status
        assert any(field in e["field"] for e in problem["errors"]), problem


async def test_disabled_source_is_refused_and_counts_are_kept(ingest: httpx.AsyncClient) -> None:
    admin = {"authorization": "Bearer test-admin-token"}
    source = await create_source(ingest, "api")
    auth = {"authorization": f"Bearer {source['credentials']['write_key']}"}
    assert (await ingest.post("/v1/events", json=touch(new_email()), headers=auth)).status_code == 202
    assert (await ingest.post("/v1/events", json=touch("bad"), headers=auth)).status_code == 422
    disabled = await ingest.post(f"/v1/admin/sources/{source['id']}/disable", headers=admin)
    assert disabled.json()["enabled"] is False
    refused = await ingest.post("/v1/events", json=touch(new_email()), headers=auth)
    assert refused.status_code == 403
    detail = (await ingest.get(f"/v1/admin/sources/{source['id']}", headers=admin)).json()
    assert (detail["accepted"], detail["rejected"]) == (1, 2)


async def test_rate_limit_per_source_answers_429_with_retry_after(ingest: httpx.AsyncClient) -> None:
    source = await create_source(ingest, "api", rate_limit_per_s=2)
    auth = {"authorization": f"Bearer {source['credentials']['write_key']}"}
    statuses = [(await ingest.post("/v1/events", json=touch(new_email()), headers=auth)) for _ in range(8)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert int(limited[0].headers["retry-after"]) >= 1
    assert limited[0].json()["errors"][0]["field"] == "source"
    other = await create_source(ingest, "api", rate_limit_per_s=2)
    ok = await ingest.post(
        "/v1/events",
        json=touch(new_email()),
        headers={"authorization": f"Bearer {other['credentials']['write_key']}"},
    )
    assert ok.status_code == 202


async def test_admin_endpoints_need_the_admin_token(ingest: httpx.AsyncClient) -> None:
    response = await ingest.get("/v1/admin/sources", headers={"authorization": "Bearer wrong"})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_readiness_checks_database_and_broker(ingest: httpx.AsyncClient) -> None:
    ready = await ingest.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}
    metrics = await ingest.get("/metrics")
    assert "leadflow_http_requests_total" in metrics.text


async def test_browsers_may_call_from_any_origin(ingest: httpx.AsyncClient) -> None:
    preflight = await ingest.options(
        "/v1/events",
        headers={
            "origin": "https://www.example.com",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert preflight.headers["access-control-allow-headers"] == "authorization, content-type"
    simple = await ingest.get("/healthz", headers={"origin": "https://www.example.com"})
    assert simple.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-origin" not in (await ingest.get("/healthz")).headers


async def test_a_batch_keeps_each_leads_order_and_partition(ingest: httpx.AsyncClient, tail: Tail) -> None:
    source = await create_source(ingest, "api")
    emails = [new_email() for _ in range(4)]
    batch = [touch(emails[i % 4], attributes={"n": i}) for i in range(60)]
    response = await ingest.post(
        "/v1/events", json=batch, headers={"authorization": f"Bearer {source['credentials']['write_key']}"}
    )
    assert response.status_code == 202, response.text
    ids = set(response.json()["ids"])
    single = await ingest.post(
        "/v1/events", json=touch(emails[0]), headers={"authorization": f"Bearer {source['credentials']['write_key']}"}
    )
    [single_id] = single.json()["ids"]
    records = await tail.wait_for({*ids, single_id})
    batched = next(r for r in tail.records if r.id in ids and r.key == emails[0].encode())
    assert records[single_id].partition == batched.partition, "a batch must partition like single sends"
    for email in emails:
        mine = [r for r in tail.records if r.id in ids and r.key == email.encode()]
        assert [json.loads(r.value)["attributes"]["n"] for r in mine] == sorted(
            json.loads(r.value)["attributes"]["n"] for r in mine
        )
        assert len(mine) == 15
        assert len({r.partition for r in mine}) == 1
