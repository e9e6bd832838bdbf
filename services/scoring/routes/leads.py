"""Lead reads: one lead explained (score breakdown now or `as_of`, stage history, timeline), and a filtered list."""

import base64
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from services.scoring import store
from services.scoring.consumer import account_of, lead_event, state_of, timed, timed_touches
from services.scoring.lead import fit_of
from services.scoring.routes import require_admin
from services.scoring.routes import state_of as app_state
from services.scoring.rules import Engagement, Fit, engagement
from shared import outbox
from shared.events import LeadErased
from shared.web import Invalid, NotFound

router = APIRouter(prefix="/v1/leads", tags=["leads"])


MAX_SCAN = 2000  # leads looked at per request when filtering by current score
SCAN_CHUNK = 250


class LeadPage(BaseModel):
    leads: list[dict[str, Any]]
    next_cursor: str | None


def score_view(f: Fit, e: Engagement, version: int, now: datetime) -> dict[str, Any]:
    return {
        "as_of": now,
        "model_version": version,
        "fit": f.total,
        "engagement": e.total,
        "total": f.total + e.total,
        "grade": f.grade,
        "fit_breakdown": [{"rule_id": m.rule_id, "points": m.points, "value": m.value} for m in f.breakdown],
        "engagement_breakdown": [
            {"rule_id": c.rule_id, "fired_at": c.fired_at, "points": c.points, "points_now": c.points_now}
            for c in e.breakdown
        ],
    }


def summary(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("id", "email", "stage", "persona", "segment", "account_key", "fit", "engagement", "grade")
    return {**{k: row[k] for k in keep}, "model_version": row["model_version"], "updated_at": row["updated_at"]}


def timeline(touches: Sequence[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    return [
        {"event_id": t["event_id"], "type": t["type"], "occurred_at": t["occurred_at"], "touch": t["payload"]}
        for t in touches
        if t["occurred_at"] <= now
    ]


@router.get("/{lead_id}", summary="A lead with its identities, profile, stage history, score breakdown and touches")
async def get_lead(request: Request, lead_id: str, as_of: Annotated[datetime | None, Query()] = None) -> dict[str, Any]:
    now = _utc(as_of) if as_of else datetime.now(UTC)
    state = app_state(request)
    async with state.sessions() as session:
        row = await store.load_lead(session, lead_id)
        if row is None:
            raise NotFound(f"no lead {lead_id}", field="lead_id")
        lead = state_of(row, await store.transitions_of(session, lead_id))
        version, model = await state.models.active(session)
        touches = await store.touches_of(session, lead_id)
        identities = await store.identifiers_of(session, lead_id)
        timed = await timed_touches(session, lead_id)
        account = await account_of(session, lead.account)
    score = score_view(fit_of(lead, account, model), engagement(timed, model, now), version, now)
    return {
        **summary(row),
        "identities": [{"identifier": i["identifier"], "linked_at": i["linked_at"]} for i in identities],
        "profile": lead.profile.model_dump(mode="json")["attributes"],
        "stage_history": [t.model_dump(mode="json") for t in lead.history if t.at <= now],
        "score": score,
        "timeline": timeline(touches, now),
    }


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)


@router.get(
    "",
    summary="Leads by stage, score range, segment, persona, account or update time; cursor pagination",
    description="Scores are current: engagement decayed to now, as `score_now` shows, and `min_score` / "
    f"`max_score` compare it. A page may hold fewer than `limit` leads and still a `next_cursor` when "
    f"{MAX_SCAN} leads were looked at without filling it; follow the cursor until it is null.",
)
async def list_leads(
    request: Request,
    stage: str | None = None,
    segment: str | None = None,
    persona: str | None = None,
    account: str | None = None,
    min_score: float | None = None,
    max_score: float | None = None,
    updated_since: datetime | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> LeadPage:
    f = store.LeadFilter(stage, segment, persona, account, updated_since, _decode_cursor(cursor) if cursor else None)
    now, state = datetime.now(UTC), app_state(request)
    found: list[dict[str, Any]] = []
    scanned, exhausted = 0, False
    async with state.sessions() as session:
        _, model = await state.models.active(session)
        while len(found) <= limit and scanned < MAX_SCAN and not exhausted:
            rows = await store.list_leads(session, f, SCAN_CHUNK)
            exhausted = len(rows) < SCAN_CHUNK
            stored = await store.touches_by_lead(session, [r["id"] for r in rows])
            for row in rows:
                scanned += 1
                f = replace(f, after=row["id"])
                lead = current(row, engagement(timed(stored[row["id"]]), model, now).total, now)
                if _within(lead["score_now"], min_score, max_score):
                    found.append(lead)
                if len(found) > limit:
                    break
    page = found[:limit]
    if len(found) > limit:  # the next page starts after this page's last lead
        next_cursor = _encode_cursor(page[-1]["id"])
    else:  # all looked at, or the scan stopped at MAX_SCAN: go on after the last one looked at
        next_cursor = None if exhausted else _encode_cursor(f.after)
    return LeadPage(leads=page, next_cursor=next_cursor)


def current(row: dict[str, Any], engagement_now: float, now: datetime) -> dict[str, Any]:
    return {**summary(row), "engagement_now": engagement_now, "score_now": row["fit"] + engagement_now, "as_of": now}


def _within(score: float, low: float | None, high: float | None) -> bool:
    return (low is None or score >= low) and (high is None or score <= high)


def _encode_cursor(lead_id: str | None) -> str | None:
    return base64.urlsafe_b64encode(lead_id.encode()).decode() if lead_id else None


def _decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode()
    except ValueError:
        raise Invalid("not a cursor this API gave out", field="cursor", rule="cursor") from None


@router.delete(
    "/{lead_id}",
    status_code=204,
    dependencies=[Depends(require_admin)],
    summary="Erase a lead's personal data and publish leadflow.lead.erased.v1 so other services forget it",
    description="After the erased event comes a tombstone (the lead id as key, no value): on a compacted "
    "`leadflow.leads` topic it removes the lead's earlier events, which carry its email and profile.",
)
async def erase_lead(request: Request, lead_id: str) -> Response:
    state = app_state(request)
    async with state.sessions.begin() as session:
        if await store.lead_by_id(session, lead_id) is None:
            raise NotFound(f"no lead {lead_id}", field="lead_id")
        await store.erase(session, lead_id)
        erased = lead_event(f"erase:{uuid.uuid4()}", datetime.now(UTC), LeadErased(lead_id=lead_id), 0)
        await outbox.add(session, store.TABLES, state.settings.topics.leads, erased)
        await outbox.add_tombstone(session, store.TABLES, state.settings.topics.leads, lead_id.encode())
    return Response(status_code=204)
