"""Sales feedback from routing and deal outcomes on the real broker: stage moves, outcomes, erasure, merges."""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring import store
from services.scoring.identity import lead_id_for
from shared.events import (
    AssignmentAccepted,
    AssignmentRejected,
    DealLost,
    DealWon,
    DispositionRecorded,
    FormFilled,
    Identity,
    WebVisited,
)
from tests.conftest import ADMIN_TOKEN, Tail
from tests.e2e.counting import unique, wait_until
from tests.integration.scoring.conftest import (
    Feedback,
    Send,
    email,
    lead_events,
    one_person_as_two_leads,
    wait_for_lead,
)

STAGE = "leadflow.lead.stage_changed.v1"


async def an_mql(scoring: httpx.AsyncClient, send: Send) -> str:
    address = email()
    fields = {"job_title": "VP Marketing", "industry": "Software", "employees": "300"}
    await send(WebVisited(identity=Identity(email=address), url="https://acme.test/pricing"))
    await send(FormFilled(identity=Identity(email=address), form_id="demo", fields=fields))
    lead_id = lead_id_for(address)
    await wait_for_lead(scoring, lead_id, lambda lead: lead["stage"] == "mql")
    return lead_id


def at_stage(stage: str) -> Callable[[dict[str, Any]], bool]:
    return lambda lead: lead["stage"] == stage


