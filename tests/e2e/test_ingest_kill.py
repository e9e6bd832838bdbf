"""DESIGN §4.1 under fire: kill -9 the ingest process mid-burst; every event it acknowledged is in Kafka."""

import asyncio
import os
import random
import signal
import subprocess
import sys
import uuid

import httpx
import pytest

from shared.stack import free_port
from tests.conftest import ADMIN_TOKEN, SECRET_KEY, Stack, Tail

CYCLES = 3


def start_ingest(stack: Stack, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LEADFLOW_DATABASE_URL": stack.pg.url,
        "LEADFLOW_KAFKA_BOOTSTRAP": stack.broker.bootstrap,
        "LEADFLOW_ADMIN_TOKEN": ADMIN_TOKEN,
        "LEADFLOW_SECRET_KEY": SECRET_KEY,
        "LEADFLOW_INGEST_PORT": str(port),
        "LEADFLOW_LOG_LEVEL": "WARNING",
    }
    with open(stack.folder / "ingest-kill.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "services.ingest"], env=env, stdout=log, stderr=log)


async def wait_ready(base_url: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        for _ in range(200):
            assert process.poll() is None, "ingest exited during start"
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("ingest never became ready")


def batch(n: int) -> list[dict[str, object]]:
    return [
        {"type": "leadflow.touch.web_visit.v1", "identity": {"anonymous_id": uuid.uuid4().hex}, "url": "/pricing"}
        for _ in range(n)
    ]


async def post_until_dead(client: httpx.AsyncClient, auth: dict[str, str], acked: set[str]) -> None:
    """Keep posting; remember what was acknowledged; stop when the server is gone."""
    while True:
        try:
            response = await client.post("/v1/events", json=batch(random.randint(1, 20)), headers=auth)
        except httpx.TransportError:
            return
        if response.status_code == 202:
            acked.update(response.json()["ids"])


async def burst_then_kill(base_url: str, auth: dict[str, str], process: subprocess.Popen[bytes]) -> set[str]:
    acked: set[str] = set()
    kill_after = random.randint(100, 600)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        posters = [asyncio.create_task(post_until_dead(client, auth, acked)) for _ in range(8)]
        while len(acked) < kill_after:  # noqa: ASYNC110  # the posters fill `acked`; poll it
            await asyncio.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
        await asyncio.gather(*posters)
    process.wait()
    return acked


async def test_every_acknowledged_event_survives_kill_9_of_ingest(stack: Stack, tail: Tail) -> None:
    await kill_cycles(stack, tail, CYCLES)


@pytest.mark.soak
async def test_every_acknowledged_event_survives_a_hundred_kills_of_ingest(stack: Stack, tail: Tail) -> None:
    await kill_cycles(stack, tail, 100)


async def kill_cycles(stack: Stack, tail: Tail, cycles: int) -> None:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    process = start_ingest(stack, port)
    await wait_ready(base_url, process)
    async with httpx.AsyncClient(base_url=base_url) as client:
        created = await client.post(
            "/v1/admin/sources",
            json={"name": "kill test", "kind": "api", "rate_limit_per_s": 100000},
            headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
        )
    auth = {"authorization": f"Bearer {created.json()['credentials']['write_key']}"}
    acked: set[str] = set()
    try:
        for cycle in range(cycles):
            acked |= await burst_then_kill(base_url, auth, process)
            print(f"kill cycle {cycle + 1}/{cycles}: {len(acked)} acknowledged so far", flush=True)  # noqa: T201
            process = start_ingest(stack, port)
            await wait_ready(base_url, process)
    finally:
        process.kill()
        process.wait()
    assert len(acked) >= 100 * cycles
    await tail.wait_for(acked, timeout_s=30 + cycles)
