"""The edge of a placement: load the directory, lock the lead and the teams, decide, save, publish.

Every write goes through the caller's session (the consume loop's or the sweep's transaction), so
a decision, its round-robin charge, its events and its webhook deliveries commit together or not at all.
"""

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing import store
from services.routing.directory import Directory, charged, decide, lead_targets
from services.routing.lifecycle import Assignment
from services.routing.model import DOCUMENTS, RuleSet, Sla, Team
from services.routing.roundrobin import Choice
from services.routing.rules import LeadFacts
from services.routing.sla import business_deadline
from shared import outbox
from shared.events import AssignmentData, CloudEvent, LeadAssigned, LeadReassigned, content_id

SOURCE = "leadflow/routing"


async def load_directory(session: AsyncSession) -> Directory:
    by_kind: dict[str, dict[str, Any]] = {kind: {} for kind in DOCUMENTS}
    for row in await store.all_documents(session):
        by_kind[row["kind"]][row["id"]] = DOCUMENTS[row["kind"]].model_validate(row["body"])
    active = await store.active_rules(session)
    return Directory(
        reps=by_kind["reps"],
        teams=by_kind["teams"],
        territories=by_kind["territories"],
        lists=by_kind["account_lists"],
        rules=RuleSet.model_validate(active["body"]) if active else RuleSet(),
    )


def facts_of(lead: dict[str, Any]) -> LeadFacts:
    profile = lead.get("profile") or {}
    total = lead.get("total")
    score = total if total is not None else (lead.get("fit") or 0.0) + (lead.get("engagement") or 0.0)
    return LeadFacts(
        lead_id=lead["id"],
        score=float(score),
        segment=lead.get("segment"),
        persona=lead.get("persona"),
        account=lead.get("account"),
        country=profile.get("country"),
        region=profile.get("region"),
        campaigns=tuple(lead.get("campaigns") or ()),
    )


def webhook_secret(secret_key: str, team_id: str) -> str:
    """Each team's signing secret, derived rather than stored: nothing to leak from the database."""
    return hmac.new(secret_key.encode(), f"routing-webhook:{team_id}".encode(), hashlib.sha256).hexdigest()


def assignment_event(cause_id: str, n: int, at: datetime, data: AssignmentData) -> CloudEvent[Any]:
    """Ids derived from the cause: the same MQL event or breach always yields the same event ids."""
    event_type: str = getattr(data, "type")  # noqa: B009  # every concrete payload declares it
    event_id = content_id(cause_id, n, event_type, data.assignment_id)
    return CloudEvent(id=event_id, source=SOURCE, type=event_type, time=at, subject=data.lead_id, data=data)


async def publish(
    session: AsyncSession,
    topic: str,
    teams: dict[str, Team],
    cause_id: str,
    at: datetime,
    events: Sequence[AssignmentData],
) -> None:
    """Outbox rows for the topic, and a webhook delivery for the team's CRM when it has one."""
    for n, data in enumerate(events):
        event = assignment_event(cause_id, n, at, data)
        await outbox.add(session, store.TABLES, topic, event)
        team = teams.get(data.team_id or "")
        if team is not None and team.crm_webhook_url is not None:
            body = orjson.dumps({"id": event.id, "type": event.type, "time": at, "data": data.model_dump(mode="json")})
            row = {"team_id": team.id, "event_id": event.id, "event_type": event.type, "lead_id": data.lead_id}
            await store.add_delivery(
                session, {**row, "url": str(team.crm_webhook_url), "body": body, "next_attempt_at": at}
            )


def _team_and_sla(choice: Choice, directory: Directory) -> tuple[str | None, Sla]:
    """A lead placed on a rep directly (account owner, rep rule) counts against the rep's first team."""
    rep = directory.reps.get(choice.rep_id or "")
    team_id = choice.target.team_id or (rep.team_ids[0] if rep and rep.team_ids else None)
    team = directory.teams.get(team_id or "")
    return team_id, team.sla if team else Sla()


def new_assignment(
    assignment_id: str, lead: LeadFacts, choice: Choice, directory: Directory, at: datetime
) -> dict[str, Any]:
    team_id, sla = _team_and_sla(choice, directory)
    rep = directory.reps.get(choice.rep_id or "")
    accept_due = contact_due = None
    if rep is not None:
        accept_due = business_deadline(at, sla.accept_minutes, rep.working_hours, rep.time_zone)
        contact_due = business_deadline(at, sla.first_contact_minutes, rep.working_hours, rep.time_zone)
    why = {
        "rule": choice.target.rule,
        "target": {"rep_id": choice.target.rep_id, "team_id": choice.target.team_id},
        "considered": [
            {"rule": c.rule, "rep_id": c.rep_id, "skipped": c.skipped, "load": c.load} for c in choice.considered
        ],
        "summary": choice.why(),
    }
    return {
        "id": assignment_id,
        "lead_id": lead.lead_id,
        "rep_id": choice.rep_id,
        "team_id": team_id,
        "status": "assigned" if choice.rep_id else "queued",
        "rule": choice.target.rule,
        "why": why,
        "charge": choice.charge,
        "score": lead.score,
        "assigned_at": at,
        "accept_due": accept_due,
        "contact_due": contact_due,
        "updated_at": at,
    }


