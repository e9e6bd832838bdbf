"""What sales tools call: my queue (long-poll), one assignment, accept / reject / disposition, the brief.

Every lookup is scoped to what the caller may see (`auth.may_see`); anything else is a 404, so a rep
cannot even learn that another rep's lead exists.
"""

import asyncio
import base64
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing import lifecycle, store
from services.routing.auth import User, may_see
from services.routing.brief import Brief, EngagedContact, brief
from services.routing.lifecycle import Disposition, Moved, Refused
from services.routing.model import Id, RejectionReason, Rep
from services.routing.placement import hand_over, lead_facts, load_directory, publish, row_of, state_of
from services.routing.roundrobin import Choice
from services.routing.routes import current_user
from services.routing.routes import state_of as app_state
from services.routing.rules import Target
from shared.events import TOUCH_ADAPTER
from shared.web import Conflict, Forbidden, Invalid, NotFound

router = APIRouter(prefix="/v1", tags=["sales"])
AssignmentId = Annotated[str, Path(min_length=1, max_length=64)]
LONG_POLL_STEP_S = 0.25


class AssignmentOut(BaseModel):
    id: str
    lead_id: str
    rep_id: str | None
    team_id: str | None
    status: str
    rule: str
    score: float
    assigned_at: datetime
    accept_due: datetime | None
    contact_due: datetime | None
    accepted_at: datetime | None
    first_contact_at: datetime | None
    accept_breached: bool
    contact_breached: bool
    escalated_to: str | None
    reason: str | None
    note: str | None
    dispositions: list[dict[str, Any]]
    why: dict[str, Any] = Field(
        description="The rule that placed the lead and every rep considered, with skip reasons."
    )


class QueuePage(BaseModel):
    assignments: list[AssignmentOut]
    next_cursor: str | None


def _out(row: dict[str, Any]) -> AssignmentOut:
    return AssignmentOut(**{k: v for k, v in row.items() if k in AssignmentOut.model_fields})


def _cursor(row: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([row["score"], row["assigned_at"], row["id"]])).decode()


def _after(cursor: str | None) -> tuple[float, datetime, str] | None:
    if cursor is None:
        return None
    try:
        score, at, assignment_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(score), datetime.fromisoformat(at), str(assignment_id)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise Invalid("not a cursor this API gave out", field="cursor", rule="cursor") from None


def _scope(user: User, rep_id: str | None) -> dict[str, str | None]:
    """A rep's queue is their own; a manager's their team's; an admin's everything (optionally one rep's)."""
    if user.role == "rep":
        return {"rep_id": user.rep_id, "team_id": None}
    if user.role == "manager":
        return {"rep_id": rep_id, "team_id": user.team_id}
    return {"rep_id": rep_id, "team_id": None}


@router.get("/me", summary="Who the token belongs to")
async def me(user: User = Depends(current_user)) -> dict[str, str | None]:
    return {"id": user.id, "role": user.role, "rep_id": user.rep_id, "team_id": user.team_id}


