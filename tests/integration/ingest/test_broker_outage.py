"""DESIGN §4.1: a 2xx means the event is in Kafka; a broker that is away gives 503 with Retry-After.

This module runs its own broker (not the session one) so that killing it disturbs no other test.
"""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from shared.bus import ensure_topics
from shared.stack import EmbeddedBroker, free_port, start_broker
from tests.conftest import Stack, create_source, ingest_client, ingest_settings


@pytest.fixture
async def own_broker(stack: Stack) -> AsyncIterator[tuple[int, list[EmbeddedBroker]]]:
    port = free_port()
    brokers = [start_broker(port, stack.folder / "outage-broker.log")]
    await ensure_topics(brokers[0].bootstrap, stack.settings.topics.all(), 2)
    yield port, brokers
    brokers[-1].stop()


async def ids_in_topic(bootstrap: str, topic: str) -> set[str]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=2000)
        return {dict(r.headers)["ce_id"].decode() for records in batches.values() for r in records}
    finally:
        await consumer.stop()


def touch() -> dict[str, object]:
    return {"type": "leadflow.touch.form_fill.v1", "identity": {"email": f"o{uuid.uuid4().hex[:8]}@example.com"}}


async def post_until_accepted(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    for _ in range(60):
        response = await client.post("/v1/events", json=touch(), headers=headers)
        if response.status_code == 202:
            return response
        await asyncio.sleep(0.5)
    raise AssertionError(f"never accepted again: {response.status_code} {response.text}")


async def test_broker_down_gives_503_with_retry_after_and_ingest_recovers(
    stack: Stack, own_broker: tuple[int, list[EmbeddedBroker]]
) -> None:
    port, brokers = own_broker
    settings = ingest_settings(stack, kafka_bootstrap=brokers[0].bootstrap, publish_timeout_s=1.5)
    async with ingest_client(settings) as client:
        source = await create_source(client, "api")
        auth = {"authorization": f"Bearer {source['credentials']['write_key']}"}
        assert (await client.post("/v1/events", json=touch(), headers=auth)).status_code == 202

        brokers[0].kill()
        down = await client.post("/v1/events", json=touch(), headers=auth)
        assert down.status_code == 503
        assert down.headers["content-type"] == "application/problem+json"
        assert int(down.headers["retry-after"]) > 0
        assert (await client.get("/readyz")).json()["checks"]["broker"].startswith("failed")

        brokers.append(start_broker(port, stack.folder / "outage-broker.log"))
        await ensure_topics(brokers[-1].bootstrap, stack.settings.topics.all(), 2)
        accepted = await post_until_accepted(client, auth)
        [event_id] = accepted.json()["ids"]
        assert event_id in await ids_in_topic(brokers[-1].bootstrap, "leadflow.touches")


async def test_ingest_starts_without_a_broker_and_is_not_ready_until_one_comes(
    stack: Stack, own_broker: tuple[int, list[EmbeddedBroker]]
) -> None:
    port, brokers = own_broker
    brokers[0].kill()
    settings = ingest_settings(stack, kafka_bootstrap=f"127.0.0.1:{port}", publish_timeout_s=1.0)
    async with ingest_client(settings) as client:
        source = await create_source(client, "api")
        auth = {"authorization": f"Bearer {source['credentials']['write_key']}"}
        assert (await client.get("/readyz")).status_code == 503
        refused = await client.post("/v1/events", json=touch(), headers=auth)
        assert refused.status_code == 503, refused.text
        assert json.loads(refused.text)["status"] == 503

        brokers.append(start_broker(port, stack.folder / "outage-broker.log"))
        await ensure_topics(brokers[-1].bootstrap, stack.settings.topics.all(), 2)
        await post_until_accepted(client, auth)
        assert (await client.get("/readyz")).status_code == 200
