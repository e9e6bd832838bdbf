"""Accounts collect their contacts' company facts; account fit rules, personas, segments and the buying group
follow the model."""

from typing import Any

import httpx

from services.scoring.identity import lead_id_for
from services.scoring.model import DEFAULT_MODEL
from shared.events import FormFilled, Identity
from tests.conftest import ADMIN_TOKEN
from tests.e2e.counting import unique
from tests.integration.scoring.conftest import Send, wait_for_lead, wait_for_progress

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


async def put_model(scoring: httpx.AsyncClient, body: dict[str, Any]) -> int:
    response = await scoring.put("/v1/model", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    version: int = response.json()["version"]
    await wait_for_progress(scoring, version)
    return version


async def test_a_colleague_s_company_facts_count_for_a_contact_who_gave_none(
    scoring: httpx.AsyncClient, send: Send
) -> None:
    domain = f"{unique('co')}.test"
    told, silent = f"ops@{domain}", f"buyer@{domain}"
    facts = {"industry": "Robotics", "employees": "2,500", "job_title": "Head of Ops"}
    await send(FormFilled(identity=Identity(email=told), form_id="contact", fields=facts))
    await wait_for_lead(scoring, lead_id_for(told), lambda lead: lead["segment"] == "large")
    body = DEFAULT_MODEL.model_dump(mode="json")
    robotics = {"id": "robotics_account", "kind": "in_list", "on": "account", "attribute": "industry"}
    with_rule = {**body, "fit": [*body["fit"], {**robotics, "values": ["robotics"], "points": 33}]}
    try:
        await put_model(scoring, with_rule)
        await send(FormFilled(identity=Identity(email=silent), form_id="contact", fields={"job_title": "Buyer"}))
        lead = await wait_for_lead(scoring, lead_id_for(silent), lambda lead: lead["persona"] is not None)
    finally:
        await put_model(scoring, body)

    account = (await scoring.get(f"/v1/accounts/domain:{domain}")).json()
    assert account["attributes"]["industry"]["value"] == "Robotics"
    assert account["attributes"]["employees"]["value"] == 2500
    assert "job_title" not in account["attributes"]  # a person's facts stay the person's
    assert lead["segment"] == "large"  # from the account: the buyer never said how big the company is
    breakdown = {m["rule_id"]: m["value"] for m in lead["score"]["fit_breakdown"]}
    assert breakdown["robotics_account"] == "Robotics"


async def test_personas_segments_and_the_buying_group_are_the_model_s(scoring: httpx.AsyncClient, send: Send) -> None:
    domain = f"{unique('co')}.test"
    person = f"scientist@{domain}"
    fields = {"job_title": "Data Scientist", "employees": 120}
    await send(FormFilled(identity=Identity(email=person), form_id="demo", fields=fields))
    before = await wait_for_lead(scoring, lead_id_for(person), lambda lead: lead["persona"] is not None)
    body = DEFAULT_MODEL.model_dump(mode="json")
    custom = {
        **body,
        "personas": [{"persona": "analyst", "patterns": ["data scientist", "analyst"]}, *body["personas"]],
        "segments": [{"segment": "smb", "max_employees": 99}, {"segment": "mid_market", "min_employees": 100}],
        "buying_group": ["analyst", "executive"],
    }
    try:
        await put_model(scoring, custom)
        after = await wait_for_lead(scoring, lead_id_for(person), lambda lead: lead["persona"] == "analyst")
        account = (await scoring.get(f"/v1/accounts/domain:{domain}")).json()
    finally:
        await put_model(scoring, body)

    assert (before["persona"], before["segment"]) == ("other", "small")
    assert (after["persona"], after["segment"]) == ("analyst", "mid_market")
    assert account["buying_group"] == {"engaged": ["analyst"], "missing": ["executive"], "complete": False}


async def test_a_buying_group_naming_an_unknown_persona_is_refused(scoring: httpx.AsyncClient) -> None:
    body = {**DEFAULT_MODEL.model_dump(mode="json"), "buying_group": ["executive", "wizard"]}
    response = await scoring.put("/v1/model", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["buying_group[1]"]
