"""Outcomes and sales feedback: what became of a lead after marketing handed it over.

Won and lost deals and sales rejections are kept per lead (`scoring.outcomes`) for the ICP and the
backtest. Routing's assignment events move the lead's stage (accepted → SAL, qualified → SQL,
rejected → recycled or disqualified, see `lifecycle.sales_cause`). Runs inside the consumer's
transaction; events for leads scoring does not know (never seen, or erased) change nothing.
"""

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import store
from services.scoring.lifecycle import Transition, advance, sales_cause
from shared.events import AssignmentData, AssignmentRejected, DealData, DealLost, DealWon, DispositionRecorded


def deal_outcome(lead_id: str, deal: DealData, at: datetime) -> dict[str, Any] | None:
    """A closed deal's outcome row; its id is the deal's, so the same deal reported twice counts once."""
    if not isinstance(deal, DealWon | DealLost):
        return None
    kind = "won" if isinstance(deal, DealWon) else "lost"
    reason = deal.reason if isinstance(deal, DealLost) else None
    return {
        "id": f"{kind}:{deal.deal_id}",
        "lead_id": lead_id,
        "kind": kind,
        "deal_id": deal.deal_id,
        "amount": deal.amount,
        "currency": deal.currency,
        "reason": reason,
        "at": at,
    }


def rejection_outcome(event_id: str, feedback: AssignmentData, at: datetime) -> dict[str, Any] | None:
    """Sales turned the lead down: an assignment rejected with its reason, or a `disqualified` disposition."""
    if isinstance(feedback, AssignmentRejected):
        reason, note = feedback.reason, feedback.note
    elif isinstance(feedback, DispositionRecorded) and feedback.disposition == "disqualified":
        reason, note = "disqualified", feedback.note
    else:
        return None
    return {"id": event_id, "lead_id": feedback.lead_id, "kind": "rejected", "reason": reason, "note": note, "at": at}


async def record_deal(session: AsyncSession, lead_id: str, deal: DealData, at: datetime) -> None:
    if (row := deal_outcome(lead_id, deal, at)) is not None:
        await store.add_outcome(session, row)


async def apply_feedback(
    session: AsyncSession, event_id: str, feedback: AssignmentData, at: datetime
) -> tuple[str, Transition] | None:
    """Record a rejection and move the stage sales' feedback implies; the move, if any, for a lead event."""
    lead_id = await store.lead_by_id(session, feedback.lead_id)  # locked until the transaction ends
    if lead_id is None:
        return None
    if (row := rejection_outcome(event_id, feedback, at)) is not None:
        await store.add_outcome(session, row)
    cause = sales_cause(feedback)
    history = [Transition.model_validate(t) for t in await store.transitions_of(session, lead_id)]
    move = advance(history, cause, at=at) if cause is not None else None
    if move is None:
        return None
    await store.add_transition(session, lead_id, _transition_row(move))
    await store.save_lead(session, lead_id, {"stage": move.to_stage.value})
    return lead_id, move


def _transition_row(t: Transition) -> dict[str, Any]:
    from_stage = t.from_stage.value if t.from_stage else None
    return {"from_stage": from_stage, "to_stage": t.to_stage.value, "cause": t.cause, "detail": t.detail, "at": t.at}
