"""Signed outbound webhooks to a team's CRM: a real HTTP receiver; failures retried with backoff, then dead."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from services.routing.webhooks import verify
from shared.stack import free_port
from tests.e2e.counting import unique, wait_until
from tests.integration.routing.conftest import ADMIN, Leads, make_team, route_all_to, wait_assigned


@dataclass
class Receiver:
    url: str
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    failed_once: set[str] = field(default_factory=set)


def receiver_app(receiver: Receiver) -> FastAPI:
    """A CRM that fails each delivery once (500) before taking it."""
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        event_id = request.headers["x-leadflow-event-id"]
        if event_id not in receiver.failed_once:
            receiver.failed_once.add(event_id)
            return Response(status_code=500)
        receiver.received.append((dict(request.headers), await request.body()))
        return Response(status_code=204)

    return app


@pytest.fixture
async def crm() -> AsyncIterator[Receiver]:
    port = free_port()
    receiver = Receiver(url=f"http://127.0.0.1:{port}/hook")
    server = uvicorn.Server(uvicorn.Config(receiver_app(receiver), host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: _started(server), timeout_s=10, what="the CRM receiver")
    yield receiver
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _started(server: uvicorn.Server) -> bool:
    return server.started


async def test_assignment_webhooks_are_signed_and_retried_until_delivered(
    routing: httpx.AsyncClient, leads: Leads, engine: AsyncEngine, crm: Receiver
) -> None:
    team = await make_team(routing, 1, crm_webhook_url=crm.url)
    await route_all_to(routing, team)
    lead_id = unique("lead")
    await leads.mql(lead_id)
    assignment = (await wait_assigned(engine, [lead_id]))[lead_id]
    await wait_until(lambda: _has(crm, 1), timeout_s=20, what="the delivery")
    headers, body = crm.received[0]
    secret = (await routing.get(f"/v1/admin/teams/{team.id}/webhook-secret", headers=ADMIN)).json()["secret"]
    assert verify(secret, headers["x-leadflow-signature"], body, now=int(time.time()))
    assert not verify(secret, headers["x-leadflow-signature"], body + b" ", now=int(time.time()))
    sent = orjson.loads(body)
    assert (sent["type"], sent["data"]["assignment_id"]) == ("leadflow.assignment.assigned.v1", assignment["id"])
    log = (await routing.get("/v1/admin/webhooks/deliveries", params={"team_id": team.id}, headers=ADMIN)).json()
    assert [(d["status"], d["attempts"]) for d in log] == [("delivered", 2)]


async def test_a_crm_that_never_answers_gets_the_delivery_dead_lettered(
    routing: httpx.AsyncClient, leads: Leads, engine: AsyncEngine
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    team = await make_team(routing, 1, crm_webhook_url=nowhere)
    await route_all_to(routing, team)
    lead_id = unique("lead")
    await leads.mql(lead_id)
    await wait_assigned(engine, [lead_id])
    found: list[dict[str, object]] = []

    async def dead() -> bool:
        params = {"team_id": team.id, "status": "dead"}
        found[:] = (await routing.get("/v1/admin/webhooks/deliveries", params=params, headers=ADMIN)).json()
        return len(found) == 1

    await wait_until(dead, timeout_s=30, what="the dead-lettered delivery")
    assert found[0]["attempts"] == 3
    assert "Connect" in str(found[0]["last_error"])


async def _has(receiver: Receiver, n: int) -> bool:
    return len(receiver.received) >= n
