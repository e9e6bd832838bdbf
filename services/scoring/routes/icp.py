"""The ideal customer profile from won revenue, and a proposed model with its fit rules (ready to PUT)."""

import asyncio
from collections import defaultdict
from decimal import Decimal
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import store
from services.scoring.icp import Icp, LeadFacts, derive_icp, proposed_model
from services.scoring.lead import fit_values
from services.scoring.model import ScoringModel
from services.scoring.profile import Profile
from services.scoring.routes import state_of

router = APIRouter(prefix="/v1/icp", tags=["model"])
PAGE = 1000


async def lead_facts(session: AsyncSession, model: ScoringModel) -> tuple[list[LeadFacts], set[str]]:
    """Every lead with its won deals and revenue, page by page; and the currencies the revenue was in."""
    facts: list[LeadFacts] = []
    currencies: set[str] = set()
    after = ""
    while rows := await store.leads_page(session, after, PAGE):
        won: dict[str, list[Decimal]] = defaultdict(list)
        for outcome in await store.outcomes_of(session, [r["id"] for r in rows]):
            if outcome["kind"] == "won":
                won[outcome["lead_id"]].append(outcome["amount"] or Decimal(0))
                currencies |= {outcome["currency"]} if outcome["currency"] else set()
        facts += [_facts(row, won.get(row["id"], []), model) for row in rows]
        after = rows[-1]["id"]
    return facts, currencies


def _facts(row: dict[str, Any], won: list[Decimal], model: ScoringModel) -> LeadFacts:
    attributes = fit_values(Profile.model_validate(row["profile"]), model)
    return LeadFacts(row["id"], row["account_key"], attributes, row["persona"], len(won), sum(won, Decimal(0)))


def icp_view(icp: Icp, top: float, currencies: set[str]) -> dict[str, Any]:
    distributions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for x in icp.lifts:
        distributions[x.attribute].append(
            {"value": x.value, "cohort": x.cohort, "cohort_share": x.cohort_share, "overall": x.overall}
            | {"overall_share": x.overall_share, "lift": x.lift}
        )
    return {
        "top": top,
        "customers": icp.customers,
        "top_customers": [{"customer": c.key, "revenue": c.revenue} for c in icp.top],
        "currencies": sorted(currencies),
        "cohort_leads": icp.cohort_leads,
        "leads": icp.leads,
        "distributions": distributions,
        "proposed_rules": list(icp.rules),
    }


@router.get(
    "",
    summary="Derive the ICP from the top customers by won revenue; lift of each attribute value; proposed fit rules",
    description="Customers are accounts with a won deal (a lead without an account stands alone), ranked by "
    "summed won amounts. `proposed_model` is the active model with its attribute fit rules replaced by the "
    "proposed ones (free-mail and distance rules kept); PUT it to /v1/model to adopt it.",
)
async def get_icp(
    request: Request,
    top: Annotated[float, Query(gt=0, le=1, description="Fraction of customers by revenue; 0.1-0.2 is usual.")] = 0.2,
    min_lift: Annotated[float, Query(gt=1, le=1000, description="Least lift for a value to become a rule.")] = 1.5,
    min_support: Annotated[int, Query(ge=1, description="Least cohort leads showing a value.")] = 2,
) -> dict[str, Any]:
    state = state_of(request)
    async with state.sessions() as session:
        version, active = await state.models.active(session)
        facts, currencies = await lead_facts(session, active)
    icp = await asyncio.to_thread(partial(derive_icp, facts, top=top, min_lift=min_lift, min_support=min_support))
    model = proposed_model(active, icp.rules)
    return {**icp_view(icp, top, currencies), "model_version": version, "proposed_model": model.model_dump(mode="json")}
