"""The whole loop, four processes, public interfaces only: anonymous visits → form fill → merge → score → MQL →
the account owner → accepted → deal won → revenue attributed to the campaigns that earned it.

Ada browses anonymously from a paid-social ad (spring-ads, by UTM) and from the webinar campaign, then fills the
demo form with her work email and the same cookie: scoring merges the two into one lead and makes it an MQL;
routing hands it to the owner of her account on the target list (not to the team's round-robin); the owner
accepts with their own token; the CRM closes a 12,000 EUR deal. Bob, from another company, fills the same form
and is routed by the rule to the team, where the least-loaded rep (ties by id) rejects him. Reporting must show
exactly the splits worked out by hand below.
"""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Stack
from tests.e2e.counting import unique, wait_until
from tests.e2e.loop import Loop, put, running_loop, user_token, write_key

NOW = datetime.now(UTC).replace(microsecond=0)
T0 = NOW - timedelta(hours=6)
AMOUNT = 12000


def at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


@pytest.fixture
async def loop(stack: Stack, engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[Loop]:
    async for running in running_loop(stack, engine, tmp_path, "whole"):
        yield running


async def set_up_sales(routing: httpx.AsyncClient, account: str) -> None:
    """Team "field" (reps fa, fb) takes hot leads by rule; rep "owner" of team "named" owns Ada's account."""
    hours = {"days": [0, 1, 2, 3, 4, 5, 6], "start": "00:00:00", "end": "23:59:59"}
    sla = {"accept_minutes": 60 * 24 * 30, "first_contact_minutes": 60 * 24 * 60}
    for team in ("field", "named"):
        await put(routing, f"/v1/admin/teams/{team}", {"name": team, "sla": sla})
    for rep, team in (("fa", "field"), ("fb", "field"), ("owner", "named")):
        await put(routing, f"/v1/admin/reps/{rep}", {"name": rep, "team_ids": [team], "working_hours": hours})
    top10 = {"name": "Top 10", "rank": 0, "accounts": [{"account": account, "owner_rep_id": "owner"}]}
    await put(routing, "/v1/admin/account-lists/top10", top10)
    await put(routing, "/v1/admin/rejection-reasons/bad_fit", {"label": "Bad fit", "credit_back": True})
    rules = {"rules": [{"id": "hot", "when": {"min_score": 50}, "team_id": "field"}]}
    await put(routing, "/v1/admin/rules", rules)


async def register_campaigns(reporting: httpx.AsyncClient) -> None:
    ads = {
        "name": "Spring ads",
        "channel": "paid_social",
        "type": "lead_generation",
        "utm": [{"utm_campaign": "spring-ads"}],
    }
    webinar = {"name": "Q4 webinar", "channel": "email", "type": "nurture"}
    await put(reporting, "/v1/campaigns/spring-ads", ads)
    await put(reporting, "/v1/campaigns/webinar", webinar)


def demo_form(email: str, anonymous_id: str | None, hours: float, company: str) -> dict[str, Any]:
    return {
        "type": "leadflow.touch.form_fill.v1",
        "identity": {"email": email, "anonymous_id": anonymous_id},
        "occurred_at": at(hours),
        "form_id": "demo",
        "campaign": {"campaign_id": "webinar"},
        "url": "https://example.com/demo",
        "fields": {"job_title": "VP Sales", "company": company, "industry": "software", "employees": 400},
    }


async def send(ingest: httpx.AsyncClient, path: str, key: dict[str, str], body: Any) -> None:
    response = await ingest.post(path, json=body, headers=key)
    assert response.status_code == 202, response.text


async def test_anonymous_visits_to_won_revenue_through_all_four_services(loop: Loop) -> None:
    ada_anon, company = unique("cookie"), unique("acme")
    ada, bob = f"ada@{company}.com", f"bob@{unique('globex')}.com"
    async with (
        loop.client("ingest") as ingest,
        loop.client("scoring") as scoring,
        loop.client("routing") as routing,
        loop.client("reporting") as reporting,
    ):
        key = await write_key(ingest)
        # the target list names the account as people write it; scoring publishes it as `domain:<domain>`
        await set_up_sales(routing, f"{company}.com")
        await register_campaigns(reporting)

        visits = [
            {
                "type": "leadflow.touch.web_visit.v1",
                "identity": {"anonymous_id": ada_anon},
                "occurred_at": at(0),
                "url": "https://example.com/pricing?utm_campaign=spring-ads",
                "campaign": {"utm_source": "linkedin", "utm_medium": "paid_social", "utm_campaign": "spring-ads"},
            },
            {
                "type": "leadflow.touch.web_visit.v1",
                "identity": {"anonymous_id": ada_anon},
                "occurred_at": at(1),
                "url": "https://example.com/webinars/q4",
                "campaign": {"campaign_id": "webinar"},
            },
        ]
        await send(ingest, "/v1/events", key, visits)

        async def anonymous_lead_scored() -> bool:
            loop.assert_alive()
            return await loop.count("SELECT count(*) FROM scoring.touches") == 2

        # the cookie's history is applied before the form that names her (they sit on different partitions)
        await wait_until(anonymous_lead_scored, 60, "anonymous visits scored")
        await send(ingest, "/v1/events", key, demo_form(ada, ada_anon, 2, "Acme"))
        await send(ingest, "/v1/events", key, demo_form(bob, None, 2.5, "Globex"))

        async def both_assigned() -> bool:
            loop.assert_alive()
            return await loop.count("SELECT count(*) FROM routing.assignments") == 2

        await wait_until(both_assigned, 90, "both MQLs assigned")
        owner = await user_token(routing, "u-owner", "owner")
        fa = await user_token(routing, "u-fa", "fa")
        fb = await user_token(routing, "u-fb", "fb")

        queue = (await routing.get("/v1/queue", headers=owner)).json()["assignments"]
        assert [(a["rep_id"], a["rule"], a["status"]) for a in queue] == [("owner", "account:top10", "assigned")]
        ada_assignment = queue[0]
        bob_assignment = (await routing.get("/v1/queue", headers=fa)).json()["assignments"]
        assert [(a["rep_id"], a["rule"]) for a in bob_assignment] == [("fa", "hot")]
        assert (await routing.get("/v1/queue", headers=fb)).json()["assignments"] == []
        # another rep cannot act on Ada's lead
        assert (await routing.post(f"/v1/assignments/{ada_assignment['id']}/accept", headers=fa)).status_code == 404

        accepted = await routing.post(f"/v1/assignments/{ada_assignment['id']}/accept", headers=owner)
        assert accepted.status_code == 200, accepted.text
        reject = {"reason": "bad_fit", "note": "student project"}
        rejected = await routing.post(f"/v1/assignments/{bob_assignment[0]['id']}/reject", json=reject, headers=fa)
        assert rejected.status_code == 200, rejected.text

        async def accepted_in_scoring() -> bool:
            loop.assert_alive()
            lead = (await scoring.get(f"/v1/leads/{ada_assignment['lead_id']}")).json()
            return bool(lead["stage"] == "sal")

        # the deal opens after sales accepted, as it would: the two reach scoring on different topics
        await wait_until(accepted_in_scoring, 60, "Ada sales-accepted in scoring")
        deal = {"deal_id": unique("deal"), "amount": f"{AMOUNT}.00", "currency": "EUR", "contact_email": ada}
        await send(ingest, "/v1/deals", key, {"type": "leadflow.deal.created.v1", "occurred_at": at(3), **deal})
        await send(ingest, "/v1/deals", key, {"type": "leadflow.deal.closed_won.v1", "occurred_at": at(5), **deal})

        async def reported() -> bool:
            loop.assert_alive()
            attribution = (await reporting.get("/v1/reports/attribution")).json()
            sales = (await reporting.get("/v1/reports/scorecards/sales")).json()["rows"]
            funnel = (await reporting.get("/v1/reports/funnel", params={"period": "all"})).json()["rows"]
            customers = sum(r["entered"] for r in funnel if r["stage"] == "customer")
            decided = sum(r["rejected"] + r["accepted"] for r in sales)
            return bool(attribution["summary"]["won_deals"] == 1 and decided == 2 and customers == 1)

        await wait_until(reported, 90, "the deal and both decisions reported")
        await assert_reports(reporting)
        await assert_scoring(scoring, ada_assignment["lead_id"], ada, ada_anon)


async def assert_reports(reporting: httpx.AsyncClient) -> None:
    report = (await reporting.get("/v1/reports/attribution")).json()
    rows = {r["campaign"]: r for r in report["rows"]}
    # Ada's journey: spring-ads visit, webinar visit, webinar form fill (the lead's creation), then the deal
    assert {c: r["first_touch_revenue"] for c, r in rows.items()} == {"spring-ads": AMOUNT, "webinar": 0}
    assert {c: r["last_touch_revenue"] for c, r in rows.items()} == {"spring-ads": 0, "webinar": AMOUNT}
    assert {c: r["linear_revenue"] for c, r in rows.items()} == {"spring-ads": 4000, "webinar": 8000}
    assert {c: r["u_shaped_revenue"] for c, r in rows.items()} == {"spring-ads": 4800, "webinar": 7200}
    # W: the first touch is also the last before the lead's creation (the cookie's lead survives the merge): 60 %;
    # the form fill is the last before the deal's creation: 30 %; the one other touch gets the 10 %
    assert {c: r["w_shaped_revenue"] for c, r in rows.items()} == {"spring-ads": 7200, "webinar": 4800}
    # one converting path and Bob's null path (webinar only): both campaigns are needed, credit as linear
    assert {c: r["markov_revenue"] for c, r in rows.items()} == {"spring-ads": 4000, "webinar": 8000}
    weights = {hours: 0.5 ** (hours / (7 * 24)) for hours in (5, 4, 3)}  # hours before the close, 7-day half-life
    decayed = AMOUNT * weights[5] / sum(weights.values())
    assert rows["spring-ads"]["time_decay_revenue"] == pytest.approx(decayed, abs=0.01)
    for model in report["models"]:
        assert sum(r[f"{model}_revenue"] for r in rows.values()) == AMOUNT, model
    assert report["summary"] == {
        "won_deals": 1,
        "attributed_deals": 1,
        "null_paths": 1,
        "revenue": {"EUR": AMOUNT},
        "unattributed_revenue": {"EUR": 0},
    }

    sales = {r["rep_id"]: r for r in (await reporting.get("/v1/reports/scorecards/sales")).json()["rows"]}
    assert {rep: (r["assigned"], r["accepted"], r["rejected"]) for rep, r in sales.items()} == {
        "owner": (1, 1, 0),
        "fa": (1, 0, 1),
    }
    assert (sales["owner"]["acceptance_rate"], sales["fa"]["acceptance_rate"]) == (1.0, 0.0)

    marketing = (await reporting.get("/v1/reports/scorecards/marketing", params={"period": "all"})).json()
    assert marketing["rejection_reasons"] == [{"reason": "bad_fit", "rejections": 1}]
    (overall,) = marketing["rows"]
    assert (overall["mqls"], overall["revenue"]) == (2, AMOUNT)

    funnel = (await reporting.get("/v1/reports/funnel", params={"period": "all"})).json()["rows"]
    assert {r["stage"]: (r["entered"], r["advanced"]) for r in funnel} == {
        "subscriber": (2, 2),
        "lead": (2, 2),
        "mql": (2, 1),  # Bob was rejected as a bad fit: disqualified, not advanced
        "sal": (1, 1),
        "sql": (1, 1),  # skipped on the way to the opportunity: entered at the same time
        "opportunity": (1, 1),
        "customer": (1, 0),
    }


async def assert_scoring(scoring: httpx.AsyncClient, lead_id: str, email: str, anonymous_id: str) -> None:
    lead = (await scoring.get(f"/v1/leads/{lead_id}")).json()
    assert lead["email"] == email
    assert {i["identifier"] for i in lead["identities"]} == {f"anon:{anonymous_id}", email}
    assert [t["to_stage"] for t in lead["stage_history"]] == ["lead", "mql", "sal", "opportunity", "customer"]
    assert (lead["fit"], lead["grade"], lead["persona"], lead["segment"]) == (75, "A", "executive", "medium")
    engagement = [(b["rule_id"], b["points"]) for b in lead["score"]["engagement_breakdown"]]
    assert engagement == [("pricing_page", 10), ("demo_request", 40)]  # the anonymous visit counts after the merge
