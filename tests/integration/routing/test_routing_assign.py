"""MQL events from scoring become assignments: account owner first, then the rules' round-robin, with the why."""

from collections import Counter

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.events import LeadStageChanged
from tests.conftest import Tail
from tests.e2e.counting import unique
from tests.integration.routing.conftest import (
    ADMIN,
    Leads,
    assignments_in_db,
    make_team,
    put,
    route_all_to,
    wait_assigned,
    wait_caught_up,
    wait_for_events,
)


async def test_mqls_are_dealt_round_robin_with_the_why_and_an_assigned_event(
    routing: httpx.AsyncClient, leads: Leads, engine: AsyncEngine, tail: Tail
) -> None:
    team = await make_team(routing, 3)
    await route_all_to(routing, team)
    lead_ids = [unique("lead") for _ in range(6)]
    for lead_id in lead_ids:
        await leads.mql(lead_id, score=60)
    assigned = await wait_assigned(engine, lead_ids)
    assert Counter(a["rep_id"] for a in assigned.values()) == dict.fromkeys(team.reps, 2)
    first = assigned[lead_ids[0]]
    assert first["team_id"] == team.id
    assert [c["rep_id"] for c in first["why"]["considered"]] == sorted(team.reps)
    events = await wait_for_events(tail, lead_ids[0], "leadflow.assignment.assigned.v1")
    assert events[0]["assignment_id"] == first["id"]
    assert events[0]["rep_id"] == first["rep_id"]


async def test_a_target_account_lead_goes_to_its_owner_whatever_the_rules(
    routing: httpx.AsyncClient, leads: Leads, engine: AsyncEngine
) -> None:
    team = await make_team(routing, 2)
    owner = await make_team(routing, 1)
    account = f"{unique('acme')}.com"
    await put(
        routing,
        f"/v1/admin/account-lists/{unique('top10')}",
        {"name": "Top 10", "accounts": [{"account": account, "owner_rep_id": owner.reps[0]}]},
    )
    await route_all_to(routing, team)
    lead_id = unique("lead")
    await leads.mql(lead_id, account=account)
    assigned = (await wait_assigned(engine, [lead_id]))[lead_id]
    assert assigned["rep_id"] == owner.reps[0]
    assert assigned["rule"].startswith("account:")


async def test_rules_match_on_territory_and_score_band_and_unmatched_leads_wait_in_the_queue(
    routing: httpx.AsyncClient, leads: Leads, engine: AsyncEngine
) -> None:
    emea, hot = await make_team(routing, 1), await make_team(routing, 1)
    territory = unique("emea")
    await put(routing, f"/v1/admin/territories/{territory}", {"name": "EMEA", "countries": ["DE", "FR"]})
    rules = [
        {"id": "emea", "team_id": emea.id, "when": {"territories": [territory]}},
        {"id": "hot", "team_id": hot.id, "when": {"min_score": 80}},
    ]
    response = await routing.put("/v1/admin/rules", json={"rules": rules}, headers=ADMIN)
    assert response.status_code == 201, response.text
    german, hot_us, cold_us = unique("de"), unique("hot"), unique("cold")
    await leads.mql(german, score=50, country="DE")
    await leads.mql(hot_us, score=90, country="US")
    await leads.mql(cold_us, score=40, country="US")
    assigned = await wait_assigned(engine, [german, hot_us, cold_us])
    assert assigned[german]["rep_id"] == emea.reps[0]
    assert assigned[hot_us]["rep_id"] == hot.reps[0]
    assert (assigned[cold_us]["rep_id"], assigned[cold_us]["status"]) == (None, "queued")


async def test_redelivered_and_repeated_mql_events_assign_nothing_twice(
    routing: httpx.AsyncClient, leads: Leads, engine: AsyncEngine, tail: Tail
) -> None:
    team = await make_team(routing, 2)
    await route_all_to(routing, team)
    lead_id = unique("lead")
    mql = await leads.mql(lead_id)
    mql_assignment = (await wait_assigned(engine, [lead_id]))[lead_id]
    again = LeadStageChanged(lead_id=lead_id, from_stage="lead", to_stage="mql", cause="score")
    await leads.send(again, event_id=mql.id)  # the same event redelivered
    await leads.send(again)  # a second MQL while the first assignment is open
    await wait_caught_up(engine, leads)
    assert len((await assignments_in_db(engine, [lead_id]))[lead_id]) == 1
    published = await wait_for_events(tail, lead_id, "leadflow.assignment.assigned.v1")
    assert {e["assignment_id"] for e in published} == {mql_assignment["id"]}


async def test_a_rep_rule_to_an_away_rep_falls_through_to_the_next_rule(
    routing: httpx.AsyncClient, leads: Leads, engine: AsyncEngine
) -> None:
    team = await make_team(routing, 1)
    away_rep = unique("away")
    period = {"start": "2020-01-01T00:00:00Z", "end": "2099-01-01T00:00:00Z"}
    await put(routing, f"/v1/admin/reps/{away_rep}", {"name": "Away", "away": [period]})
    await route_all_to(routing, team, {"id": "vip", "rep_id": away_rep})
    lead_id = unique("lead")
    await leads.mql(lead_id)
    assigned = (await wait_assigned(engine, [lead_id]))[lead_id]
    assert assigned["rep_id"] == team.reps[0]
    assert {"rule": "vip", "rep_id": away_rep, "skipped": "away", "load": 0.0} in assigned["why"]["considered"]


async def test_a_dry_run_shows_who_would_have_received_the_past_mqls_without_changing_anything(
    routing: httpx.AsyncClient, leads: Leads, engine: AsyncEngine
) -> None:
    now_team, proposed = await make_team(routing, 1), await make_team(routing, 2)
    await route_all_to(routing, now_team)
    segment = unique("segment")
    lead_ids = [unique("lead") for _ in range(4)]
    for lead_id in lead_ids:
        await leads.mql(lead_id, segment=segment)
    await wait_assigned(engine, lead_ids)
    rules = {"rules": [{"id": "by-segment", "team_id": proposed.id, "when": {"segments": [segment]}}]}
    response = await routing.post("/v1/admin/rules/dry-run", params={"days": 1}, json=rules, headers=ADMIN)
    assert response.status_code == 200, response.text
    result = response.json()
    assert {rep: result["per_rep"].get(rep) for rep in proposed.reps} == dict.fromkeys(proposed.reps, 2)
    assert result["per_team"][proposed.id] == 4
    active = (await routing.get("/v1/admin/rules", headers=ADMIN)).json()
    assert active["rules"]["rules"][-1]["team_id"] == now_team.id
    assert all(rows[0]["rep_id"] == now_team.reps[0] for rows in (await assignments_in_db(engine, lead_ids)).values())
