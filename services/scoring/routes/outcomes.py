"""A lead's outcomes: won and lost deals, sales rejections with reason and note."""

from typing import Any

from fastapi import APIRouter, Request

from services.scoring import store
from services.scoring.routes import state_of
from shared.web import NotFound

router = APIRouter(prefix="/v1/leads", tags=["leads"])
FIELDS = ("kind", "deal_id", "amount", "currency", "reason", "note", "at")


@router.get("/{lead_id}/outcomes", summary="Won and lost deals and sales rejections of a lead, oldest first")
async def lead_outcomes(request: Request, lead_id: str) -> list[dict[str, Any]]:
    async with state_of(request).sessions() as session:
        if await store.load_lead(session, lead_id) is None:
            raise NotFound(f"no lead {lead_id}", field="lead_id")
        rows = await store.outcomes_of(session, [lead_id])
    return [{k: row[k] for k in FIELDS} for row in rows]
