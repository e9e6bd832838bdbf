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


async def sweep_once(sessions: async_sessionmaker[AsyncSession], topic: str, now: datetime, size: int = 100) -> int:
    """One transaction over up to `size` due assignments; returns how many breaches it reported."""
    async with sessions.begin() as session:
        rows = await store.due_for_sla_check(session, now, size)
        if not rows:
            return 0
        directory = await load_directory(session)
        teams = dict(directory.teams)
        for row in rows:
            moved = breach(state_of(row), now)
            if moved is None:
                continue
            assert isinstance(moved.event, SlaBreached)
            cause = f"breach:{row['id']}:{moved.event.sla}"
            await store.save_assignment(session, row["id"], {**row_of(moved.assignment), "updated_at": now})
            await publish(session, topic, teams, cause, now, [moved.event])
            team = teams.get(row["team_id"] or "")
            by_reassign = moved.event.sla == "accept" and (team is None or team.on_breach == "reassign")
            if not by_reassign or await reassign(session, topic, moved, row, directory, now) is None:
                manager = team.manager_rep_id if team else None
                await store.save_assignment(session, row["id"], {"escalated_to": manager})
    return len(rows)


async def sweep_forever(sessions: async_sessionmaker[AsyncSession], topic: str, every_s: float) -> None:
    while True:
        try:
            while await retry_transient("SLA sweep", lambda: sweep_once(sessions, topic, datetime.now(UTC))):
                pass
        except Exception:
            log.exception("SLA sweep failed; trying again next time")
        await asyncio.sleep(every_s)
