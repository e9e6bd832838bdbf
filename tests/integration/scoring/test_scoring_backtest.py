"""Backtests on the real database: a candidate compared with the active model; invalid candidates refused.

Other modules' leads share the database, so the assertions compare the two models on the leads this
module adds (a rule only they can fire) rather than absolute totals.
"""

from decimal import Decimal
from typing import Any

import httpx

from services.scoring.identity import lead_id_for
from shared.events import AssignmentRejected, DealWon, Identity, WebVisited
from tests.conftest import ADMIN_TOKEN
from tests.e2e.counting import unique, wait_until
from tests.integration.scoring.conftest import Feedback, Send, email, wait_for_lead

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


async def active_model(scoring: httpx.AsyncClient) -> dict[str, Any]:
    model: dict[str, Any] = (await scoring.get("/v1/model")).json()["model"]
    return model


async def visitor(scoring: httpx.AsyncClient, send: Send, path: str) -> tuple[str, str]:
    address = email()
    await send(WebVisited(identity=Identity(email=address), url=f"https://acme.test{path}"))
    lead_id = lead_id_for(address)
    await wait_for_lead(scoring, lead_id)
    return address, lead_id


async def has_outcome(scoring: httpx.AsyncClient, lead_id: str) -> bool:
    return bool((await scoring.get(f"/v1/leads/{lead_id}/outcomes")).json())


async def test_a_candidate_rule_that_catches_the_won_and_the_rejected_lead_shows_side_by_side(
    scoring: httpx.AsyncClient, send: Send, feedback: Feedback
) -> None:
    path, reason = f"/{unique('roi-calculator')}", unique("no_budget")
    won_address, won = await visitor(scoring, send, path)
    _, rejected = await visitor(scoring, send, path)
    await send(DealWon(deal_id=unique("d"), contact_email=won_address, amount=Decimal(1000), currency="USD"))
    await feedback(AssignmentRejected(lead_id=rejected, assignment_id=unique("a"), reason=reason))
    await wait_until(lambda: has_outcome(scoring, won), what="won outcome")
    await wait_until(lambda: has_outcome(scoring, rejected), what="rejection outcome")
    candidate = await active_model(scoring)
    candidate["engagement"] = [
        *candidate["engagement"],
        {"id": "roi", "touch": "web_visit", "when": {"url": f"{path}*"}, "points": 1000},
    ]
    # Our visitors have no profile (the lowest grade): let that grade qualify, far above what other leads reach.
    candidate["qualification"]["min_engagement"][candidate["lowest_grade"]] = 900

    response = await scoring.post("/v1/model/backtest", json=candidate, headers=ADMIN)

    assert response.status_code == 200, response.text
    result = response.json()
    active, new = result["active"], result["candidate"]
    assert result["leads"] == active["leads"] == new["leads"] >= 2
    assert result["outcomes"]["won"] >= 1
    assert result["outcomes"]["rejected_by_reason"][reason] == 1
    assert (new["mqls"], new["mql_won"], new["mql_rejected"]) == (
        active["mqls"] + 2,
        active["mql_won"] + 1,
        active["mql_rejected"] + 1,
    )
    assert new["mql_rejected_by_reason"][reason] == 1
    assert reason not in active["mql_rejected_by_reason"]
    assert new["recall"] > (active["recall"] or 0)
    assert 0 <= new["auc"] <= 1


async def test_the_active_model_as_candidate_reports_the_same_numbers(scoring: httpx.AsyncClient, send: Send) -> None:
    await visitor(scoring, send, "/pricing")
    response = await scoring.post("/v1/model/backtest", json=await active_model(scoring), headers=ADMIN)
    assert response.status_code == 200, response.text
    result = response.json()
    assert {k: v for k, v in result["active"].items() if k != "version"} == result["candidate"]


async def test_an_invalid_candidate_is_refused_with_problem_json_naming_the_field(scoring: httpx.AsyncClient) -> None:
    candidate = await active_model(scoring)
    candidate["engagement"][0]["points"] = 5000

    response = await scoring.post("/v1/model/backtest", json=candidate, headers=ADMIN)

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "engagement[0].points" in {e["field"] for e in response.json()["errors"]}


async def test_a_backtest_needs_admin_credentials(scoring: httpx.AsyncClient) -> None:
    response = await scoring.post("/v1/model/backtest", json=await active_model(scoring))
    assert response.status_code == 401
