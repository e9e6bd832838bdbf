"""Events on the real broker become reports from the real database: attribution side by side, ROI, funnel,
scorecards, CSV and cursors, redelivery, and a rebuild from the topics into empty read models."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reporting.config import ReportingSettings
from shared.events import (
    AdClicked,
    AssignmentAccepted,
    AssignmentRejected,
    Campaign,
    DealCreated,
    DealWon,
    DispositionRecorded,
    EmailClicked,
    FormFilled,
    Identity,
    LeadAssigned,
    LeadCreated,
    LeadMerged,
    LeadProfileChanged,
    LeadStageChanged,
    WebVisited,
)
from tests.conftest import reporting_client
from tests.e2e.counting import unique, wait_until
from tests.integration.reporting.conftest import ADMIN, Send, empty_read_models

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


async def register(client: httpx.AsyncClient) -> None:
    ads = {
        "name": "Spring ads",
        "channel": "paid_social",
        "type": "lead_generation",
        "utm": [{"utm_campaign": "spring-ads"}],
    }
    webinar = {"name": "Q4 webinar", "channel": "email", "type": "nurture", "starts_on": "2026-11-01"}
    for campaign_id, body in (("ads", ads), ("webinar", webinar)):
        response = await client.put(f"/v1/campaigns/{campaign_id}", json=body, headers=ADMIN)
        assert response.status_code == 200, response.text
    costs = "campaign_id,period_start,period_end,amount,currency\nads,2026-11-01,2026-11-30,300.00,EUR\n"
    response = await client.post("/v1/costs/import", content=costs, headers={**ADMIN, "content-type": "text/csv"})
    assert response.json() == {"saved": 1}
    targets = [
        {"period": "2026-11", "metric": "mqls", "value": 4},
        {"period": "2026-11", "metric": "revenue", "value": 2000},
    ]
    assert (await client.put("/v1/targets", json=targets, headers=ADMIN)).status_code == 200


@pytest.fixture(scope="module")
async def story(reporting: httpx.AsyncClient, send: Send) -> dict[str, str]:
    """Ada: an anonymous ad click, two webinar touches as herself, merged, won 900 EUR; a visit after the close.
    Bob: won 100 EUR without any touch. Carol: an ad click, never converts (a null path)."""
    await register(reporting)
    ada, anon, bob, carol = f"{unique('ada')}@example.com", unique("a"), f"{unique('bob')}@example.com", unique("c")
    leads = {"ada": unique("L-ada"), "anon": unique("L-anon"), "bob": unique("L-bob"), "carol": unique("L-carol")}
    await send(AdClicked(identity=Identity(anonymous_id=anon), campaign=Campaign(utm_campaign="spring-ads")), day(0))
    await send(EmailClicked(identity=Identity(email=ada), campaign=Campaign(campaign_id="webinar")), day(1))
    form = FormFilled(identity=Identity(email=ada, anonymous_id=anon), campaign=Campaign(campaign_id="webinar"))
    await send(form, day(2))
    await send(WebVisited(identity=Identity(email=ada), campaign=Campaign(campaign_id="late")), day(10))
    await send(AdClicked(identity=Identity(anonymous_id=carol), campaign=Campaign(utm_campaign="Spring-Ads")), day(3))
    await send(LeadCreated(lead_id=leads["anon"], identifier=f"anon:{anon}"), day(0))
    await send(LeadCreated(lead_id=leads["ada"], identifier=ada, email=ada), day(1))
    await send(LeadMerged(lead_id=leads["ada"], absorbed=leads["anon"]), day(2))
    await send(LeadProfileChanged(lead_id=leads["ada"], changes={}, persona="executive", segment="medium"), day(2))
    await send(LeadCreated(lead_id=leads["bob"], identifier=bob, email=bob), day(1))
    await send(LeadCreated(lead_id=leads["carol"], identifier=f"anon:{carol}"), day(3))
    for n, stage in enumerate(("lead", "mql", "sql", "opportunity", "customer"), start=1):
        await send(LeadStageChanged(lead_id=leads["ada"], to_stage=stage, cause="test"), day(n))
    await send(LeadStageChanged(lead_id=leads["carol"], to_stage="lead", cause="test"), day(3))
    await send(DealCreated(deal_id="d-ada", amount=Decimal("900.00"), currency="EUR", contact_email=ada), day(4))
    won = await send(DealWon(deal_id="d-ada", amount=Decimal("900.00"), currency="EUR", contact_email=ada), day(5))
    await send(DealWon(deal_id="d-bob", amount=Decimal("100.00"), currency="EUR", contact_email=bob), day(6))
    assigned = {"assignment_id": "as-ada", "rep_id": "rep-1", "team_id": "team-1"}
    await send(LeadAssigned(lead_id=leads["ada"], **assigned), day(2))
    await send(AssignmentAccepted(lead_id=leads["ada"], **assigned), day(2) + timedelta(minutes=30))
    await send(DispositionRecorded(lead_id=leads["ada"], disposition="contacted", **assigned), day(2.0625))
    to_carol = {"assignment_id": "as-carol", "rep_id": "rep-1", "team_id": "team-1"}
    await send(LeadAssigned(lead_id=leads["carol"], **to_carol), day(3))
    await send(AssignmentRejected(lead_id=leads["carol"], reason="bad_fit", **to_carol), day(3.5))
    await send(won.data, won.time, event_id=won.id)  # redelivered: changes nothing
    await wait_until(lambda: complete(reporting), timeout_s=30, what="every event applied")
    return leads


async def complete(client: httpx.AsyncClient) -> bool:
    attribution = (await client.get("/v1/reports/attribution")).json()
    sales = (await client.get("/v1/reports/scorecards/sales")).json()
    funnel = (await client.get("/v1/reports/funnel")).json()
    return (
        attribution["summary"]["won_deals"] == 2
        and attribution["summary"]["null_paths"] == 1
        and sum(r["linear_revenue"] for r in attribution["rows"]) == 1000
        and len(sales["rows"]) == 1
        and sales["rows"][0]["rejected"] == 1
        and sales["rows"][0]["disposition_contacted"] == 1
        and sum(r["entered"] for r in funnel["rows"] if r["stage"] == "customer") == 1
    )


def by_campaign(rows: list[dict[str, Any]], column: str) -> dict[str, float]:
    return {r["campaign"]: r[column] for r in rows}


async def test_every_model_credits_the_won_deals_side_by_side(reporting: httpx.AsyncClient, story: Any) -> None:
    report = (await reporting.get("/v1/reports/attribution", params={"since": "2026-11-01"})).json()

    rows = report["rows"]
    assert {r["period"] for r in rows} == {"2026-11"}
    assert by_campaign(rows, "first_touch_revenue") == {"ads": 900, "webinar": 0, "(unattributed)": 100}
    assert by_campaign(rows, "last_touch_revenue") == {"ads": 0, "webinar": 900, "(unattributed)": 100}
    assert by_campaign(rows, "linear_revenue") == {"ads": 300, "webinar": 600, "(unattributed)": 100}
    assert by_campaign(rows, "u_shaped_revenue") == {"ads": 360, "webinar": 540, "(unattributed)": 100}
    assert by_campaign(rows, "markov_revenue") == {"ads": 450, "webinar": 450, "(unattributed)": 100}
    assert by_campaign(rows, "linear_deals") == pytest.approx({"ads": 1 / 3, "webinar": 2 / 3, "(unattributed)": 1})
    for model in report["models"]:
        assert sum(r[f"{model}_revenue"] for r in rows) == 1000
    assert report["summary"]["unattributed_revenue"] == {"EUR": 100}


async def test_the_markov_table_gives_removal_effects_with_a_range(reporting: httpx.AsyncClient, story: Any) -> None:
    rows = (await reporting.get("/v1/reports/attribution", params={"table": "markov"})).json()["rows"]

    assert {r["campaign"]: r["removal_effect"] for r in rows} == {"ads": 1.0, "webinar": 1.0}
    for r in rows:
        assert r["share"] == 0.5
        assert r["revenue"] == 450
        assert r["share_low"] <= r["share"] <= r["share_high"]


async def test_a_channel_view_and_a_campaign_filter(reporting: httpx.AsyncClient, story: Any) -> None:
    channels = (await reporting.get("/v1/reports/attribution", params={"by": "channel"})).json()["rows"]
    only_ads = (await reporting.get("/v1/reports/attribution", params={"campaign": "ads"})).json()["rows"]

    assert {r["channel"]: r["first_touch_revenue"] for r in channels} == {
        "paid_social": 900,
        "email": 0,
        "(unattributed)": 100,
    }
    assert {r["campaign"] for r in only_ads} == {"ads", "(unattributed)"}


async def test_csv_pages_walk_every_row_with_the_cursor(reporting: httpx.AsyncClient, story: Any) -> None:
    lines: list[str] = []
    params: dict[str, Any] = {"format": "csv", "limit": 1}
    for _ in range(10):
        response = await reporting.get("/v1/reports/attribution", params=params)
        assert response.headers["content-type"].startswith("text/csv")
        header, *body = response.text.splitlines()
        lines += body
        if "x-next-cursor" not in response.headers:
            break
        params["cursor"] = response.headers["x-next-cursor"]

    assert header.startswith("period,campaign,currency,first_touch_deals,")
    assert sorted(line.split(",")[1] for line in lines) == ["(unattributed)", "ads", "webinar"]


async def test_roi_of_a_campaign_from_its_costs_leads_and_attributed_revenue(
    reporting: httpx.AsyncClient, story: Any
) -> None:
    rows = (await reporting.get("/v1/reports/roi", params={"since": "2026-11-01", "until": "2026-11-30"})).json()

    ads = next(r for r in rows["rows"] if r["campaign"] == "ads")
    assert ads == {
        "campaign": "ads",
        "name": "Spring ads",
        "cost": 300,
        "leads": 2,
        "cost_per_lead": 150,
        "mqls": 1,
        "cost_per_mql": 300,
        "pipeline": 900,
        "attributed_revenue": 300,
        "roi": 0,
    }


async def test_the_funnel_counts_stages_and_conversion(reporting: httpx.AsyncClient, story: Any) -> None:
    rows = (await reporting.get("/v1/reports/funnel", params={"group_by": "channel"})).json()["rows"]

    stages = {(r["channel"], r["stage"]): (r["entered"], r["advanced"]) for r in rows}
    assert stages[("paid_social", "lead")] == (2, 1)
    assert stages[("paid_social", "mql")] == (1, 1)
    assert stages[("paid_social", "customer")] == (1, 0)


async def test_scorecards_of_both_teams(reporting: httpx.AsyncClient, story: Any) -> None:
    marketing = (await reporting.get("/v1/reports/scorecards/marketing")).json()
    sales = (await reporting.get("/v1/reports/scorecards/sales")).json()["rows"]

    november = marketing["rows"][0]
    assert (november["period"], november["mqls"], november["mqls_attainment"]) == ("2026-11", 1, 0.25)
    assert (november["revenue"], november["revenue_attainment"], november["mql_to_sql_rate"]) == (1000, 0.5, 1.0)
    assert marketing["rejection_reasons"] == [{"reason": "bad_fit", "rejections": 1}]
    assert sales[0]["rep_id"] == "rep-1"
    assert (sales[0]["assigned"], sales[0]["accepted"], sales[0]["acceptance_rate"]) == (2, 1, 0.5)
    assert (sales[0]["median_minutes_to_accept"], sales[0]["median_minutes_to_first_contact"]) == (30, 90)
    medium = (await reporting.get("/v1/reports/scorecards/sales", params={"segment": "medium"})).json()["rows"]
    assert (medium[0]["assigned"], medium[0]["rejected"]) == (1, 0)  # Carol has no segment


async def test_registry_edits_need_the_admin_token_and_bad_input_names_the_field(
    reporting: httpx.AsyncClient, story: Any
) -> None:
    body = {"name": "x", "channel": "web", "type": "promotion"}
    assert (await reporting.put("/v1/campaigns/x", json=body)).status_code == 401
    bad_type = await reporting.put("/v1/campaigns/x", json={**body, "type": "spam"}, headers=ADMIN)
    bad_csv = await reporting.post(
        "/v1/costs/import",
        content="campaign_id,period_start,period_end,amount,currency\nads,2026-11-01,2026-11-30,lots,EUR\n",
        headers={**ADMIN, "content-type": "text/csv"},
    )

    assert bad_type.status_code == 422
    assert bad_type.json()["errors"][0]["field"] == "type"
    assert bad_csv.status_code == 422
    assert bad_csv.json()["errors"][0]["field"] == "line 2"
    assert [c["id"] for c in (await reporting.get("/v1/campaigns")).json()] == ["ads", "webinar"]


async def test_replaying_the_topics_into_empty_read_models_gives_the_same_reports(
    reporting: httpx.AsyncClient, story: Any, settings: ReportingSettings, engine: AsyncEngine
) -> None:
    paths = ["/v1/reports/attribution", "/v1/reports/funnel?group_by=period,channel", "/v1/reports/roi",
             "/v1/reports/scorecards/marketing", "/v1/reports/scorecards/sales"]  # fmt: skip
    before = [(await reporting.get(p)).json() for p in paths]
    await empty_read_models(engine)

    async with reporting_client(settings.model_copy(update={"consumer_group": unique("rebuild")})) as rebuilt:

        async def same() -> bool:
            return [(await rebuilt.get(p)).json() for p in paths] == before

        await wait_until(same, timeout_s=30, what="the rebuilt reports equal the first ones")


async def test_the_dashboard_shows_every_report(reporting: httpx.AsyncClient, story: Any) -> None:
    response = await reporting.get("/dashboard", params={"since": "2026-11-01"})

    assert response.status_code == 200
    page = response.text
    for heading in (
        "Marketing scorecard",
        "Funnel",
        "Attributed revenue by model",
        "ROI by campaign",
        "Sales scorecard",
    ):
        assert heading in page
    assert page.count("<svg") == 3  # funnel, attribution, rejection reasons
    assert "Spring ads" in page
    assert "bad_fit" in page
    assert 'value="2026-11-01"' in page


async def test_the_reports_and_their_filters_are_in_the_openapi_document(reporting: httpx.AsyncClient) -> None:
    spec = (await reporting.get("/openapi.json")).json()

    attribution = spec["paths"]["/v1/reports/attribution"]["get"]
    names = {p["name"] for p in attribution["parameters"]}
    assert {"since", "until", "campaign", "channel", "segment", "persona", "format", "cursor", "limit"} <= names
    assert {"by", "table", "lookback_days", "touch_types", "half_life_days"} <= names
    assert set(attribution["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    for path in ("/v1/reports/funnel", "/v1/reports/roi", "/v1/reports/scorecards/marketing", "/v1/costs/import"):
        assert path in spec["paths"]
