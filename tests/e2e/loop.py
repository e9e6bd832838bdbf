"""All four services as separate processes on the session's PostgreSQL server and broker, isolated from other tests.

A `Loop` has a database of its own (migrated for every service), topics and consumer groups of its own, and a
free port per service. Each service runs as `python -m services.<name>`, as `leadflow up` starts it, and can be
stopped cleanly, killed with SIGKILL and started again on the same port.
"""

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import db, migrations
from shared.bus import ensure_topics
from shared.cli import wait_ready
from shared.config import Topics
from shared.stack import free_port
from tests.conftest import ADMIN_TOKEN, SECRET_KEY, Stack
from tests.e2e.counting import unique

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("ingest", "scoring", "routing", "reporting")
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Loop:
    stack: Stack
    url: str
    engine: AsyncEngine
    topics: Topics
    folder: Path
    ports: dict[str, int] = field(default_factory=lambda: {name: free_port() for name in SERVICES})
    groups: dict[str, str] = field(default_factory=lambda: {name: unique(name) for name in SERVICES})
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def env(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
        return env | {
            "LEADFLOW_DATABASE_URL": self.url,
            "LEADFLOW_KAFKA_BOOTSTRAP": self.stack.broker.bootstrap,
            "LEADFLOW_ADMIN_TOKEN": ADMIN_TOKEN,
            "LEADFLOW_SECRET_KEY": SECRET_KEY,
            "LEADFLOW_LOG_LEVEL": "WARNING",
            f"LEADFLOW_{name.upper()}_PORT": str(self.ports[name]),
            f"LEADFLOW_{name.upper()}_GROUP": self.groups[name],
            "LEADFLOW_TOPIC_TOUCHES": self.topics.touches,
            "LEADFLOW_TOPIC_DEALS": self.topics.deals,
            "LEADFLOW_TOPIC_LEADS": self.topics.leads,
            "LEADFLOW_TOPIC_ASSIGNMENTS": self.topics.assignments,
            "LEADFLOW_TOPIC_DEAD_LETTERS": self.topics.dead_letters,
            "LEADFLOW_RECYCLE_SWEEP_S": "86400",  # the sweeps read the clock; nothing here waits for them
            "LEADFLOW_SLA_SWEEP_S": "86400",
            "LEADFLOW_BOOTSTRAP_RESAMPLES": "20",
        }

    def log(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def start(self, name: str) -> None:
        with open(self.log(name), "ab") as out:
            command = [sys.executable, "-m", f"services.{name}"]
            self.processes[name] = subprocess.Popen(
                command, cwd=ROOT, env=self.env(name), stdout=out, stderr=subprocess.STDOUT
            )

    async def ready(self, name: str) -> None:
        await asyncio.to_thread(wait_ready, name, self.ports[name], self.processes[name], 90)

    async def start_all(self) -> None:
        for name in SERVICES:
            self.start(name)
        for name in SERVICES:
            await self.ready(name)

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait()

    async def stop_all(self) -> None:
        """SIGTERM each; uvicorn re-raises the signal once drained, so -SIGTERM is a clean stop too."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in list(self.processes.items()):
            try:
                code = await asyncio.to_thread(process.wait, 30)
            except subprocess.TimeoutExpired:
                process.kill()
                raise AssertionError(f"{name} did not stop; see {self.log(name)}") from None
            assert code in (0, -signal.SIGTERM), f"{name} exited with {code}; see {self.log(name)}"
        self.processes.clear()

    def assert_alive(self) -> None:
        for name, process in self.processes.items():
            assert process.poll() is None, f"{name} exited with {process.returncode}; see {self.log(name)}"

    def client(self, name: str, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.ports[name]}", headers=headers, timeout=30)

    async def count(self, query: str) -> int:
        async with self.engine.connect() as conn:
            return int((await conn.execute(text(query))).scalar_one())

    async def rows(self, query: str) -> list[tuple[Any, ...]]:
        async with self.engine.connect() as conn:
            return [tuple(r) for r in await conn.execute(text(query))]


async def new_database(stack: Stack, engine: AsyncEngine, name: str) -> str:
    """A database of its own on the session's server, migrated for every service."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = stack.pg.url.replace("/postgres?", f"/{name}?")
    for service in SERVICES:
        await asyncio.to_thread(migrations.upgrade, service, url)
    return url


async def new_loop(stack: Stack, engine: AsyncEngine, folder: Path, name: str) -> Loop:
    topics = Topics(
        touches=unique(f"test.{name}-touches"),
        deals=unique(f"test.{name}-deals"),
        leads=unique(f"test.{name}-leads"),
        assignments=unique(f"test.{name}-assignments"),
        dead_letters=unique(f"test.{name}-dlq"),
    )
    await ensure_topics(stack.broker.bootstrap, topics.all(), 4)
    url = await new_database(stack, engine, unique(f"loop_{name}"))
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    return Loop(stack, url, db.create_engine(url, pool_size=2), topics, folder)


async def running_loop(stack: Stack, engine: AsyncEngine, folder: Path, name: str) -> AsyncIterator[Loop]:
    """For fixtures: a loop with every service started and ready; stopped cleanly (and checked) afterwards."""
    loop = await new_loop(stack, engine, folder, name)
    try:
        await loop.start_all()
        yield loop
        await loop.stop_all()
    finally:
        for process in loop.processes.values():
            process.kill()
            process.wait()
        await loop.engine.dispose()


async def write_key(ingest: httpx.AsyncClient) -> dict[str, str]:
    created = await ingest.post("/v1/admin/sources", json={"name": "e2e", "kind": "api"}, headers=ADMIN)
    assert created.status_code == 201, created.text
    return {"authorization": f"Bearer {created.json()['credentials']['write_key']}"}


async def put(client: httpx.AsyncClient, path: str, body: Any) -> None:
    response = await client.put(path, json=body, headers=ADMIN)
    assert response.status_code in (200, 201), f"{path}: {response.status_code} {response.text}"


async def user_token(routing: httpx.AsyncClient, user_id: str, rep_id: str) -> dict[str, str]:
    body = {"id": user_id, "name": user_id, "role": "rep", "rep_id": rep_id}
    response = await routing.post("/v1/admin/users", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    return {"authorization": f"Bearer {response.json()['token']}"}
