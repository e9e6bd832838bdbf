"""The SLA sweep: the one place routing reads the clock to change an assignment.

Each pass locks due assignments (other replicas skip them), reports each missed SLA once with
`sla_breached`, and on a missed accept either reassigns (credit-back to the rep who missed it) or,
when the team says so or nobody else can take it, escalates to the team's manager.
"""

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.routing import store
from services.routing.lifecycle import breach
from services.routing.placement import load_directory, publish, reassign, row_of, state_of
from shared.consumer import retry_transient
from shared.events import SlaBreached

log = logging.getLogger(__name__)


async def check_one(session: AsyncSession, topic: str, assignment_id: str, lead_id: str, now: datetime) -> bool:
    """Report and act on one due assignment, under its lead's lock like every placement; False if not due."""
    await store.lock_lead(session, lead_id)
    row = await store.lock_if_still_due(session, assignment_id, now)
    moved = breach(state_of(row), now) if row else None
    if row is None or moved is None:
        return False
    assert isinstance(moved.event, SlaBreached)
    directory = await load_directory(session)
    teams = dict(directory.teams)
    await store.save_assignment(session, row["id"], {**row_of(moved.assignment), "updated_at": now})
    await publish(session, topic, teams, f"breach:{row['id']}:{moved.event.sla}", now, [moved.event])
    team = teams.get(row["team_id"] or "")
    by_reassign = moved.event.sla == "accept" and (team is None or team.on_breach == "reassign")
    if not by_reassign or await reassign(session, topic, row, directory, now) is None:
        await store.save_assignment(session, row["id"], {"escalated_to": team.manager_rep_id if team else None})
    return True


async def sweep_once(sessions: async_sessionmaker[AsyncSession], topic: str, now: datetime, size: int = 100) -> int:
    """Up to `size` due assignments, each in its own transaction; returns how many breaches it reported."""
    async with sessions() as session:
        due = await store.due_for_sla_check(session, now, size)
    reported = 0
    for assignment_id, lead_id in due:
        async with sessions.begin() as session:
            reported += await check_one(session, topic, assignment_id, lead_id, now)
    return reported


async def sweep_forever(sessions: async_sessionmaker[AsyncSession], topic: str, every_s: float) -> None:
    while True:
        try:
            while await retry_transient("SLA sweep", lambda: sweep_once(sessions, topic, datetime.now(UTC))):
                pass
        except Exception:
            log.exception("SLA sweep failed; trying again next time")
        await asyncio.sleep(every_s)
