"""Accounts rolled up from their contacts: the account score and the buying group's coverage."""

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request

from services.scoring import store
from services.scoring.consumer import account_of
from services.scoring.profile import Profile, buying_group_coverage
from services.scoring.routes import state_of
from services.scoring.routes.leads import summary
from shared.web import NotFound

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])


def rollup(
    key: str, contacts: Sequence[dict[str, Any]], facts: Profile | None, buying_group: Sequence[str]
) -> dict[str, Any]:
    """Fit is the best contact's; engagement adds up over contacts (as of each one's last touch).

    A persona counts as engaged when one of its contacts has positive engagement.
    """
    fit = max(c["fit"] for c in contacts)
    engagement = sum(c["engagement"] for c in contacts)
    engaged = (c["persona"] for c in contacts if c["persona"] and c["engagement"] > 0)
    coverage = buying_group_coverage(engaged, buying_group)
    return {
        "account": key,
        "attributes": facts.model_dump(mode="json")["attributes"] if facts else {},
        "fit": fit,
        "engagement": engagement,
        "score": fit + engagement,
        "buying_group": {"engaged": coverage.engaged, "missing": coverage.missing, "complete": coverage.complete},
        "contacts": [summary(c) for c in contacts],
    }


@router.get(
    "/{account_key}",
    summary="An account (`domain:acme.com`, `company:42`): company facts, score, buying group, contacts",
    description="`attributes` are the company facts collected from every contact (latest value wins, with its "
    "source and time); fit rules with `on: account` read them. The buying group is the active model's.",
)
async def get_account(request: Request, account_key: str) -> dict[str, Any]:
    state = state_of(request)
    async with state.sessions() as session:
        contacts = await store.list_leads(session, store.LeadFilter(account=account_key), limit=1000)
        facts = await account_of(session, account_key)
        _, model = await state.models.active(session)
    if not contacts:
        raise NotFound(f"no lead belongs to account {account_key}", field="account_key")
    return rollup(account_key, contacts, facts, model.buying_group)
