"""Every service's OpenAPI document, fuzzed with schemathesis: no request may get a 5xx or an answer outside its schema.

Each app runs in-process with its lifespan (consumers, relays, sweeps) on the session's PostgreSQL server and
broker, in a database and topics of its own: the fuzzer changes models, rules and leads as an admin would, and
none of that may reach another test. Requests carry valid credentials (the admin token, a write key, a sales
admin's token) so the fuzzer gets past authentication into the handlers. Each operation gets a bounded number of
valid and of invalid requests; every failure of every operation is collected, then reported together.
"""

import asyncio
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.app import create_app as create_ingest_app
from services.reporting.app import create_app as create_reporting_app
from services.routing.app import create_app as create_routing_app
from services.scoring.app import create_app as create_scoring_app
from shared import db
from shared.bus import ensure_topics
from shared.config import Topics
from tests.conftest import (
    ADMIN_TOKEN,
    Stack,
    ingest_settings,
    reporting_settings,
    routing_settings,
    scoring_settings,
)
from tests.e2e.counting import unique
from tests.e2e.loop import new_database

EXAMPLES = 25  # per operation and generation mode: the four services stay within ~2 minutes
CHECKS = [not_a_server_error, response_schema_conformance]
# The sales queue long-polls for up to `wait` seconds by design; examples that wait would only measure the clock.
FIXED_QUERY = {"GET /v1/queue": {"wait": 0}}
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}


@dataclass
class Target:
    app: Any  # an ASGI app (schemathesis types them more narrowly than FastAPI declares itself)
    headers: Callable[[str], dict[str, str]]  # by path: the credentials that get a request past authentication


@pytest.fixture(scope="module")
def isolated(stack: Stack) -> tuple[str, Topics]:
    """A database migrated for every service and topics that no other test reads."""
    topics = Topics(
        touches=unique("test.fuzz-touches"),
        deals=unique("test.fuzz-deals"),
        leads=unique("test.fuzz-leads"),
        assignments=unique("test.fuzz-assignments"),
        dead_letters=unique("test.fuzz-dlq"),
    )

    async def prepare() -> str:
        await ensure_topics(stack.broker.bootstrap, topics.all(), 4)
        engine: AsyncEngine = db.create_engine(stack.pg.url, pool_size=1)
        try:
            return await new_database(stack, engine, unique("fuzz"))
        finally:
            await engine.dispose()

    return asyncio.run(prepare()), topics


@pytest.fixture(scope="module")
def lifespans() -> Iterator[None]:
    """schemathesis starts each app's lifespan on first use, in its own event-loop thread; stop them all here."""
    yield
    asgi.shutdown_lifespans()


def fuzz(target: Target) -> list[str]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", target.app)
    failures: list[str] = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            failures.append(f"an operation the fuzzer cannot read: {result.err()}")
            continue
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                run_operation(operation, mode, target)
            except Unsatisfiable:
                continue  # nothing in this operation's request can be made invalid (no parameters, no body)
            except (Exception, FailureGroup) as error:  # collected: every operation is fuzzed, then all are reported
                failures.append(f"{operation.label} ({mode.value}): {error}")
    return failures


def run_operation(operation: Any, mode: GenerationMode, target: Target) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, query=FIXED_QUERY.get(operation.label)))
    def run(case: Any) -> None:
        try:
            response = case.call(headers=target.headers(case.path))
        except Exception as error:  # the in-process client re-raises what the app did not handle (a 500)
            raise AssertionError(f"500 {error!r}\n{case.as_curl_command()}") from error
        case.validate_response(response, checks=CHECKS)

    run()


def assert_no_failures(failures: list[str]) -> None:
    assert not failures, f"{len(failures)} operations failed:\n\n" + "\n\n".join(failures)


def test_ingest_answers_every_generated_request_within_its_schema(
    stack: Stack, isolated: tuple[str, Topics], lifespans: None
) -> None:
    url, topics = isolated
    app = create_ingest_app(ingest_settings(stack, database_url=url, topics=topics, default_rate_limit_per_s=10_000))
    write_key: dict[str, str] = {}

    def headers(path: str) -> dict[str, str]:
        return ADMIN if path.startswith("/v1/admin") else write_key

    target = Target(app, headers)
    write_key.update(ingest_write_key(target))
    assert_no_failures(fuzz(target))


def ingest_write_key(target: Target) -> dict[str, str]:
    with asgi.get_client(target.app) as client:
        created = client.post("/v1/admin/sources", json={"name": "fuzz", "kind": "api"}, headers=ADMIN)
    assert created.status_code == 201, created.text
    return {"authorization": f"Bearer {created.json()['credentials']['write_key']}"}


def test_scoring_answers_every_generated_request_within_its_schema(
    stack: Stack, isolated: tuple[str, Topics], lifespans: None
) -> None:
    url, topics = isolated
    settings = scoring_settings(stack, database_url=url, topics=topics, consumer_group=unique("fuzz-scoring"))
    assert_no_failures(fuzz(Target(create_scoring_app(settings), lambda _: ADMIN)))


def test_routing_answers_every_generated_request_within_its_schema(
    stack: Stack, isolated: tuple[str, Topics], lifespans: None
) -> None:
    url, topics = isolated
    settings = routing_settings(stack, database_url=url, topics=topics, consumer_group=unique("fuzz-routing"))
    app = create_routing_app(settings)
    sales_admin: dict[str, str] = {}

    def headers(path: str) -> dict[str, str]:
        return ADMIN if path.startswith("/v1/admin") else sales_admin

    target = Target(app, headers)
    with asgi.get_client(target.app) as client:
        body = {"id": f"fuzz-{secrets.token_hex(4)}", "name": "fuzz", "role": "admin"}
        created = client.post("/v1/admin/users", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    sales_admin["authorization"] = f"Bearer {created.json()['token']}"
    assert_no_failures(fuzz(target))


def test_reporting_answers_every_generated_request_within_its_schema(
    stack: Stack, isolated: tuple[str, Topics], lifespans: None
) -> None:
    url, topics = isolated
    settings = reporting_settings(stack, database_url=url, topics=topics, consumer_group=unique("fuzz-reporting"))
    assert_no_failures(fuzz(Target(create_reporting_app(settings), lambda _: ADMIN)))
