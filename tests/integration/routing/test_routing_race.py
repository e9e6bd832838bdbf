"""Two routing replicas racing on the same MQLs: no lead is ever assigned twice, the round-robin stays fair,
and replicas placing leads of the same teams at once never deadlock.

The replicas consume in different groups, so both see every lead event; each lead also gets two
different MQL events (a replay upstream), which the two replicas may apply at the same moment.
"""

import contextlib
import logging
from collections import Counter
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.routing.config import RoutingSettings
from services.routing.store import TABLES
from shared.bus import Publisher
from shared.events import LeadStageChanged
from tests.conftest import Stack, own_topics, routing_client
from tests.e2e.counting import unique, wait_until
from tests.integration.routing.conftest import (
    Leads,
    assignments_in_db,
    make_team,
    route_all_to,
    wait_assigned,
)

LEADS = 40


async def test_two_replicas_on_the_same_mqls_assign_each_lead_once_and_fairly(
    settings: RoutingSettings, routing: httpx.AsyncClient, leads: Leads, engine: AsyncEngine
) -> None:
    team = await make_team(routing, 4)
    await route_all_to(routing, team)
    lead_ids = [unique("race") for _ in range(LEADS)]
    replicas = [settings.model_copy(update={"consumer_group": unique("replica")}) for _ in range(2)]
    async with contextlib.AsyncExitStack() as running:
        for replica in replicas:
            await running.enter_async_context(routing_client(replica))
        for lead_id in lead_ids:
            await leads.mql(lead_id)
            await leads.send(LeadStageChanged(lead_id=lead_id, from_stage="mql", to_stage="mql", cause="replay"))

        async def all_assigned() -> bool:
            found = await assignments_in_db(engine, lead_ids)
            return all(found.values())

        await wait_until(all_assigned, timeout_s=60, what="every lead assigned")
        await wait_until(lambda: _replicas_caught_up(engine, replicas), timeout_s=60, what="replicas caught up")
    found = await assignments_in_db(engine, lead_ids)
    assert {lead_id: len(rows) for lead_id, rows in found.items()} == dict.fromkeys(lead_ids, 1)
    assert Counter(rows[0]["rep_id"] for rows in found.values()) == dict.fromkeys(team.reps, LEADS // 4)


async def _replicas_caught_up(engine: AsyncEngine, replicas: list[RoutingSettings]) -> bool:
    """Both groups have consumed every record of the leads topic (so a late double would have shown)."""
    t = TABLES.offsets
    async with engine.connect() as conn:
        for replica in replicas:
            query = select(func.coalesce(func.sum(t.c.offset + 1), 0)).where(
                t.c.group_id == replica.consumer_group, t.c.topic == replica.topics.leads
            )
            group_done = (await conn.execute(query)).scalar_one()
            if group_done < LEADS * 5:
                return False
    return True


async def test_replicas_placing_leads_of_two_teams_at_once_never_deadlock(
    settings: RoutingSettings,
    routing: httpx.AsyncClient,
    publisher: Publisher,
    stack: Stack,
    engine: AsyncEngine,
    caplog: Any,
) -> None:
    """Each batch takes its leads' and teams' locks in sorted order, so two batches holding leads of the same
    two teams wait for each other instead of deadlocking (PostgreSQL would abort one, and it would retry)."""
    small, large = await make_team(routing, 2), await make_team(routing, 2)
    await route_all_to(routing, large, {"id": unique("small"), "when": {"segments": ["small"]}, "team_id": small.id})
    topics = await own_topics(stack, "leads", "touches")  # a backlog of their own, waiting for the replicas
    backlog = settings.model_copy(update={"topics": topics, "consumer_group": unique("two-teams")})
    lead_ids = [unique("two-teams") for _ in range(LEADS * 4)]
    for n, lead_id in enumerate(lead_ids):
        await Leads(backlog, publisher).mql(lead_id, segment="small" if n % 2 else "large")
    caplog.set_level(logging.WARNING, logger="shared.consumer")
    async with contextlib.AsyncExitStack() as running:
        for _ in range(2):  # two members of one group: the backlog's partitions are split between them
            await running.enter_async_context(routing_client(backlog))
        found = await wait_assigned(engine, lead_ids, timeout_s=90)
    assert Counter(row["team_id"] for row in found.values()) == {small.id: LEADS * 2, large.id: LEADS * 2}
    assert not [r for r in caplog.records if "deadlock" in r.getMessage() + str(getattr(r, "error", ""))]
