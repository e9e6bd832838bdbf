"""Sales tools: tokens and roles, the queue, accept / reject / disposition, the brief, and bad input."""

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.routing import store
from shared.events import EmailForwarded, EmailOpened, FormFilled, Identity, LeadErased, QrScanned, WebVisited
from tests.conftest import Tail
from tests.e2e.counting import unique, wait_until
from tests.integration.routing.conftest import (
    ADMIN,
    Leads,
    make_team,
    route_all_to,
    token_for,
    wait_assigned,
    wait_for_events,
)


async def test_a_rep_cannot_see_or_act_on_another_reps_lead(
    routing: httpx.AsyncClient, leads: Leads, engine: AsyncEngine
) -> None:
    team = await make_team(routing, 2)
    await route_all_to(routing, team)
    lead_ids = [unique("lead"), unique("lead")]
    for lead_id in lead_ids:
        await leads.mql(lead_id)
    assigned = await wait_assigned(engine, lead_ids)
    by_rep = {a["rep_id"]: a for a in assigned.values()}
    mine, theirs = by_rep[team.reps[0]], by_rep[team.reps[1]]
    me = await token_for(routing, "rep", rep_id=team.reps[0])
    assert (await routing.get(f"/v1/assignments/{mine['id']}", headers=me)).status_code == 200
    for method, path in [
        ("GET", f"/v1/assignments/{theirs['id']}"),
        ("POST", f"/v1/assignments/{theirs['id']}/accept"),
        ("GET", f"/v1/leads/{theirs['lead_id']}/brief"),
    ]:
        response = await routing.request(method, path, headers=me)
        assert response.status_code == 404, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    rejected = await routing.post(f"/v1/assignments/{theirs['id']}/reject", json={"reason": "x"}, headers=me)
    assert rejected.status_code == 404
    queue = (await routing.get("/v1/queue", headers=me)).json()
    assert {a["id"] for a in queue["assignments"]} == {mine["id"]}
    manager = await token_for(routing, "manager", team_id=team.id)
    team_queue = (await routing.get("/v1/queue", headers=manager)).json()
    assert {a["id"] for a in team_queue["assignments"]} == {mine["id"], theirs["id"]}
    outsider = await token_for(routing, "manager", team_id=(await make_team(routing, 1)).id)
    assert (await routing.get(f"/v1/assignments/{mine['id']}", headers=outsider)).status_code == 404


async def test_accept_reject_and_dispositions_publish_events_and_rejection_credits_the_turn_back(
    routing: httpx.AsyncClient, leads: Leads, engine: AsyncEngine, tail: Tail
) -> None:
    team = await make_team(routing, 2)
    await route_all_to(routing, team)
    reason = unique("student")
    response = await routing.put(f"/v1/admin/rejection-reasons/{reason}", json={"label": "Student"}, headers=ADMIN)
    assert response.status_code == 201
    first, second = unique("lead"), unique("lead")
    await leads.mql(first)
    a = (await wait_assigned(engine, [first]))[first]
    rep = await token_for(routing, "rep", rep_id=a["rep_id"])
    accepted = await routing.post(f"/v1/assignments/{a['id']}/accept", headers=rep)
    assert accepted.json()["status"] == "accepted"
    twice = await routing.post(f"/v1/assignments/{a['id']}/accept", headers=rep)
    assert twice.status_code == 409
    contacted = await routing.post(
        f"/v1/assignments/{a['id']}/disposition", json={"disposition": "contacted"}, headers=rep
    )
    assert contacted.json()["first_contact_at"] is not None
    rejected = await routing.post(
        f"/v1/assignments/{a['id']}/reject", json={"reason": reason, "note": "thesis research"}, headers=rep
    )
    assert rejected.json()["status"] == "rejected"
    feedback = await wait_for_events(tail, first, "leadflow.assignment.rejected.v1")
    assert (feedback[0]["reason"], feedback[0]["note"]) == (reason, "thesis research")
    await wait_for_events(tail, first, "leadflow.assignment.accepted.v1")
    await wait_for_events(tail, first, "leadflow.assignment.disposition.v1")
    # the rejection gave the turn back: the same rep is next again
    await leads.mql(second)
    assert (await wait_assigned(engine, [second]))[second]["rep_id"] == a["rep_id"]


