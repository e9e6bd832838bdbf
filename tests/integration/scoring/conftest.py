"""A scoring app per test module, in-process, consuming a touches topic of its own (unique group too)."""

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from services.scoring.config import ScoringSettings
from services.scoring.identity import lead_id_for
from shared.bus import Publisher
from shared.events import AssignmentData, CloudEvent, DealData, EmailOpened, Identity, TouchData, WebVisited, event_for
from tests.conftest import Stack, Tail, own_topics, scoring_client, scoring_settings
from tests.e2e.counting import unique, wait_until


@pytest.fixture(scope="module")
async def settings(stack: Stack) -> ScoringSettings:
    """Its own touches, deals and assignments topics (not every other test's); the shared leads and dead letters."""
    topics = await own_topics(stack, "touches", "deals", "assignments")
    return scoring_settings(stack, topics=topics, consumer_group=unique("scoring"), recycle_sweep_s=0.5)


@pytest.fixture(scope="module")
async def scoring(settings: ScoringSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with scoring_client(settings) as client:
        yield client


Send = Callable[..., Awaitable[CloudEvent[Any]]]


@pytest.fixture(scope="module")
def send(settings: ScoringSettings, publisher: Publisher) -> Send:
    """Publish one touch to the module's touches topic; `event_id` repeats an event."""

    async def publish(data: TouchData | DealData, *, event_id: str | None = None) -> CloudEvent[Any]:
        event = event_for(data, id=event_id or unique("touch"), source="/test/scoring", received_at=datetime.now(UTC))
        topic = settings.topics.deals if isinstance(data, DealData) else settings.topics.touches
        await publisher.publish([(topic, event)])
        return event

    return publish


Feedback = Callable[..., Awaitable[CloudEvent[Any]]]


@pytest.fixture(scope="module")
def feedback(settings: ScoringSettings, publisher: Publisher) -> Feedback:
    """Publish one assignment event, as routing would, to the module's assignments topic."""

    async def publish(data: AssignmentData, *, event_id: str | None = None) -> CloudEvent[Any]:
        event_type: str = getattr(data, "type")  # noqa: B009
        event = CloudEvent(
            id=event_id or unique("assignment"),
            source="/test/routing",
            type=event_type,
            time=datetime.now(UTC),
            subject=data.lead_id,
            data=data,
        )
        await publisher.publish([(settings.topics.assignments, event)])
        return event

    return publish


def email() -> str:
    return f"{unique('p')}@acme-{unique('co')}.com"


async def wait_for_lead(
    client: httpx.AsyncClient, lead_id: str, ready: Callable[[dict[str, Any]], bool] = lambda _: True
) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def check() -> bool:
        response = await client.get(f"/v1/leads/{lead_id}")
        if response.status_code == 200:
            found.update(response.json())
            return ready(found)
        return False

    await wait_until(check, timeout_s=20, what=f"lead {lead_id}")
    return found


SCORED = "leadflow.lead.score_changed.v1"


def lead_events(tail: Tail, lead_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(type, data) of every lead event published for the lead, in order."""
    return [
        (r.type, orjson.loads(r.value))
        for r in tail.records
        if r.topic == "leadflow.leads" and r.key == lead_id.encode() and not r.tombstone
    ]


async def has_event(tail: Tail, lead_id: str, event_type: str, n: int) -> bool:
    return sum(1 for t, _ in lead_events(tail, lead_id) if t == event_type) >= n


async def wait_for_progress(scoring: httpx.AsyncClient, version: int) -> dict[str, Any]:
    progress: dict[str, Any] = {}

    async def done() -> bool:
        progress.update((await scoring.get("/v1/model/rescore")).json())
        return bool(progress["version"] == version and progress["pending"] == 0)

    await wait_until(done, timeout_s=20, what="rescoring done")
    return progress


async def one_person_as_two_leads(scoring: httpx.AsyncClient, send: Send) -> tuple[str, str, str, str]:
    """(email, anonymous id, known lead, anonymous lead): an email reader and an anonymous pricing visitor who are
    the same person, not yet linked."""
    address, anonymous = email(), unique("anon")
    await send(EmailOpened(identity=Identity(email=address)))
    await send(WebVisited(identity=Identity(anonymous_id=anonymous), url="https://acme.test/pricing"))
    known, anon = lead_id_for(address), lead_id_for(f"anon:{anonymous}")
    await wait_for_lead(scoring, known)
    await wait_for_lead(scoring, anon)
    return address, anonymous, known, anon