async def outcomes_of(scoring: httpx.AsyncClient, lead_id: str, n: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    async def check() -> bool:
        response = await scoring.get(f"/v1/leads/{lead_id}/outcomes")
        found[:] = response.json() if response.status_code == 200 else []
        return len(found) >= n

    await wait_until(check, timeout_s=20, what=f"{n} outcomes of {lead_id}")
    return found


def assignment(lead_id: str) -> dict[str, str]:
    return {"lead_id": lead_id, "assignment_id": unique("a"), "rep_id": "rep-1"}


async def test_accepted_then_qualified_then_won_moves_sal_sql_customer_and_records_the_revenue(
    scoring: httpx.AsyncClient, send: Send, feedback: Feedback, tail: Tail
) -> None:
    lead_id = await an_mql(scoring, send)
    address = (await scoring.get(f"/v1/leads/{lead_id}")).json()["email"]

    await feedback(AssignmentAccepted(**assignment(lead_id)))
    await wait_for_lead(scoring, lead_id, at_stage("sal"))
    await feedback(DispositionRecorded(**assignment(lead_id), disposition="qualified"))
    await wait_for_lead(scoring, lead_id, at_stage("sql"))
    await send(DealWon(deal_id=unique("d"), contact_email=address, amount=Decimal("12000.50"), currency="EUR"))
    lead = await wait_for_lead(scoring, lead_id, at_stage("customer"))

    assert [t["to_stage"] for t in lead["stage_history"]] == ["subscriber", "lead", "mql", "sal", "sql", "customer"]
    assert [t["cause"] for t in lead["stage_history"]][3:5] == ["accepted", "sales_qualified"]
    [won] = await outcomes_of(scoring, lead_id, 1)
    assert (won["kind"], Decimal(str(won["amount"])), won["currency"]) == ("won", Decimal("12000.5"), "EUR")

    async def six_stage_events() -> bool:
        return sum(1 for t, _ in lead_events(tail, lead_id) if t == STAGE) >= 6

    await wait_until(six_stage_events, what="stage events")
    moves = [d["to_stage"] for t, d in lead_events(tail, lead_id) if t == STAGE]
    assert moves == ["subscriber", "lead", "mql", "sal", "sql", "customer"]


async def test_a_rejection_for_a_competitor_disqualifies_and_is_kept_once_with_reason_and_note(
    scoring: httpx.AsyncClient, send: Send, feedback: Feedback
) -> None:
    lead_id = await an_mql(scoring, send)
    rejected = AssignmentRejected(**assignment(lead_id), reason="competitor", note="works at a rival")

    first = await feedback(rejected)
    await feedback(rejected, event_id=first.id)  # redelivered: changes nothing
    await feedback(DispositionRecorded(**assignment(lead_id), disposition="contacted"))  # moves nothing
    lead = await wait_for_lead(scoring, lead_id, at_stage("disqualified"))

    assert lead["stage_history"][-1]["detail"] == "competitor"
    outcomes = await outcomes_of(scoring, lead_id, 1)
    assert [(o["kind"], o["reason"], o["note"]) for o in outcomes] == [("rejected", "competitor", "works at a rival")]


async def test_a_rejection_for_timing_recycles_and_a_lost_deal_is_recorded_without_a_move(
    scoring: httpx.AsyncClient, send: Send, feedback: Feedback
) -> None:
    lead_id = await an_mql(scoring, send)
    address = (await scoring.get(f"/v1/leads/{lead_id}")).json()["email"]

    await feedback(AssignmentRejected(**assignment(lead_id), reason="no_budget"))
    await wait_for_lead(scoring, lead_id, at_stage("recycled"))
    await send(DealLost(deal_id=unique("d"), contact_email=address, reason="price"))
    outcomes = await outcomes_of(scoring, lead_id, 2)

    assert [(o["kind"], o["reason"]) for o in outcomes] == [("rejected", "no_budget"), ("lost", "price")]
    assert (await scoring.get(f"/v1/leads/{lead_id}")).json()["stage"] == "recycled"


async def test_a_disqualified_disposition_disqualifies_and_an_opportunity_created_opens_one(
    scoring: httpx.AsyncClient, send: Send, feedback: Feedback
) -> None:
    dropped, opened = await an_mql(scoring, send), await an_mql(scoring, send)

    await feedback(DispositionRecorded(**assignment(dropped), disposition="disqualified", note="left the company"))
    await feedback(DispositionRecorded(**assignment(opened), disposition="opportunity_created"))

    await wait_for_lead(scoring, dropped, at_stage("disqualified"))
    await wait_for_lead(scoring, opened, at_stage("opportunity"))
    [outcome] = await outcomes_of(scoring, dropped, 1)
    assert (outcome["reason"], outcome["note"]) == ("disqualified", "left the company")


async def test_feedback_for_an_unknown_lead_changes_nothing_and_the_next_event_is_applied(
    scoring: httpx.AsyncClient, send: Send, feedback: Feedback
) -> None:
    lead_id = await an_mql(scoring, send)
    await feedback(AssignmentRejected(**assignment(unique("nobody")), reason="spam"))
    await feedback(AssignmentAccepted(**assignment(lead_id)))
    await wait_for_lead(scoring, lead_id, at_stage("sal"))


async def test_erasure_deletes_the_outcomes_and_a_merge_moves_them_to_the_survivor(
    scoring: httpx.AsyncClient, send: Send, feedback: Feedback, engine: AsyncEngine
) -> None:
    address, anonymous, known, anon = await one_person_as_two_leads(scoring, send)
    await feedback(AssignmentRejected(**assignment(anon), reason="no_budget", note="call in spring"))
    await outcomes_of(scoring, anon, 1)

    await send(FormFilled(identity=Identity(email=address, anonymous_id=anonymous), form_id="contact"))
    [moved] = await outcomes_of(scoring, known, 1)
    assert moved["note"] == "call in spring"

    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    assert (await scoring.delete(f"/v1/leads/{known}", headers=auth)).status_code == 204
    async with engine.connect() as connection:
        session_rows = await connection.execute(store.outcomes.select().where(store.outcomes.c.lead_id == known))
        assert session_rows.all() == []
    assert (await scoring.get(f"/v1/leads/{known}/outcomes")).status_code == 404


async def test_the_same_deal_won_under_two_event_ids_is_one_outcome(scoring: httpx.AsyncClient, send: Send) -> None:
    lead_id = await an_mql(scoring, send)
    address = (await scoring.get(f"/v1/leads/{lead_id}")).json()["email"]
    deal = DealWon(deal_id=unique("d"), contact_email=address, amount=Decimal(10), currency="USD")

    await send(deal)
    await send(deal, event_id=unique("again"))  # a CRM that resends with a new id
    await send(DealLost(deal_id=deal.deal_id, contact_email=address))  # same key: applied after both copies
    outcomes = await outcomes_of(scoring, lead_id, 2)

    assert [o["kind"] for o in outcomes] == ["won", "lost"]
    lead = (await scoring.get(f"/v1/leads/{lead_id}")).json()
    assert lead["stage"] == "customer"  # counted once: not a loyal customer
