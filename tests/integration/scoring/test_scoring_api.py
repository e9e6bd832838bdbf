"""The scoring API against the real stack: a lead explained now and as of earlier, the filtered list, the model."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.scoring.identity import lead_id_for
from services.scoring.model import DEFAULT_MODEL
from shared.events import EmailOpened, FormFilled, Identity, WebVisited
from tests.conftest import ADMIN_TOKEN, Tail
from tests.e2e.counting import unique, wait_until
from tests.integration.scoring.conftest import (
    SCORED,
    Send,
    email,
    has_event,
    lead_events,
    wait_for_lead,
    wait_for_progress,
)

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
DAYS_AGO = datetime.now(UTC) - timedelta(days=30)


async def test_a_lead_reads_with_its_breakdown_decayed_to_now_and_as_of_a_past_time(
    scoring: httpx.AsyncClient, send: Send
) -> None:
    address = email()
    at = DAYS_AGO.replace(microsecond=0)
    await send(WebVisited(identity=Identity(email=address), url="https://acme.test/pricing", occurred_at=at))
    lead_id = lead_id_for(address)

    now = await wait_for_lead(scoring, lead_id)
    then = (await scoring.get(f"/v1/leads/{lead_id}", params={"as_of": (at + timedelta(hours=1)).isoformat()})).json()
    before = (await scoring.get(f"/v1/leads/{lead_id}", params={"as_of": (at - timedelta(days=1)).isoformat()})).json()

    [pricing] = now["score"]["engagement_breakdown"]
    assert (pricing["rule_id"], pricing["points"]) == ("pricing_page", 10)
    assert 4.9 < pricing["points_now"] < 5.1  # one 30-day half-life later
    assert then["score"]["engagement"] > 9.9
    assert (before["score"]["engagement"], before["timeline"], before["stage_history"]) == (0, [], [])
    assert now["identities"][0]["identifier"] == address
    assert now["profile"]["email"]["value"] == address


async def test_an_account_rolls_up_its_contacts_and_names_the_missing_buying_roles(
    scoring: httpx.AsyncClient, send: Send
) -> None:
    domain = f"{unique('co')}.test"
    people = {f"cto@{domain}": "CTO", f"dev@{domain}": "Software Engineer"}
    for address, title in people.items():
        await send(FormFilled(identity=Identity(email=address), form_id="demo", fields={"job_title": title}))
    for address in people:
        await wait_for_lead(scoring, lead_id_for(address), lambda lead: lead["persona"] is not None)

    account = (await scoring.get(f"/v1/accounts/domain:{domain}")).json()

    assert account["buying_group"] == {"engaged": ["executive", "engineer"], "missing": ["buyer"], "complete": False}
    assert account["engagement"] == pytest.approx(80, abs=0.1)  # two demo requests
    assert {c["email"] for c in account["contacts"]} == set(people)
    assert (await scoring.get("/v1/accounts/domain:nobody.test")).status_code == 404


async def test_an_erased_lead_is_gone_and_a_tombstone_event_tells_the_others(
    scoring: httpx.AsyncClient, send: Send, tail: Tail
) -> None:
    address = email()
    await send(FormFilled(identity=Identity(email=address), form_id="demo", fields={"first_name": "Ada"}))
    lead_id = lead_id_for(address)
    await wait_for_lead(scoring, lead_id)

    assert (await scoring.delete(f"/v1/leads/{lead_id}")).status_code == 401
    assert (await scoring.delete(f"/v1/leads/{lead_id}", headers=ADMIN)).status_code == 204

    assert (await scoring.get(f"/v1/leads/{lead_id}")).status_code == 404
    assert (await scoring.delete(f"/v1/leads/{lead_id}", headers=ADMIN)).status_code == 404
    await wait_until(lambda: has_event(tail, lead_id, "leadflow.lead.erased.v1", 1), what="the erased event")
    await wait_until(lambda: _tombstone(tail, lead_id), what="the tombstone")
    last_two = [r for r in tail.records if r.topic == "leadflow.leads" and r.key == lead_id.encode()][-2:]
    assert [r.headers.get("ce_type") for r in last_two] == ["leadflow.lead.erased.v1", None]
    assert last_two[1].tombstone


async def _tombstone(tail: Tail, lead_id: str) -> bool:
    return any(r.topic == "leadflow.leads" and r.key == lead_id.encode() and r.tombstone for r in tail.records)


async def test_an_unknown_lead_is_a_404_problem(scoring: httpx.AsyncClient) -> None:
    response = await scoring.get("/v1/leads/no-such-lead")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_leads_are_listed_by_stage_and_score_a_page_at_a_time(scoring: httpx.AsyncClient, send: Send) -> None:
    addresses = [email() for _ in range(3)]
    fields = {"job_title": "Procurement Manager", "industry": "Software", "employees": 120}
    for address in addresses:
        await send(FormFilled(identity=Identity(email=address), form_id="demo", fields=fields))
    ids = {lead_id_for(a) for a in addresses}
    for lead_id in ids:
        await wait_for_lead(scoring, lead_id, lambda lead: lead["stage"] == "mql")

    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"stage": "mql", "min_score": 40, "persona": "buyer", "limit": 2}
    while True:
        page = (await scoring.get("/v1/leads", params=params)).json()
        seen += page["leads"]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]

    assert ids <= {lead["id"] for lead in seen}
    assert all(lead["stage"] == "mql" and lead["persona"] == "buyer" for lead in seen)
    assert len(seen) == len({lead["id"] for lead in seen})


async def test_the_score_range_filter_compares_the_score_decayed_to_now(scoring: httpx.AsyncClient, send: Send) -> None:
    address = email()
    sixty_days_ago = datetime.now(UTC) - timedelta(days=60)  # two half-lives: the demo's 40 points are worth 10
    fields = {"job_title": "Procurement Manager", "industry": "Software", "employees": 120}
    await send(FormFilled(identity=Identity(email=address), form_id="demo", fields=fields, occurred_at=sixty_days_ago))
    lead = await wait_for_lead(scoring, lead_id_for(address), lambda lead: lead["stage"] == "mql")
    fit, account = lead["fit"], lead["account_key"]

    above = (await scoring.get("/v1/leads", params={"account": account, "min_score": fit + 20})).json()
    below = (await scoring.get("/v1/leads", params={"account": account, "max_score": fit + 20})).json()

    assert lead["engagement"] == pytest.approx(40)  # as of its last touch
    assert above == {"leads": [], "next_cursor": None}
    [listed] = below["leads"]
    assert listed["engagement_now"] == pytest.approx(10, abs=0.01)
    assert listed["score_now"] == pytest.approx(fit + 10, abs=0.01)


async def test_an_invalid_model_is_refused_naming_the_field_and_the_active_one_stays(
    scoring: httpx.AsyncClient,
) -> None:
    body = DEFAULT_MODEL.model_dump(mode="json")
    stored = await scoring.put("/v1/model", json=body, headers=ADMIN)
    assert stored.status_code == 201, stored.text
    version = stored.json()["version"]

    broken = {**body, "engagement": [{**body["engagement"][0], "points": 5000}]}
    refused = await scoring.put("/v1/model", json=broken, headers=ADMIN)
    active = (await scoring.get("/v1/model")).json()

    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in refused.json()["errors"]] == ["engagement[0].points"]
    assert (active["version"], active["model"]) == (version, body)
    versions = (await scoring.get("/v1/model/versions")).json()
    assert [v["version"] for v in versions if v["active"]] == [version]


async def test_changing_the_model_needs_the_admin_token(scoring: httpx.AsyncClient) -> None:
    response = await scoring.put("/v1/model", json={}, headers={"authorization": "Bearer wrong"})
    assert response.status_code == 401
    assert response.json()["errors"][0]["field"] == "authorization"


async def test_health_readiness_and_metrics(scoring: httpx.AsyncClient) -> None:
    assert (await scoring.get("/healthz")).status_code == 200
    assert (await scoring.get("/readyz")).json()["status"] == "ready"
    assert "leadflow_consumer_lag" in (await scoring.get("/metrics")).text


async def test_a_new_model_version_rescores_stored_leads_and_publishes_only_changes(
    scoring: httpx.AsyncClient, send: Send, tail: Tail
) -> None:
    visitor, reader = email(), email()
    await send(WebVisited(identity=Identity(email=visitor), url="https://acme.test/pricing"))
    await send(EmailOpened(identity=Identity(email=reader)))  # pricing-page points do not touch this one
    for address in (visitor, reader):
        await wait_for_lead(scoring, lead_id_for(address))
    body = DEFAULT_MODEL.model_dump(mode="json")
    doubled = {**body, "engagement": [{**body["engagement"][0], "points": 20}, *body["engagement"][1:]]}

    try:
        version = (await scoring.put("/v1/model", json=doubled, headers=ADMIN)).json()["version"]
        progress = await wait_for_progress(scoring, version)
        rescored = await wait_for_lead(scoring, lead_id_for(visitor))
        await wait_until(lambda: has_event(tail, lead_id_for(visitor), SCORED, 2), what="the rescored score event")
    finally:
        await scoring.put("/v1/model", json=body, headers=ADMIN)  # the next tests expect the default model

    assert progress["leads"] > 0
    assert (rescored["model_version"], rescored["engagement"]) == (version, pytest.approx(20, abs=0.01))
    [_, event] = [e for t, e in lead_events(tail, lead_id_for(visitor)) if t == SCORED][:2]
    assert (event["model_version"], event["engagement"]) == (version, pytest.approx(20, abs=0.01))
    unchanged = [e for t, e in lead_events(tail, lead_id_for(reader)) if t == SCORED]
    assert [e["model_version"] for e in unchanged] == [version - 1]