async def test_the_queue_is_by_score_cursor_paginated_and_long_polls(
    routing: httpx.AsyncClient, leads: Leads, engine: AsyncEngine
) -> None:
    team = await make_team(routing, 1)
    await route_all_to(routing, team)
    rep = await token_for(routing, "rep", rep_id=team.reps[0])
    scores = {unique("lead"): s for s in (50, 90, 70)}
    for lead_id, score in scores.items():
        await leads.mql(lead_id, score=score)
    await wait_assigned(engine, list(scores))
    page1 = (await routing.get("/v1/queue", params={"limit": 2}, headers=rep)).json()
    page2 = (await routing.get("/v1/queue", params={"limit": 2, "cursor": page1["next_cursor"]}, headers=rep)).json()
    assert [a["score"] for a in page1["assignments"] + page2["assignments"]] == [90, 70, 50]
    assert page2["next_cursor"] is None
    other = await make_team(routing, 1)
    await route_all_to(routing, other)
    waiting = await token_for(routing, "rep", rep_id=other.reps[0])
    late = unique("lead")

    async def arrive_later() -> None:
        await leads.mql(late)

    polled, _ = await asyncio.gather(routing.get("/v1/queue", params={"wait": 20}, headers=waiting), arrive_later())
    assert [a["lead_id"] for a in polled.json()["assignments"]] == [late]


async def test_the_brief_tells_what_the_lead_did_and_who_else_at_the_account_is_engaged(
    routing: httpx.AsyncClient, leads: Leads, engine: AsyncEngine
) -> None:
    team = await make_team(routing, 1)
    await route_all_to(routing, team)
    account = f"{unique('acme')}.com"
    email, colleague_email = f"ada@{account}", f"bob@{account}"
    lead_id, colleague = unique("lead"), unique("lead")
    t0 = datetime.now(UTC) - timedelta(days=2)
    who = Identity(email=email)
    for touch in [
        EmailOpened(identity=who, message_id="m1"),
        EmailOpened(identity=who, message_id="m1", machine_generated=True, machine_reason="apple_mpp"),
        EmailForwarded(identity=who, message_id="m1"),
        QrScanned(identity=who, code="booth-7"),
        WebVisited(identity=who, url="https://x.com/pricing", duration_s=40, page_view_id="v1"),
        WebVisited(identity=who, url="https://x.com/pricing", duration_s=95, page_view_id="v1"),
        WebVisited(identity=who, url="https://x.com/docs", return_visit=True, page_view_id="v2"),
        FormFilled(identity=who, form_name="Demo request"),
        EmailOpened(identity=Identity(email=colleague_email)),
    ]:
        await leads.touch(touch, at=t0)
    await leads.mql(colleague, email=colleague_email, account=account, persona="engineer")
    await leads.mql(lead_id, email=email, account=account, persona="buyer", score=88)
    assigned = await wait_assigned(engine, [lead_id, colleague])
    rep = await token_for(routing, "rep", rep_id=assigned[lead_id]["rep_id"])
    found: dict[str, object] = {}

    async def complete() -> bool:
        response = await routing.get(f"/v1/leads/{lead_id}/brief", headers=rep)
        found.update(response.json())
        return response.status_code == 200 and found["forms"] == ["Demo request"]

    await wait_until(complete, timeout_s=20, what="the brief")
    assert (found["email_opens"], found["machine_opens"], found["email_forwards"]) == (1, 1, 1)
    assert found["qr_scans"] == ["booth-7"]
    assert found["return_visits"] == 1
    pages = found["pages"]
    assert isinstance(pages, list)
    assert (pages[0]["url"], pages[0]["views"], pages[0]["seconds_on_page"]) == ("https://x.com/pricing", 1, 95)
    assert found["persona"] == "buyer"
    assert found["score"] == {"fit": 44, "engagement": 44, "total": 88, "grade": "A", "model_version": 1}
    others = found["other_contacts"]
    assert isinstance(others, list)
    assert [(c["lead_id"], c["touches"]) for c in others] == [(colleague, 1)]


