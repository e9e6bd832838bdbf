"""Session-wide embedded PostgreSQL and Tansu broker: the same stack `leadflow up` starts, in fresh folders.

Nothing here is a stand-in: tests reach PostgreSQL through asyncpg and the broker through aiokafka.
"""

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from asgi_lifespan import LifespanManager
from hypothesis import settings as hypothesis_settings
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.app import create_app as create_ingest_app
from services.ingest.config import IngestSettings
from services.reporting.app import create_app as create_reporting_app
from services.reporting.config import ReportingSettings
from services.routing.app import create_app as create_routing_app
from services.routing.config import RoutingSettings
from services.scoring.app import create_app as create_scoring_app
from services.scoring.config import ScoringSettings
from shared import db, migrations
from shared.bus import Publisher, ensure_topics
from shared.config import LeadflowSettings, Topics
from shared.stack import EmbeddedBroker, EmbeddedPostgres, free_port, start_broker, start_postgres
from tests.e2e.counting import unique

# The same examples on every run, so CI cannot fail by chance; a failure found while exploring
# (HYPOTHESIS_PROFILE=explore) is kept in the test as an @example.
hypothesis_settings.register_profile("repeatable", derandomize=True)
hypothesis_settings.register_profile("explore", max_examples=1000)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

ADMIN_TOKEN = "test-admin-token"
SECRET_KEY = "test-secret-key-0123456789"


@dataclass
class Stack:
    folder: Path
    pg: EmbeddedPostgres
    broker: EmbeddedBroker
    broker_port: int

    @property
    def settings(self) -> LeadflowSettings:
        return LeadflowSettings(database_url=self.pg.url, kafka_bootstrap=self.broker.bootstrap, topic_partitions=4)

    def restart_broker(self) -> None:
        """Start a new (empty) broker on the same port, as after a broker crash."""
        self.broker = start_broker(self.broker_port, self.folder / "broker.log")


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    folder = Path(tempfile.mkdtemp(prefix="lf", dir="/tmp"))  # short: the socket path must fit
    pg = start_postgres(folder / "pg")
    port = free_port()
    broker = start_broker(port, folder / "broker.log")
    s = Stack(folder=folder, pg=pg, broker=broker, broker_port=port)
    try:
        asyncio.run(ensure_topics(broker.bootstrap, s.settings.topics.all(), 4))
        for service in ("ingest", "scoring", "routing", "reporting"):
            migrations.upgrade(service, pg.url)
        yield s
    finally:
        s.broker.stop()
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
async def engine(stack: Stack) -> AsyncIterator[AsyncEngine]:
    """One pool for the tests that read or write a schema directly."""
    engine = db.create_engine(stack.pg.url, pool_size=8)
    yield engine
    await engine.dispose()


def service_settings(stack: Stack, **overrides: Any) -> dict[str, Any]:
    """What every service's settings hold in tests: the session stack, the test tokens, a short broker wait."""
    values: dict[str, Any] = {
        "database_url": stack.pg.url,
        "kafka_bootstrap": stack.broker.bootstrap,
        "admin_token": ADMIN_TOKEN,
        "secret_key": SECRET_KEY,
        "publish_timeout_s": 3.0,
    }
    return values | overrides


def ingest_settings(stack: Stack, **overrides: Any) -> IngestSettings:
    return IngestSettings(**service_settings(stack, public_url="http://ingest.test", **overrides))


def scoring_settings(stack: Stack, **overrides: Any) -> ScoringSettings:
    return ScoringSettings(**service_settings(stack, **overrides))


def reporting_settings(stack: Stack, **overrides: Any) -> ReportingSettings:
    return ReportingSettings(**service_settings(stack, bootstrap_resamples=50, **overrides))


def routing_settings(stack: Stack, **overrides: Any) -> RoutingSettings:
    return RoutingSettings(**service_settings(stack, **overrides))


@contextlib.asynccontextmanager
async def served(app: Any, host: str, client: tuple[str, int] | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An app in-process with its lifespan (consumers, relays, sweeps) running, and a client for it.

    Stopping a consumer that is still joining its group takes seconds on the embedded broker: more than
    LifespanManager's default 5 s when the machine is busy.
    """
    async with LifespanManager(app, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=client or ("127.0.0.1", 123))
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as http:
            yield http


def ingest_client(settings: IngestSettings) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
    return served(create_ingest_app(settings), "ingest.test", client=("81.2.69.160", 50000))  # a GB address


def scoring_client(settings: ScoringSettings) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
    return served(create_scoring_app(settings), "scoring.test")


def reporting_client(settings: ReportingSettings) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
    return served(create_reporting_app(settings), "reporting.test")


def routing_client(settings: RoutingSettings) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
    return served(create_routing_app(settings), "routing.test")


async def own_topics(stack: Stack, *names: str) -> Topics:
    """Topics a test module has to itself for `names` (touches, deals, ...), created; the rest the session's."""
    topics = Topics().model_copy(update={name: unique(f"test.{name}") for name in names})
    await ensure_topics(stack.broker.bootstrap, [getattr(topics, name) for name in names], 4)
    return topics


@pytest.fixture(scope="module")
async def publisher(settings: LeadflowSettings) -> AsyncIterator[Publisher]:
    """A started publisher for the module's `settings` (its topics)."""
    publisher = Publisher(settings)
    await publisher.start()
    yield publisher
    await publisher.stop()


@pytest.fixture(scope="session")
async def ingest(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with ingest_client(ingest_settings(stack)) as client:
        yield client


async def create_source(client: httpx.AsyncClient, kind: str, **fields: Any) -> dict[str, Any]:
    response = await client.post(
        "/v1/admin/sources",
        json={"name": f"test {kind}", "kind": kind, **fields},
        headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@dataclass
class Record:
    topic: str
    partition: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]
    tombstone: bool = False  # a record with no value (its `value` here is b"")

    @property
    def id(self) -> str:
        return self.headers["ce_id"]

    @property
    def type(self) -> str:
        return self.headers["ce_type"]


@dataclass
class Tail:
    """Every record published to the Leadflow topics during the session, indexed by CloudEvent id."""

    by_id: dict[str, list[Record]] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)

    async def wait_for(self, ids: list[str] | set[str], timeout_s: float = 10) -> dict[str, Record]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not all(i in self.by_id for i in ids):
            if asyncio.get_running_loop().time() > deadline:
                missing = [i for i in ids if i not in self.by_id]
                raise AssertionError(f"{len(missing)} events never reached the broker: {missing[:5]}")
            await asyncio.sleep(0.05)
        return {i: self.by_id[i][0] for i in ids}

    def count(self, event_id: str) -> int:
        return len(self.by_id.get(event_id, []))


@pytest.fixture(scope="session")
async def tail(stack: Stack) -> AsyncIterator[Tail]:
    settings = stack.settings
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.broker.bootstrap, enable_auto_commit=False)
    await consumer.start()
    partitions = [
        TopicPartition(topic, p)
        for topic in settings.topics.all()
        for p in sorted(consumer.partitions_for_topic(topic) or await _partitions(consumer, topic))
    ]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    collected = Tail()

    async def run() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            for records in batches.values():
                for r in records:
                    headers = {k: v.decode() for k, v in r.headers}
                    rec = Record(r.topic, r.partition, r.key, r.value or b"", headers, r.value is None)
                    collected.records.append(rec)
                    if "ce_id" in headers:
                        collected.by_id.setdefault(headers["ce_id"], []).append(rec)

    task = asyncio.create_task(run())
    yield collected
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()
