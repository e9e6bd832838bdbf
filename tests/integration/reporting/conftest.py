"""A reporting app per test module, in-process, consuming four topics of its own (and its own group)."""

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reporting import store
from services.reporting.config import ReportingSettings
from shared.bus import Publisher
from shared.events import AssignmentData, CloudEvent, DealData, LeadData, Payload, TouchData, event_for
from tests.conftest import ADMIN_TOKEN, Stack, own_topics, reporting_client, reporting_settings
from tests.e2e.counting import unique

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
READ_MODELS = [t for t in store.metadata.sorted_tables if t.name not in ("campaigns", "costs", "targets")]


@pytest.fixture(scope="module")
async def settings(stack: Stack) -> ReportingSettings:
    topics = await own_topics(stack, "touches", "deals", "leads", "assignments")
    return reporting_settings(stack, topics=topics, consumer_group=unique("reporting"))


@pytest.fixture(scope="module")
async def reporting(settings: ReportingSettings, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    await empty_read_models(engine)  # another module's events must not show in this one's reports
    async with reporting_client(settings) as client:
        yield client


async def empty_read_models(engine: AsyncEngine) -> None:
    names = ", ".join(f'reporting."{t.name}"' for t in READ_MODELS)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names}"))


Send = Callable[..., Awaitable[CloudEvent[Any]]]


@pytest.fixture(scope="module")
def send(settings: ReportingSettings, publisher: Publisher) -> Send:
    """Publish one event to the module's topic for its kind, at `at`; `event_id` repeats an event."""

    async def publish(data: Payload, at: datetime, *, event_id: str | None = None) -> CloudEvent[Any]:
        topics = settings.topics
        event_id = event_id or unique("event")
        if isinstance(data, TouchData | DealData):
            event = event_for(data, id=event_id, source="/test/reporting", received_at=at)
            topic = topics.deals if isinstance(data, DealData) else topics.touches
        else:
            assert isinstance(data, LeadData | AssignmentData)
            event_type: str = getattr(data, "type")  # noqa: B009
            event = CloudEvent(event_id, "/test/reporting", event_type, at, data, subject=data.lead_id)
            topic = topics.leads if isinstance(data, LeadData) else topics.assignments
        await publisher.publish([(topic, event)])
        return event

    return publish