async def test_bad_input_is_problem_json_naming_the_field(routing: httpx.AsyncClient) -> None:
    def field_of(response: httpx.Response) -> str:
        assert response.headers["content-type"] == "application/problem+json", response.text
        return str(response.json()["errors"][0]["field"])

    bad_zone = await routing.put("/v1/admin/reps/ada", json={"name": "Ada", "time_zone": "Mars/Base"}, headers=ADMIN)
    assert (bad_zone.status_code, field_of(bad_zone)) == (422, "time_zone")
    unknown_team = await routing.put("/v1/admin/reps/ada", json={"name": "Ada", "team_ids": ["nope"]}, headers=ADMIN)
    assert (unknown_team.status_code, field_of(unknown_team)) == (422, "team_ids[0]")
    rules = {"rules": [{"id": "a", "team_id": "nope", "when": {"min_score": "high"}}]}
    bad_rules = await routing.put("/v1/admin/rules", json=rules, headers=ADMIN)
    assert (bad_rules.status_code, field_of(bad_rules)) == (422, "rules[0].when.min_score")
    dangling = await routing.put("/v1/admin/rules", json={"rules": [{"id": "a", "team_id": "nope"}]}, headers=ADMIN)
    assert (dangling.status_code, field_of(dangling)) == (422, "rules[0].team_id")
    team = await make_team(routing, 1)
    in_use = await routing.delete(f"/v1/admin/teams/{team.id}", headers=ADMIN)
    assert (in_use.status_code, field_of(in_use)) == (409, "document_id")
    assert (await routing.get("/v1/queue")).status_code == 401
    assert (await routing.get("/v1/queue", headers={"authorization": "Bearer nope"})).status_code == 401
    rep = await token_for(routing, "rep", rep_id=team.reps[0])
    assert (await routing.get("/v1/admin/reps", headers=rep)).status_code == 403
    bad_cursor = await routing.get("/v1/queue", params={"cursor": "garbage"}, headers=rep)
    assert (bad_cursor.status_code, field_of(bad_cursor)) == (422, "cursor")
    no_rep = await routing.post("/v1/admin/users", json={"id": "u", "name": "u", "role": "rep"}, headers=ADMIN)
    assert no_rep.status_code == 422
    bad_disposition = await routing.post("/v1/assignments/x/disposition", json={"disposition": "won"}, headers=rep)
    assert (bad_disposition.status_code, field_of(bad_disposition)) == (422, "disposition")


async def test_the_api_is_documented_with_every_admin_body(routing: httpx.AsyncClient) -> None:
    spec = (await routing.get("/openapi.json")).json()
    assert {"/v1/queue", "/v1/assignments/{assignment_id}/reject", "/v1/leads/{lead_id}/brief"} <= set(spec["paths"])
    rep_body = spec["paths"]["/v1/admin/reps/{document_id}"]["put"]["requestBody"]["content"]["application/json"]
    assert "time_zone" in rep_body["schema"]["properties"]
    assert {"WorkingHours", "Away"} <= set(spec["components"]["schemas"])
    assert (await routing.get("/readyz")).json()["status"] == "ready"


