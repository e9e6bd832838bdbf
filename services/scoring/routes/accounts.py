"""Accounts rolled up from their contacts: the account score and the buying group's coverage."""

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request

from services.scoring import store
from services.scoring.profile import buying_group_coverage
from services.scoring.routes import state_of
from services.scoring.routes.leads import summary
from shared.web import NotFound

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])


def rollup(key: str, contacts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Fit is the best contact's; engagement adds up over contacts (as of each one's last touch).

    A persona counts as engaged when one of its contacts has positive engagement.
    """
    fit = max(c["fit"] for c in contacts)
    engagement = sum(c["engagement"] for c in contacts)
    coverage = buying_group_coverage(c["persona"] for c in contacts if c["persona"] and c["engagement"] > 0)
    return {
        "account": key,
        "fit": fit,
        "engagement": engagement,
        "score": fit + engagement,
        "buying_group": {"engaged": coverage.engaged, "missing": coverage.missing, "complete": coverage.complete},
        "contacts": [summary(c) for c in contacts],
    }


@router.get("/{account_key}", summary="An account (`domain:acme.com`, `company:42`): score, buying group, contacts")
async def get_account(request: Request, account_key: str) -> dict[str, Any]:
    async with state_of(request).sessions() as session:
        contacts = await store.list_leads(session, store.LeadFilter(account=account_key), limit=1000)
    if not contacts:
        raise NotFound(f"no lead belongs to account {account_key}", field="account_key")
    return rollup(account_key, contacts)
