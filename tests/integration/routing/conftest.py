"""A routing app per test module, in-process, consuming leads and touches topics of its own (unique group too).

The directory and rule set live in the one `routing` schema; each test names its own reps and teams
(`unique`) and installs the rules it needs before sending its MQLs.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.routing import store
from services.routing.config import RoutingSettings
from shared.bus import Publisher
from shared.events import (
    CloudEvent,
    LeadCreated,
    LeadData,
    LeadProfileChanged,
    LeadScoreChanged,
    LeadStageChanged,
    TouchData,
    event_for,
)
from tests.conftest import ADMIN_TOKEN, Stack, Tail, own_topics, routing_client, routing_settings
from tests.e2e.counting import unique, wait_until

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
async def settings(stack: Stack) -> RoutingSettings:
    """Its own leads and touches topics (not every other test's); the shared assignments topic."""
    topics = await own_topics(stack, "leads", "touches")
    return routing_settings(
        stack,
        topics=topics,
        consumer_group=unique("routing"),
        sla_sweep_s=0.3,
        webhook_poll_s=0.1,
        webhook_first_retry_s=0.2,
        webhook_max_attempts=3,
    )


@pytest.fixture(scope="module")
async def routing(settings: RoutingSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with routing_client(settings) as client:
        yield client


@dataclass
class Leads:
    """Publishes what scoring would: lead events on the module's leads topic, touches on its touches topic."""

    settings: RoutingSettings
    publisher: Publisher
    sent: int = 0  # records on the module's leads topic

    async def send(self, data: LeadData, *, event_id: str | None = None, at: datetime | None = None) -> CloudEvent[Any]:
        event_type: str = getattr(data, "type")  # noqa: B009
        event = CloudEvent(
            id=event_id or unique("lead-event"),
            source="/test/scoring",
            type=event_type,
            time=at or datetime.now(UTC),
            subject=data.lead_id,
            data=data,
        )
        await self.publisher.publish([(self.settings.topics.leads, event)])
        self.sent += 1
        return event

    async def touch(self, data: TouchData, *, at: datetime | None = None) -> CloudEvent[Any]:
        event = event_for(data, id=unique("touch"), source="/test/ingest", received_at=at or datetime.now(UTC))
        await self.publisher.publish([(self.settings.topics.touches, event)])
        return event

    async def mql(
        self, lead_id: str, *, score: float = 70, email: str | None = None, at: datetime | None = None, **profile: Any
    ) -> CloudEvent[Any]:
        """created -> profile -> score -> stage mql, in order on the lead's partition; returns the MQL event."""
        await self.send(LeadCreated(lead_id=lead_id, identifier=email or f"anon:{lead_id}", email=email), at=at)
        who = {k: profile.pop(k) for k in ("persona", "segment", "account") if k in profile}
        await self.send(LeadProfileChanged(lead_id=lead_id, changes=profile, **who), at=at)
        await self.send(
            LeadScoreChanged(
                lead_id=lead_id, fit=score / 2, engagement=score / 2, total=score, grade="A", model_version=1
            ),
            at=at,
        )
        return await self.send(
            LeadStageChanged(lead_id=lead_id, from_stage="lead", to_stage="mql", cause="score"), at=at
        )


@pytest.fixture(scope="module")
def leads(settings: RoutingSettings, publisher: Publisher) -> Leads:
    return Leads(settings, publisher)


async def put(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.put(path, json=body, headers=ADMIN)
    assert response.status_code in (200, 201), response.text
    found: dict[str, Any] = response.json()
    return found


@dataclass(frozen=True)
class Team:
    id: str
    reps: list[str]


async def make_team(client: httpx.AsyncClient, n: int = 2, **team: Any) -> Team:
    """A team of `n` reps working around the clock in UTC (so SLA deadlines are plain minutes)."""
    team_id = unique("team")
    await put(client, f"/v1/admin/teams/{team_id}", {"name": team_id, **team})
    reps = [unique("rep") for _ in range(n)]
    for rep_id in reps:
        hours = {"days": [0, 1, 2, 3, 4, 5, 6], "start": "00:00:00", "end": "23:59:59"}
        await put(client, f"/v1/admin/reps/{rep_id}", {"name": rep_id, "team_ids": [team_id], "working_hours": hours})
    return Team(team_id, reps)


async def route_all_to(client: httpx.AsyncClient, team: Team, *rules: dict[str, Any]) -> None:
    body = {"rules": [*rules, {"id": unique("all"), "team_id": team.id}]}
    response = await client.put("/v1/admin/rules", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text


async def token_for(client: httpx.AsyncClient, role: str, **scope: str) -> dict[str, str]:
    body = {"id": unique("user"), "name": "someone", "role": role, **scope}
    response = await client.post("/v1/admin/users", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return {"authorization": f"Bearer {response.json()['token']}"}


Wait = Callable[..., Awaitable[dict[str, Any]]]


def assignment_events(tail: Tail, lead_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (r.type, orjson.loads(r.value))
        for r in tail.records
        if r.topic == "leadflow.assignments" and r.key == lead_id.encode()
    ]


async def wait_for_events(tail: Tail, lead_id: str, event_type: str, n: int = 1) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    async def check() -> bool:
        found[:] = [d for t, d in assignment_events(tail, lead_id) if t == event_type]
        return len(found) >= n

    await wait_until(check, timeout_s=30, what=f"{n} {event_type} for {lead_id}")
    return found


async def assignments_in_db(engine: AsyncEngine, lead_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every assignment of the leads, open or not, oldest first."""
    a = store.assignments
    stmt = select(a).where(a.c.lead_id.in_(lead_ids)).order_by(a.c.assigned_at, a.c.updated_at)
    async with engine.connect() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(stmt)]
    found: dict[str, list[dict[str, Any]]] = {lead_id: [] for lead_id in lead_ids}
    for row in rows:
        found[row["lead_id"]].append(row)
    return found


async def wait_assigned(engine: AsyncEngine, lead_ids: list[str], timeout_s: float = 30) -> dict[str, dict[str, Any]]:
    """The open assignment of each lead, once every one has one."""
    found: dict[str, list[dict[str, Any]]] = {}

    async def check() -> bool:
        found.update(await assignments_in_db(engine, lead_ids))
        return all(any(r["status"] in ("queued", "assigned", "accepted") for r in found[i]) for i in lead_ids)

    await wait_until(check, timeout_s=timeout_s, what=f"assignments of {len(lead_ids)} leads")
    return {i: next(r for r in found[i] if r["status"] in ("queued", "assigned", "accepted")) for i in lead_ids}


async def wait_caught_up(engine: AsyncEngine, leads: Leads) -> None:
    """The module's routing app has applied every lead event sent so far (its stored offsets say so)."""
    t = store.TABLES.offsets
    applied = select(func.coalesce(func.sum(t.c.offset + 1), 0)).where(
        t.c.group_id == leads.settings.consumer_group, t.c.topic == leads.settings.topics.leads
    )

    async def done() -> bool:
        async with engine.connect() as conn:
            return int((await conn.execute(applied)).scalar_one()) >= leads.sent

    await wait_until(done, timeout_s=30, what="every lead event applied")