async def decide_under_locks(
    session: AsyncSession, lead: LeadFacts, directory: Directory, at: datetime, excluded: frozenset[str]
) -> Choice:
    """Decide with the targets' teams locked, and charge the round-robin."""
    found = lead_targets(lead, directory)
    loads = await store.locked_loads(session, [t.team_id for t in found if t.team_id])
    rep_ids = {t.rep_id for t in found if t.rep_id} | {
        r.id for t in found if t.team_id for r in directory.members(t.team_id)
    }
    open_leads = await store.open_counts(session, sorted(rep_ids))
    choice = decide(lead, directory, loads, open_leads, at, excluded)
    after = charged(choice, loads)
    await store.save_loads(session, {k: v for k, v in after.items() if loads.get(k) != v})
    return choice


async def lock_for_placements(session: AsyncSession, lead_ids: Sequence[str], directory: Directory) -> None:
    """Before placing several leads in one transaction: every lead's lock, then every team its placement
    may charge, each set in sorted order. Taken one placement at a time instead, two batches holding leads
    of the same two teams would take the teams' locks in opposite orders and deadlock."""
    for lead_id in sorted(set(lead_ids)):
        await store.lock_lead(session, lead_id)
    rows = await store.load_leads(session, lead_ids)
    teams = {t.team_id for row in rows for t in lead_targets(facts_of(row), directory) if t.team_id}
    await store.locked_loads(session, sorted(teams))


async def place(
    session: AsyncSession, topic: str, lead_id: str, at: datetime, cause_id: str, directory: Directory | None = None
) -> dict[str, Any] | None:
    """Assign a lead that became MQL, unless it already has an open assignment; None when nothing was done.

    `directory`: the one this transaction already loaded, when it places several leads.
    """
    await store.lock_lead(session, lead_id)
    row = await store.load_lead(session, lead_id)
    if row is None or await store.open_assignment(session, lead_id) is not None:
        return None
    lead = facts_of(row)
    directory = directory or await load_directory(session)
    choice = await decide_under_locks(session, lead, directory, at, frozenset())
    assignment = new_assignment(content_id(cause_id, "assignment", lead_id), lead, choice, directory, at)
    await store.add_assignment(session, assignment)
    assigned = LeadAssigned(
        lead_id=lead_id,
        assignment_id=assignment["id"],
        rep_id=choice.rep_id,
        team_id=assignment["team_id"],
        rule=choice.target.rule,
        why=choice.why(),
    )
    await publish(session, topic, dict(directory.teams), cause_id, at, [assigned])
    return assignment


def state_of(row: dict[str, Any]) -> Assignment:
    fields = Assignment.__dataclass_fields__
    return Assignment(**{k: v for k, v in row.items() if k in fields})


def row_of(a: Assignment) -> dict[str, Any]:
    return {
        "status": a.status,
        "accepted_at": a.accepted_at,
        "first_contact_at": a.first_contact_at,
        "accept_breached": a.accept_breached,
        "contact_breached": a.contact_breached,
    }


async def hand_over(
    session: AsyncSession,
    topic: str,
    row: dict[str, Any],
    lead: LeadFacts,
    choice: Choice,
    directory: Directory,
    at: datetime,
    cause: str,
) -> dict[str, Any]:
    """Close the assignment as reassigned (its rep's turn credited back) and open the choice's; `reassigned`."""
    await store.save_assignment(session, row["id"], {"status": "reassigned", "updated_at": at})
    if row["team_id"] and row["rep_id"] and row["charge"]:
        await store.credit_back(session, row["team_id"], row["rep_id"], row["charge"])
    cause_id = f"reassign:{row['id']}"  # an assignment is handed over at most once: it closes
    assignment = new_assignment(content_id(cause_id, "assignment", lead.lead_id), lead, choice, directory, at)
    await store.add_assignment(session, assignment)
    moved = LeadReassigned(
        lead_id=lead.lead_id,
        assignment_id=assignment["id"],
        rep_id=choice.rep_id,
        team_id=assignment["team_id"],
        from_rep_id=row["rep_id"],
        cause=cause,
    )
    await publish(session, topic, dict(directory.teams), cause_id, at, [moved])
    return assignment


async def lead_facts(session: AsyncSession, row: dict[str, Any]) -> LeadFacts:
    """The assigned lead as routing knows it now; only its id and score if it was erased meanwhile."""
    lead_row = await store.load_lead(session, row["lead_id"])
    return facts_of(lead_row) if lead_row else LeadFacts(lead_id=row["lead_id"], score=row["score"])


async def reassign(
    session: AsyncSession, topic: str, row: dict[str, Any], directory: Directory, at: datetime
) -> dict[str, Any] | None:
    """After a missed accept SLA: the next eligible rep (not the one who missed it) takes the lead.

    None when nobody else can take it: the lead stays, escalated.
    """
    lead = await lead_facts(session, row)
    choice = await decide_under_locks(session, lead, directory, at, frozenset({row["rep_id"]}))
    if choice.rep_id is None:
        return None
    return await hand_over(session, topic, row, lead, choice, directory, at, "sla_breached")
