"""kill -9 the routing process during a burst of MQLs and restart it: every MQL is assigned exactly once
(DESIGN §4.3), its `assigned` event is published, and the round-robin split is exactly even."""

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.routing import store
from shared.bus import Publisher, ensure_topics
from shared.config import Topics
from shared.events import CloudEvent, LeadCreated, LeadData, LeadScoreChanged, LeadStageChanged
from shared.stack import free_port
from tests.conftest import ADMIN_TOKEN, SECRET_KEY, Stack
from tests.e2e.counting import read_until, unique, wait_until

ROOT = Path(__file__).resolve().parents[2]
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
REPS = 4
LEADS = 200  # per burst of MQLs


@dataclass
class Routing:
    stack: Stack
    engine: AsyncEngine
    topics: Topics
    group: str
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "LEADFLOW_DATABASE_URL": self.stack.pg.url,
            "LEADFLOW_KAFKA_BOOTSTRAP": self.stack.broker.bootstrap,
            "LEADFLOW_ADMIN_TOKEN": ADMIN_TOKEN,
            "LEADFLOW_SECRET_KEY": SECRET_KEY,
            "LEADFLOW_ROUTING_PORT": str(self.port),
            "LEADFLOW_ROUTING_GROUP": self.group,
            "LEADFLOW_TOPIC_LEADS": self.topics.leads,
            "LEADFLOW_TOPIC_TOUCHES": self.topics.touches,
            "LEADFLOW_TOPIC_ASSIGNMENTS": self.topics.assignments,
            "LEADFLOW_LOG_LEVEL": "WARNING",
        }
        with open(self.log, "ab") as out:
            command = [sys.executable, "-m", "services.routing"]
            return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    async def assigned(self, lead_ids: list[str]) -> Counter[str]:
        """Assignments per lead, open or not."""
        a = store.assignments
        stmt = (
            select(a.c.lead_id, func.count().label("assignments"))
            .where(a.c.lead_id.in_(lead_ids))
            .group_by(a.c.lead_id)
        )
        async with self.engine.connect() as conn:
            return Counter({row.lead_id: row.assignments for row in await conn.execute(stmt)})


@pytest.fixture
async def routing(stack: Stack, engine: AsyncEngine, tmp_path: Path) -> Routing:
    topics = Topics(leads=unique("test.leads"), touches=unique("test.touches"), assignments=unique("test.assign"))
    await ensure_topics(stack.broker.bootstrap, [topics.leads, topics.touches, topics.assignments], 4)
    return Routing(stack, engine, topics, unique("routing-kill"), free_port(), tmp_path / "routing.log")