async def test_an_erased_lead_leaves_no_personal_data_behind(
    routing: httpx.AsyncClient, leads: Leads, engine: AsyncEngine
) -> None:
    team = await make_team(routing, 1)
    await route_all_to(routing, team)
    reason = unique("other")
    await routing.put(f"/v1/admin/rejection-reasons/{reason}", json={"label": "Other"}, headers=ADMIN)
    email = f"{unique('eve')}@example.com"
    lead_id = unique("lead")
    await leads.touch(EmailOpened(identity=Identity(email=email)))
    await leads.mql(lead_id, email=email, job_title="CTO")
    a = (await wait_assigned(engine, [lead_id]))[lead_id]
    rep = await token_for(routing, "rep", rep_id=a["rep_id"])
    await routing.post(
        f"/v1/assignments/{a['id']}/reject", json={"reason": reason, "note": f"{email} is a student"}, headers=rep
    )
    await leads.send(LeadErased(lead_id=lead_id))

    async def erased() -> bool:
        return (await routing.get(f"/v1/leads/{lead_id}/brief", headers=ADMIN)).status_code == 404

    await wait_until(erased, timeout_s=20, what="erasure")
    async with engine.connect() as conn:
        notes = (
            await conn.execute(select(store.assignments.c.note).where(store.assignments.c.lead_id == lead_id))
        ).all()
        touches = (await conn.execute(select(store.touches).where(store.touches.c.identity_key == email))).all()
    assert (notes, touches) == ([(None,)], [])


async def test_an_unused_document_can_be_deleted_once(routing: httpx.AsyncClient) -> None:
    territory = unique("nordics")
    response = await routing.put(f"/v1/admin/territories/{territory}", json={"name": "Nordics"}, headers=ADMIN)
    assert response.status_code == 201
    assert (
        await routing.put(f"/v1/admin/territories/{territory}", json={"name": "N"}, headers=ADMIN)
    ).status_code == 200
    assert (await routing.delete(f"/v1/admin/territories/{territory}", headers=ADMIN)).status_code == 204
    assert (await routing.get(f"/v1/admin/territories/{territory}", headers=ADMIN)).status_code == 404
    assert (await routing.delete(f"/v1/admin/territories/{territory}", headers=ADMIN)).status_code == 404


async def test_a_lead_in_the_open_queue_is_handed_to_a_rep_by_an_admin_and_managers_stay_in_their_team(
    routing: httpx.AsyncClient, leads: Leads, engine: AsyncEngine, tail: Tail
) -> None:
    team, other = await make_team(routing, 2), await make_team(routing, 1)
    response = await routing.put("/v1/admin/rules", json={"rules": []}, headers=ADMIN)
    assert response.status_code == 201
    lead_id = unique("lead")
    await leads.mql(lead_id)
    queued = (await wait_assigned(engine, [lead_id]))[lead_id]
    assert (queued["status"], queued["rep_id"]) == ("queued", None)
    rep = await token_for(routing, "rep", rep_id=team.reps[0])
    manager = await token_for(routing, "manager", team_id=team.id)
    path = f"/v1/assignments/{queued['id']}/reassign"
    assert (await routing.post(path, json={"rep_id": team.reps[0]}, headers=manager)).status_code == 404
    handed = await routing.post(path, json={"rep_id": team.reps[0]}, headers=ADMIN)
    assert handed.status_code == 200, handed.text
    mine = handed.json()
    assert (mine["rep_id"], mine["status"], mine["rule"]) == (team.reps[0], "assigned", "manual")
    assert [a["id"] for a in (await routing.get("/v1/queue", headers=rep)).json()["assignments"]] == [mine["id"]]
    moved = await wait_for_events(tail, lead_id, "leadflow.assignment.reassigned.v1")
    assert (moved[0]["cause"], moved[0]["rep_id"]) == ("manual", team.reps[0])
    again = f"/v1/assignments/{mine['id']}/reassign"
    assert (await routing.post(again, json={"rep_id": team.reps[1]}, headers=rep)).status_code == 403
    outside = await routing.post(again, json={"rep_id": other.reps[0]}, headers=manager)
    assert (outside.status_code, outside.json()["errors"][0]["field"]) == (422, "rep_id")
    inside = await routing.post(again, json={"rep_id": team.reps[1]}, headers=manager)
    assert inside.json()["rep_id"] == team.reps[1]
    closed = await routing.post(path, json={"rep_id": team.reps[1]}, headers=ADMIN)
    assert closed.status_code == 409