@router.get(
    "/queue", summary="My open leads by priority (score, then recency), cursor-paginated, long-poll with `wait`"
)
async def get_queue(
    request: Request,
    user: User = Depends(current_user),
    cursor: Annotated[str | None, Query(max_length=500)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    wait: Annotated[float, Query(ge=0, le=60, description="Seconds to wait for a lead when the queue is empty.")] = 0,
    rep_id: Annotated[str | None, Query(max_length=64, description="Managers and admins: one rep's queue.")] = None,
) -> QueuePage:
    after, scope = _after(cursor), _scope(user, rep_id)
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        async with app_state(request).sessions() as session:
            rows = await store.queue(
                session, rep_id=scope["rep_id"], team_id=scope["team_id"], after=after, limit=limit + 1
            )
        if rows or asyncio.get_running_loop().time() >= deadline:
            break
        await asyncio.sleep(LONG_POLL_STEP_S)
    more = len(rows) > limit
    return QueuePage(
        assignments=[_out(r) for r in rows[:limit]], next_cursor=_cursor(rows[limit - 1]) if more else None
    )


async def visible_assignment(
    session: AsyncSession, user: User, assignment_id: str, *, lock: bool = False
) -> dict[str, Any]:
    row = await store.load_assignment(session, assignment_id, lock=lock)
    if row is None or not may_see(user, row["rep_id"], row["team_id"]):
        raise NotFound(f"no assignment {assignment_id}", field="assignment_id")
    return row


@router.get("/assignments/{assignment_id}", summary="One assignment with its why")
async def get_assignment(
    request: Request, assignment_id: AssignmentId, user: User = Depends(current_user)
) -> AssignmentOut:
    async with app_state(request).sessions() as session:
        return _out(await visible_assignment(session, user, assignment_id))


async def _save_and_publish(
    request: Request, session: AsyncSession, moved: Moved, extra: dict[str, Any]
) -> AssignmentOut:
    now = datetime.now(UTC)
    a = moved.assignment
    await store.save_assignment(session, a.id, {**row_of(a), **extra, "updated_at": now})
    teams = dict((await load_directory(session)).teams)
    topic = app_state(request).settings.topics.assignments
    cause = f"{a.id}:{type(moved.event).__name__}:{now.isoformat()}"
    await publish(session, topic, teams, cause, now, [moved.event])
    row = await store.load_assignment(session, a.id)
    assert row is not None
    return _out(row)


def _refused(exc: Refused) -> Conflict:
    return Conflict(str(exc), field=exc.field, rule="lifecycle")


@router.post("/assignments/{assignment_id}/accept", summary="Accept the lead (sales accepted, SAL)")
async def accept(request: Request, assignment_id: AssignmentId, user: User = Depends(current_user)) -> AssignmentOut:
    async with app_state(request).sessions.begin() as session:
        row = await visible_assignment(session, user, assignment_id, lock=True)
        try:
            moved = lifecycle.accept(state_of(row), datetime.now(UTC))
        except Refused as exc:
            raise _refused(exc) from None
        return await _save_and_publish(request, session, moved, {})


class RejectIn(BaseModel):
    reason: str = Field(min_length=1, max_length=64, description="An id from GET /v1/rejection-reasons.")
    note: str | None = Field(None, max_length=2000)


@router.post(
    "/assignments/{assignment_id}/reject", summary="Reject the lead with a reason: sales feedback to marketing"
)
async def reject(
    request: Request, assignment_id: AssignmentId, body: RejectIn, user: User = Depends(current_user)
) -> AssignmentOut:
    async with app_state(request).sessions.begin() as session:
        row = await visible_assignment(session, user, assignment_id, lock=True)
        found = await store.document(session, "rejection_reasons", body.reason)
        if found is None:
            raise Invalid(f"no rejection reason {body.reason!r}; see GET /v1/rejection-reasons", field="reason")
        try:
            moved = lifecycle.reject(state_of(row), body.reason, body.note)
        except Refused as exc:
            raise _refused(exc) from None
        if RejectionReason.model_validate(found).credit_back and row["team_id"] and row["rep_id"] and row["charge"]:
            await store.credit_back(session, row["team_id"], row["rep_id"], row["charge"])
        return await _save_and_publish(request, session, moved, {"reason": body.reason, "note": body.note})


class DispositionIn(BaseModel):
    disposition: Disposition
    note: str | None = Field(None, max_length=2000)


@router.post("/assignments/{assignment_id}/disposition", summary="Record an outcome of an accepted lead")
async def disposition(
    request: Request, assignment_id: AssignmentId, body: DispositionIn, user: User = Depends(current_user)
) -> AssignmentOut:
    now = datetime.now(UTC)
    async with app_state(request).sessions.begin() as session:
        row = await visible_assignment(session, user, assignment_id, lock=True)
        try:
            moved = lifecycle.record_disposition(state_of(row), body.disposition, body.note, now)
        except Refused as exc:
            raise _refused(exc) from None
        history = [*row["dispositions"], {"disposition": body.disposition, "note": body.note, "at": now.isoformat()}]
        return await _save_and_publish(request, session, moved, {"dispositions": history})


class ReassignIn(BaseModel):
    rep_id: Id


async def target_rep(session: AsyncSession, user: User, rep_id: str) -> Rep:
    rep = (await load_directory(session)).reps.get(rep_id)
    if rep is None or not rep.active:
        raise Invalid(f"no active rep {rep_id!r}", field="rep_id", rule="unknown-reference")
    if user.role == "manager" and user.team_id not in rep.team_ids:
        raise Invalid(f"rep {rep_id!r} is not in your team", field="rep_id", rule="team")
    return rep


@router.post(
    "/assignments/{assignment_id}/reassign",
    summary="Hand an open lead to another rep (managers: within their team; admins: anyone), e.g. from the open queue",
)
async def reassign_by_hand(
    request: Request, assignment_id: AssignmentId, body: ReassignIn, user: User = Depends(current_user)
) -> AssignmentOut:
    now, topic = datetime.now(UTC), app_state(request).settings.topics.assignments
    async with app_state(request).sessions.begin() as session:
        found = await visible_assignment(session, user, assignment_id)
        if user.role == "rep":
            raise Forbidden("only managers and admins hand leads over", field="authorization", rule="role")
        await store.lock_lead(session, found["lead_id"])  # lead before row, as placements and the SLA sweep lock
        row = await visible_assignment(session, user, assignment_id, lock=True)
        if row["status"] not in lifecycle.OPEN:
            raise Conflict(f"only an open lead can be handed over; this one is {row['status']}", field="status")
        rep = await target_rep(session, user, body.rep_id)
        choice = Choice(Target(rule="manual", rep_id=rep.id), rep.id, 0.0, ())
        lead, directory = await lead_facts(session, row), await load_directory(session)
        handed = await hand_over(session, topic, row, lead, choice, directory, now, "manual")
        stored = await store.load_assignment(session, handed["id"])
    assert stored is not None, "the assignment was written in this transaction"
    return _out(stored)


@router.get("/rejection-reasons", summary="The managed list of rejection reasons")
async def rejection_reasons(request: Request, user: User = Depends(current_user)) -> list[dict[str, Any]]:
    async with app_state(request).sessions() as session:
        return await store.documents_of(session, "rejection_reasons")


def _contacts(rows: Sequence[dict[str, Any]]) -> list[EngagedContact]:
    return [EngagedContact(**r) for r in rows]


@router.get("/leads/{lead_id}/brief", summary="What the rep needs before the call: touches, score, persona, account")
async def lead_brief(
    request: Request, lead_id: Annotated[str, Path(max_length=200)], user: User = Depends(current_user)
) -> Brief:
    async with app_state(request).sessions() as session:
        latest = await store.latest_assignment(session, lead_id)
        lead = await store.load_lead(session, lead_id)
        holder = (latest["rep_id"], latest["team_id"]) if latest else (None, None)
        if lead is None or not may_see(user, *holder):
            raise NotFound(f"no lead {lead_id}", field="lead_id")
        touches = [
            (t["occurred_at"], TOUCH_ADAPTER.validate_python(t["payload"]))
            for t in await store.touches_of(session, lead_id)
        ]
        contacts = await store.account_contacts(session, lead["account"], lead_id) if lead["account"] else []
    return brief(lead, touches, _contacts(contacts))
