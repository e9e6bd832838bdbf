"""Backtest a candidate model against the active one on every lead's stored touches and known outcomes."""

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import store
from services.scoring.backtest import Case, Outcomes, Replay, outcome_counts, replay, report
from services.scoring.consumer import timed
from services.scoring.model import ScoringModel
from services.scoring.profile import Profile
from services.scoring.routes import require_admin, state_of
from services.scoring.routes.model import MAX_MODEL_BYTES, parse_model
from services.scoring.rules import TimedTouch
from shared.web import read_body

router = APIRouter(prefix="/v1/model", tags=["model"])
PAGE = 500
CANDIDATE_SCHEMA = {"type": "object", "description": "A scoring model, as GET /v1/model returns it under `model`."}
Scored = tuple[Outcomes, Replay, Replay]  # outcomes, under the active model, under the candidate


def outcomes_of(rows: Sequence[dict[str, Any]]) -> Outcomes:
    return Outcomes(
        won=sum(1 for r in rows if r["kind"] == "won"),
        lost=sum(1 for r in rows if r["kind"] == "lost"),
        rejected=tuple(r["reason"] or "unspecified" for r in rows if r["kind"] == "rejected"),
        first_at=min((r["at"] for r in rows), default=None),
    )


async def cases_page(session: AsyncSession, after: str) -> list[Case]:
    """The next page of leads (by id) with their stored touches and outcomes."""
    rows = await store.leads_page(session, after, PAGE)
    ids = [r["id"] for r in rows]
    touches = {lead_id: timed(stored) for lead_id, stored in (await store.touches_by_lead(session, ids)).items()}
    outcomes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for o in await store.outcomes_of(session, ids) if ids else []:
        outcomes[o["lead_id"]].append(o)
    found = await store.load_accounts(session, {r["account_key"] for r in rows if r["account_key"]})
    accounts = {key: Profile.model_validate(profile) for key, profile in found.items()}
    return [_case(r, touches[r["id"]], outcomes_of(outcomes[r["id"]]), accounts) for r in rows]


def _case(row: dict[str, Any], touches: list[TimedTouch], outcomes: Outcomes, accounts: dict[str, Profile]) -> Case:
    account = accounts.get(row["account_key"], Profile()) if row["account_key"] else None
    profile = Profile.model_validate(row["profile"])
    return Case(row["id"], row["email"] is not None, profile, account, touches, outcomes)


def replay_both(cases: Sequence[Case], active: ScoringModel, candidate: ScoringModel) -> list[Scored]:
    return [(c.outcomes, replay(c, active), replay(c, candidate)) for c in cases]


@router.post(
    "/backtest",
    dependencies=[Depends(require_admin)],
    summary="Replay every lead's touches under a candidate model and the active one; compare against outcomes",
    description="Body: a scoring model, as for PUT /v1/model (an invalid one is refused with problem+json naming "
    "the field). Per model: MQL volume and rate, conversion of MQLs to won, precision and recall of becoming an "
    "MQL (won positive; lost or rejected by sales negative), rejected MQLs by reason, and the AUC of the highest "
    "score for won leads against all others. Touches after a lead's first outcome are not replayed.",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": CANDIDATE_SCHEMA}}}},
)
async def backtest(request: Request) -> dict[str, Any]:
    candidate = parse_model(await read_body(request, MAX_MODEL_BYTES))
    state = state_of(request)
    scored: list[Scored] = []
    async with state.sessions() as session:
        version, active = await state.models.active(session)
        after = ""
        while cases := await cases_page(session, after):
            scored += await asyncio.to_thread(replay_both, cases, active, candidate)  # keeps the loop serving
            after = cases[-1].lead_id
    return {
        "leads": len(scored),
        "outcomes": outcome_counts(o for o, _, _ in scored),
        "active": {"version": version, **asdict(report((o, r) for o, r, _ in scored))},
        "candidate": asdict(report((o, r) for o, _, r in scored)),
    }