async def wait_ready(r: Routing, process: subprocess.Popen[bytes]) -> None:
    async def ready() -> bool:
        assert process.poll() is None, f"routing exited during start; see {r.log}"
        try:
            async with httpx.AsyncClient(base_url=r.base_url) as client:
                return (await client.get("/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    await wait_until(ready, timeout_s=60, what="routing ready")


async def set_up_team(r: Routing) -> list[str]:
    team, reps = unique("team"), [unique("rep") for _ in range(REPS)]
    hours = {"days": [0, 1, 2, 3, 4, 5, 6], "start": "00:00:00", "end": "23:59:59"}
    async with httpx.AsyncClient(base_url=r.base_url, headers=ADMIN) as client:
        assert (await client.put(f"/v1/admin/teams/{team}", json={"name": team})).status_code == 201
        for rep in reps:
            body = {"name": rep, "team_ids": [team], "capacity": 100_000, "working_hours": hours}
            assert (await client.put(f"/v1/admin/reps/{rep}", json=body)).status_code == 201
        response = await client.put("/v1/admin/rules", json={"rules": [{"id": "all", "team_id": team}]})
        assert response.status_code == 201
    return reps


def mql_events(lead_id: str) -> list[LeadData]:
    return [
        LeadCreated(lead_id=lead_id, identifier=f"anon:{lead_id}"),
        LeadScoreChanged(lead_id=lead_id, fit=30, engagement=40, total=70, grade="B", model_version=1),
        LeadStageChanged(lead_id=lead_id, from_stage="lead", to_stage="mql", cause="score"),
    ]


async def publish_burst(r: Routing, lead_ids: list[str]) -> None:
    now = datetime.now(UTC)
    records: list[tuple[str, CloudEvent[Any]]] = []
    for lead_id in lead_ids:
        for n, data in enumerate(mql_events(lead_id)):
            event_type: str = getattr(data, "type")  # noqa: B009
            event = CloudEvent(
                id=f"{lead_id}-{n}", source="/test", type=event_type, time=now, subject=lead_id, data=data
            )
            records.append((r.topics.leads, event))
    publisher = Publisher(r.stack.settings)
    await publisher.start()
    try:
        await publisher.publish(records)
    finally:
        await publisher.stop()


async def kill_cycles(r: Routing, cycles: int) -> None:
    process = r.start()
    await wait_ready(r, process)
    reps = await set_up_team(r)
    lead_ids = [unique("kill") for _ in range(LEADS)]
    await publish_burst(r, lead_ids)
    for cycle, at_least in enumerate(sorted(random.sample(range(1, LEADS), cycles))):
        await wait_until(
            lambda: _alive_and_assigned(r, process, lead_ids, at_least),  # noqa: B023  # awaited in this iteration
            timeout_s=120,
            what=f"{at_least} assignments before kill {cycle + 1}",
        )
        process.send_signal(signal.SIGKILL)
        process.wait()
        process = r.start()
    try:
        await wait_ready(r, process)
        await wait_until(lambda: _all_assigned(r, lead_ids), timeout_s=120, what="every MQL assigned")
    finally:
        process.send_signal(signal.SIGTERM)
        # uvicorn re-raises the SIGTERM it handled once it has drained: -SIGTERM is a clean stop too
        assert await asyncio.to_thread(process.wait, 30) in (0, -signal.SIGTERM), f"unclean stop; see {r.log}"
    per_lead = await r.assigned(lead_ids)
    assert per_lead == dict.fromkeys(lead_ids, 1)
    await assert_published_once_each(r, lead_ids, reps)


async def _alive_and_assigned(r: Routing, process: subprocess.Popen[bytes], lead_ids: list[str], at_least: int) -> bool:
    assert process.poll() is None, f"routing exited; see {r.log}"
    return sum((await r.assigned(lead_ids)).values()) >= at_least


async def _all_assigned(r: Routing, lead_ids: list[str]) -> bool:
    return len(await r.assigned(lead_ids)) == len(lead_ids)


async def assert_published_once_each(r: Routing, lead_ids: list[str], reps: list[str]) -> None:
    """One distinct `assigned` event per lead (the relay may repeat an id; never two ids), an even split."""
    records = await read_until(
        r.stack.broker.bootstrap, r.topics.assignments, lambda rs: len({x.key for x in rs}) >= len(lead_ids), 60
    )
    ids_per_lead: dict[str, set[str]] = {}
    rep_of: dict[str, str] = {}
    for record in records:
        lead_id = record.key.decode()
        ids_per_lead.setdefault(lead_id, set()).add(dict(record.headers)["ce_id"].decode())
        rep_of[lead_id] = orjson.loads(record.value)["rep_id"]
    assert {lead_id: len(ids) for lead_id, ids in ids_per_lead.items()} == dict.fromkeys(lead_ids, 1)
    assert Counter(rep_of.values()) == dict.fromkeys(reps, LEADS // REPS)


async def test_routing_killed_three_times_during_a_burst_assigns_every_mql_exactly_once(routing: Routing) -> None:
    await kill_cycles(routing, 3)


@pytest.mark.soak
async def test_routing_killed_thirty_times_during_a_burst_assigns_every_mql_exactly_once(routing: Routing) -> None:
    await kill_cycles(routing, 30)
