"""ICP from won deals in the real database: top customers, lifts, proposed rules and model; bad parameters."""

from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.scoring.identity import lead_id_for
from services.scoring.model import validate_model
from shared.events import DealWon, FormFilled, Identity
from tests.e2e.counting import unique
from tests.integration.scoring.conftest import Send, wait_for_lead


async def customer(scoring: httpx.AsyncClient, send: Send, amount: str, **fields: Any) -> str:
    address = f"{unique('buyer')}@{unique('corp')}.com"
    await send(FormFilled(identity=Identity(email=address), form_id="contact", fields=fields))
    lead_id = lead_id_for(address)
    await wait_for_lead(scoring, lead_id)  # deals come on another topic: the lead must exist first
    await send(DealWon(deal_id=unique("deal"), contact_email=address, amount=Decimal(amount), currency="USD"))
    await wait_for_lead(scoring, lead_id, lambda lead: lead["stage"] == "customer")
    return address


async def test_the_biggest_customer_leads_the_icp_and_its_rare_values_become_proposed_fit_rules(
    scoring: httpx.AsyncClient, send: Send
) -> None:
    industry, country = unique("Aerospace"), "IS"
    big = await customer(scoring, send, "900000000", industry=industry, country=country, job_title="CFO")
    await customer(scoring, send, "5", industry="Retail", job_title="Engineer")
    await customer(scoring, send, "7", industry="Retail", job_title="Engineer")

    response = await scoring.get("/v1/icp", params={"top": 0.2, "min_support": 1, "min_lift": 1.5})

    assert response.status_code == 200, response.text
    icp = response.json()
    best = icp["top_customers"][0]
    assert (best["customer"], Decimal(best["revenue"])) == (f"domain:{big.split('@')[1]}", Decimal(900_000_000))
    assert "USD" in icp["currencies"]
    [rare] = [d for d in icp["distributions"]["industry"] if d["value"] == industry.casefold()]
    assert rare["overall"] == 1
    assert rare["lift"] > 1.5
    rules = {r["id"]: r for r in icp["proposed_rules"]}
    assert industry.casefold() in rules["icp_industry"]["values"]
    proposed = validate_model(icp["proposed_model"])
    assert {"icp_industry", "free_mail"} <= {r.id for r in proposed.fit}
    assert icp["proposed_model"]["engagement"] == (await scoring.get("/v1/model")).json()["model"]["engagement"]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"top": 0}, "top"), ({"top": 1.5}, "top"), ({"top": "most"}, "top"), ({"min_lift": 0.5}, "min_lift")],
)
async def test_bad_parameters_are_refused_with_problem_json_naming_them(
    scoring: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    response = await scoring.get("/v1/icp", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in {e["field"] for e in response.json()["errors"]}
