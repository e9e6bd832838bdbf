"""Touches on the real broker become leads in the real database: qualification, idempotence, merges, poison."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from services.scoring.config import ScoringSettings
from services.scoring.identity import lead_id_for
from shared.bus import Publisher
from shared.events import DealCreated, DealWon, EmailOpened, FormFilled, Identity, WebVisited
from tests.conftest import Tail
from tests.e2e.counting import unique, wait_until
from tests.integration.scoring.conftest import (
    Send,
    email,
    has_event,
    lead_events,
    one_person_as_two_leads,
    wait_for_lead,
)


def demo_form(address: str, **identity: str) -> FormFilled:
    fields = {"job_title": "VP Marketing", "company": "Acme", "industry": "Software", "employees": "200-499"}
    return FormFilled(identity=Identity(email=address, **identity), form_id="demo", fields=fields)


async def test_a_pricing_visit_and_a_demo_request_make_an_mql_with_its_breakdown(
    scoring: httpx.AsyncClient, send: Send, tail: Tail
) -> None:
    address = email()
    await send(WebVisited(identity=Identity(email=address), url="https://acme.test/pricing"))
    await send(demo_form(address))
    lead_id = lead_id_for(address)

    lead = await wait_for_lead(scoring, lead_id, lambda lead: lead["stage"] == "mql")

    fired = [c["rule_id"] for c in lead["score"]["engagement_breakdown"]]
    assert fired == ["pricing_page", "demo_request"]
    assert [t["to_stage"] for t in lead["stage_history"]] == ["subscriber", "lead", "mql"]
    assert (lead["persona"] and lead["segment"] == "medium") or lead["segment"]
    await wait_until(lambda: has_event(tail, lead_id, "leadflow.lead.stage_changed.v1", 3), what="stage events")


async def test_the_same_touch_twice_changes_nothing(scoring: httpx.AsyncClient, send: Send, tail: Tail) -> None:
    address = email()
    visit = await send(WebVisited(identity=Identity(email=address), url="https://acme.test/pricing"))
    await send(visit.data, event_id=visit.id)
    await send(EmailOpened(identity=Identity(email=address)))  # after both copies on the same partition
    lead_id = lead_id_for(address)

    lead = await wait_for_lead(scoring, lead_id, lambda lead: len(lead["timeline"]) == 2)
    await wait_until(lambda: has_event(tail, lead_id, "leadflow.lead.score_changed.v1", 2), what="score events")

    assert [c["rule_id"] for c in lead["score"]["engagement_breakdown"]] == ["pricing_page", "email_open"]
    types = [t for t, _ in lead_events(tail, lead_id)]
    assert sorted(types) == sorted(
        [
            "leadflow.lead.created.v1",
            "leadflow.lead.profile_changed.v1",
            "leadflow.lead.score_changed.v1",
            "leadflow.lead.stage_changed.v1",
            "leadflow.lead.score_changed.v1",
        ]
    )


async def test_an_anonymous_history_merges_into_the_known_lead(
    scoring: httpx.AsyncClient, send: Send, tail: Tail
) -> None:
    address, anonymous, known, anon = await one_person_as_two_leads(scoring, send)

    await send(demo_form(address, anonymous_id=anonymous))
    lead = await wait_for_lead(scoring, known, lambda lead: len(lead["timeline"]) == 3)

    assert {i["identifier"] for i in lead["identities"]} == {address, f"anon:{anonymous}"}
    assert "pricing_page" in [c["rule_id"] for c in lead["score"]["engagement_breakdown"]]
    assert (await scoring.get(f"/v1/leads/{anon}")).status_code == 404
    await wait_until(lambda: has_event(tail, known, "leadflow.lead.merged.v1", 1), what="merged event")
    merged = [data for t, data in lead_events(tail, known) if t == "leadflow.lead.merged.v1"]
    assert merged == [{"lead_id": known, "absorbed": anon, "type": "leadflow.lead.merged.v1"}]


async def test_a_poison_record_is_dead_lettered_and_the_next_touch_is_applied(
    scoring: httpx.AsyncClient, send: Send, tail: Tail, settings: ScoringSettings, publisher: Publisher
) -> None:
    address = email()
    headers = [("ce_id", unique("poison").encode()), ("ce_type", b"leadflow.touch.web_visit.v1")]
    await publisher.publish_raw(settings.topics.touches, b"{not json", key=address.encode(), headers=headers)
    await send(EmailOpened(identity=Identity(email=address)))

    await wait_for_lead(scoring, lead_id_for(address))

    def dead_lettered() -> bool:
        return any(
            r.topic == settings.topics.dead_letters and r.headers.get("dlq_group") == settings.consumer_group
            for r in tail.records
        )

    await wait_until(_async(dead_lettered), what="the poison record on the dead-letter topic")


def _async(check: Any) -> Any:
    async def run() -> bool:
        return bool(check())

    return run


async def test_deals_move_the_contacts_lead_to_opportunity_then_customer(
    scoring: httpx.AsyncClient, send: Send, tail: Tail
) -> None:
    address, deal_id = email(), unique("deal")
    await send(demo_form(address))
    lead_id = lead_id_for(address)
    await wait_for_lead(scoring, lead_id, lambda lead: lead["stage"] == "mql")

    await send(DealCreated(deal_id=deal_id, contact_email=address.upper()))
    await send(DealWon(deal_id=deal_id, contact_email=address, amount=Decimal("1200")))
    await send(DealWon(deal_id=deal_id, contact_email=address))  # the same deal again: not a loyal customer
    await send(DealCreated(deal_id=unique("deal"), contact_email=email()))  # nobody we know: nothing happens

    lead = await wait_for_lead(scoring, lead_id, lambda lead: lead["stage"] == "customer")
    assert [t["to_stage"] for t in lead["stage_history"]] == ["lead", "mql", "opportunity", "customer"]
    await wait_until(lambda: has_event(tail, lead_id, "leadflow.lead.stage_changed.v1", 4), what="stage events")


async def test_an_mql_whose_engagement_decayed_is_recycled_by_the_sweep(
    scoring: httpx.AsyncClient, send: Send, tail: Tail
) -> None:
    address = email()
    long_ago = datetime.now(UTC) - timedelta(days=400)
    await send(demo_form(address).model_copy(update={"occurred_at": long_ago}))
    lead_id = lead_id_for(address)

    lead = await wait_for_lead(scoring, lead_id, lambda lead: lead["stage"] == "recycled")

    assert [t["to_stage"] for t in lead["stage_history"]] == ["lead", "mql", "recycled"]
    assert lead["stage_history"][-1]["cause"] == "decayed"
    await wait_until(lambda: has_event(tail, lead_id, "leadflow.lead.stage_changed.v1", 3), what="stage events")
