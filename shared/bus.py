"""aiokafka at the edges: topic creation and a publisher that answers only after the broker acked.

Producers use acks=all and key every record by its subject (identity key, lead id, deal id), so a
lead's events share a partition and keep their order (DESIGN §4.4). Idempotent producers are only
switched on against Apache Kafka: the embedded broker refuses InitProducerId (DESIGN §5).
"""

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from shared.config import LeadflowSettings
from shared.events import CloudEvent, to_record

log = logging.getLogger(__name__)

RawRecord = tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]


class BrokerUnavailable(Exception):
    """The broker did not ack in time; the caller answers 503 and the client retries with the same ids."""


async def ensure_topics(bootstrap: str, topics: Sequence[str], partitions: int) -> list[str]:
    """Create the topics that are missing; returns the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                await admin.create_topics([NewTopic(t, partitions, 1) for t in missing])
        return missing
    finally:
        await admin.close()


class Publisher:
    """One aiokafka producer per process, (re)started in the background while the broker is away."""

    def __init__(self, settings: LeadflowSettings, *, idempotent: bool = False) -> None:
        self._settings = settings
        self._idempotent = idempotent
        self._producer: AIOKafkaProducer | None = None
        self._starting: asyncio.Task[None] | None = None

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap,
            acks="all",
            enable_idempotence=self._idempotent,
            linger_ms=2,
            max_request_size=2 * 1024 * 1024,
            request_timeout_ms=int(self._settings.publish_timeout_s * 1000),
            retry_backoff_ms=100,
        )

    async def start(self) -> None:
        """Connect now if the broker is there, else keep trying in the background."""
        try:
            await self._connect_once()
        except (KafkaError, OSError) as exc:
            log.warning("broker not reachable at start; retrying in background", extra={"error": str(exc)})
            self._starting = asyncio.create_task(self._connect_forever())

    async def _connect_once(self) -> None:
        producer = self._new_producer()
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer

    async def _connect_forever(self) -> None:
        while self._producer is None:
            await asyncio.sleep(1)
            try:
                await self._connect_once()
                log.info("broker connected")
            except (KafkaError, OSError):
                continue

    async def stop(self) -> None:
        if self._starting is not None:
            self._starting.cancel()
        if self._producer is not None:
            await self._producer.stop()  # flushes what is pending

    async def publish(self, records: Sequence[tuple[str, CloudEvent[Any]]]) -> None:
        """Send every event and wait for all acks; BrokerUnavailable if that does not happen in time."""
        producer = self._producer
        if producer is None:
            raise BrokerUnavailable("broker not connected")
        try:
            async with asyncio.timeout(self._settings.publish_timeout_s):
                futures = []
                for topic, event in records:
                    key, value, headers = to_record(event)
                    futures.append(await producer.send(topic, value, key=key, headers=headers))
                await asyncio.gather(*futures)
        except (TimeoutError, KafkaError, OSError) as exc:
            raise BrokerUnavailable(f"broker did not acknowledge: {type(exc).__name__}") from exc

    async def publish_raw(
        self, topic: str, value: bytes, *, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        producer = self._producer
        if producer is None:
            raise BrokerUnavailable("broker not connected")
        try:
            async with asyncio.timeout(self._settings.publish_timeout_s):
                await producer.send_and_wait(topic, value, key=key, headers=headers)
        except (TimeoutError, KafkaError, OSError) as exc:
            raise BrokerUnavailable(f"broker did not acknowledge: {type(exc).__name__}") from exc

    async def publish_raw_many(self, records: Sequence[RawRecord]) -> None:
        """Send (topic, key, value, headers) records in this order and wait for every ack (outbox batches)."""
        producer = self._producer
        if producer is None:
            raise BrokerUnavailable("broker not connected")
        try:
            async with asyncio.timeout(self._settings.publish_timeout_s):
                futures = [await producer.send(t, v, key=k, headers=h) for t, k, v, h in records]
                await asyncio.gather(*futures)
        except (TimeoutError, KafkaError, OSError) as exc:
            raise BrokerUnavailable(f"broker did not acknowledge: {type(exc).__name__}") from exc

    async def check(self) -> None:
        """Readiness: the broker answers a metadata request now."""
        producer = self._producer
        if producer is None:
            raise BrokerUnavailable("broker not connected")
        if not await producer.client.force_metadata_update():
            raise BrokerUnavailable("metadata request failed")
