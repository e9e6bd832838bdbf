"""The follow-up clock: a missed accept SLA reassigns (credit-back) or escalates, and is published once."""

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Tail
from tests.e2e.counting import unique, wait_until
from tests.integration.routing.conftest import (
    Leads,
    assignments_in_db,
    make_team,
    put,
    route_all_to,
    wait_assigned,
    wait_for_events,
)

FAST_SLA = {"sla": {"accept_minutes": 1, "first_contact_minutes": 5}}


async def test_a_missed_accept_sla_moves_the_lead_to_the_next_rep(
    routing: httpx.AsyncClient, leads: Leads, engine: AsyncEngine, tail: Tail
) -> None:
    team = await make_team(routing, 2, **FAST_SLA)
    await route_all_to(routing, team)
    lead_id = unique("lead")
    await leads.mql(lead_id, at=datetime.now(UTC) - timedelta(hours=1))
    first = (await wait_assigned(engine, [lead_id]))[lead_id]
    breached = await wait_for_events(tail, lead_id, "leadflow.assignment.sla_breached.v1")
    assert (breached[0]["sla"], breached[0]["rep_id"]) == ("accept", first["rep_id"])
    moved = await wait_for_events(tail, lead_id, "leadflow.assignment.reassigned.v1")
    assert moved[0]["from_rep_id"] == first["rep_id"]
    history = (await assignments_in_db(engine, [lead_id]))[lead_id]
    assert [(a["rep_id"], a["status"]) for a in history] == [
        (first["rep_id"], "reassigned"),
        (next(r for r in team.reps if r != first["rep_id"]), "assigned"),
    ]


async def test_a_team_that_escalates_keeps_the_rep_and_names_the_manager(
    routing: httpx.AsyncClient, leads: Leads, engine: AsyncEngine, tail: Tail
) -> None:
    team = await make_team(routing, 2, **FAST_SLA)
    manager = team.reps[0]
    await put(
        routing,
        f"/v1/admin/teams/{team.id}",
        {"name": "escalating", "manager_rep_id": manager, "on_breach": "escalate", **FAST_SLA},
    )
    await route_all_to(routing, team)
    lead_id = unique("lead")
    await leads.mql(lead_id, at=datetime.now(UTC) - timedelta(hours=1))
    await wait_for_events(tail, lead_id, "leadflow.assignment.sla_breached.v1")

    async def escalated() -> bool:
        rows = (await assignments_in_db(engine, [lead_id]))[lead_id]
        return len(rows) == 1 and rows[0]["escalated_to"] == manager

    await wait_until(escalated, timeout_s=20, what="escalation to the manager")
    row = (await assignments_in_db(engine, [lead_id]))[lead_id][0]
    assert (row["status"], row["accept_breached"]) == ("assigned", True)
