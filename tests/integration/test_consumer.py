"""The consume loop against the real embedded PostgreSQL and broker: exactly-once effects, order, dead letters."""

import asyncio
from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared import db
from shared.bus import Publisher, ensure_topics
from shared.config import LeadflowSettings, Topics
from shared.consumer import BatchHandler, Handler, Progress, consume
from shared.events import CloudEvent, to_record
from tests.conftest import Stack
from tests.e2e.counting import (
    Counting,
    applied_records,
    counter,
    counting,
    counts,
    create_schema,
    drop_schema,
    make_event,
    read_topic,
    running,
    unique,
    wait_until,
)


@pytest.fixture(scope="module")
async def schema(engine: AsyncEngine) -> AsyncIterator[Counting]:
    c = counting(unique("test_bus"))
    await create_schema(engine, c)
    yield c
    await drop_schema(engine, c)


@pytest.fixture
async def settings(stack: Stack) -> LeadflowSettings:
    """The session broker with a topic of our own and a dead-letter topic of our own."""
    settings = stack.settings.model_copy(update={"topics": Topics(dead_letters=unique("test.dlq"))})
    await ensure_topics(settings.kafka_bootstrap, [settings.topics.dead_letters], 4)
    return settings


@pytest.fixture
async def topic(settings: LeadflowSettings) -> str:
    name = unique("test.consumer")
    await ensure_topics(settings.kafka_bootstrap, [name], 4)
    return name


@pytest.fixture
async def publisher(settings: LeadflowSettings) -> AsyncIterator[Publisher]:
    publisher = Publisher(settings)
    await publisher.start()
    yield publisher
    await publisher.stop()


def consumer_of(
    settings: LeadflowSettings,
    engine: AsyncEngine,
    c: Counting,
    publisher: Publisher,
    handle: Handler,
    **options: Any,
) -> Any:
    options.setdefault("group", unique("group"))
    # The embedded broker numbers the first generation 0, for which aiokafka skips LeaveGroup on stop:
    # a short session lets the next consumer of the group in without waiting 10 s for the old one.
    options.setdefault("kafka_options", {"session_timeout_ms": 3000, "heartbeat_interval_ms": 500})
    return consume(settings, db.sessionmaker(engine), c.bus, publisher, handle, **options)


def backlog(subjects: int, per_subject: int) -> list[CloudEvent[Any]]:
    names = [unique("s") for _ in range(subjects)]
    return [make_event(name, seq) for seq in range(1, per_subject + 1) for name in names]


async def publish(publisher: Publisher, topic: str, events: list[CloudEvent[Any]]) -> None:
    for start in range(0, len(events), 200):
        await publisher.publish([(topic, e) for e in events[start : start + 200]])


async def wait_for_state(
    engine: AsyncEngine, c: Counting, expected: dict[str, int], group: str, topic: str, records: int
) -> None:
    async def done() -> bool:
        got = await counts(engine, c)
        applied = {s: got[s][0] for s in expected if s in got}
        return applied == expected and await applied_records(engine, c, group, topic) == records

    await wait_until(done, what=f"{sum(expected.values())} events applied")


def expected_counts(events: list[CloudEvent[Any]]) -> dict[str, int]:
    expected: dict[str, int] = {}
    for event in events:
        assert event.subject is not None
        expected[event.subject] = expected.get(event.subject, 0) + 1
    return expected


async def out_of_order(engine: AsyncEngine, c: Counting, subjects: dict[str, int]) -> int:
    got = await counts(engine, c)
    return sum(got[s][1] for s in subjects)


async def test_an_event_published_twice_is_applied_once_and_in_order(
    settings: LeadflowSettings, engine: AsyncEngine, schema: Counting, publisher: Publisher, topic: str
) -> None:
    events = backlog(subjects=20, per_subject=10)
    await publish(publisher, topic, events)
    await publish(publisher, topic, events[::4])  # redelivered: same ids again, later in the log
    expected = expected_counts(events)
    group = unique("group")
    progress = Progress(group)
    async with running(
        consumer_of(
            settings, engine, schema, publisher, counter(schema), group=group, topics=[topic], progress=progress
        )
    ):
        await wait_for_state(engine, schema, expected, group, topic, records=len(events) + len(events[::4]))
        await wait_until(lambda: _caught_up(progress, topic), what="lag of 0 on all 4 partitions")
        lag = [REGISTRY.get_sample_value("leadflow_consumer_lag", _labels(group, topic, p)) for p in range(4)]
    assert lag == [0, 0, 0, 0]
    assert await out_of_order(engine, schema, expected) == 0
    assert REGISTRY.get_sample_value("leadflow_consumer_lag", _labels(group, topic, 0)) is None  # stopped


def _labels(group: str, topic: str, partition: int) -> dict[str, str]:
    return {"group": group, "topic": topic, "partition": str(partition)}


async def _caught_up(progress: Progress, topic: str) -> bool:
    lag = progress.lag()
    return len([tp for tp in lag if tp.topic == topic]) == 4 and progress.caught_up()


async def test_a_consumer_cancelled_mid_way_and_restarted_reaches_the_same_state(
    settings: LeadflowSettings, engine: AsyncEngine, schema: Counting, publisher: Publisher, topic: str
) -> None:
    events = backlog(subjects=30, per_subject=20)
    await publish(publisher, topic, events)
    group = unique("group")
    for _ in range(2):  # cancel twice part-way, then run to the end
        async with running(
            consumer_of(settings, engine, schema, publisher, counter(schema), group=group, topics=[topic])
        ):
            already = await applied_records(engine, schema, group, topic)
            progressed = partial(_more_applied, engine, schema, group, topic, already + 50)
            await wait_until(progressed, what="some progress")
    await publish(publisher, topic, events[:100])  # and some re-posted while it was down
    expected = expected_counts(events)
    async with running(consumer_of(settings, engine, schema, publisher, counter(schema), group=group, topics=[topic])):
        await wait_for_state(engine, schema, expected, group, topic, records=len(events) + 100)
    assert await out_of_order(engine, schema, expected) == 0


async def _more_applied(engine: AsyncEngine, c: Counting, group: str, topic: str, at_least: int) -> bool:
    return await applied_records(engine, c, group, topic) >= at_least


async def test_two_consumers_in_one_group_share_the_partitions_and_apply_each_event_once(
    settings: LeadflowSettings, engine: AsyncEngine, schema: Counting, publisher: Publisher, topic: str
) -> None:
    events = backlog(subjects=20, per_subject=30)
    group = unique("group")
    await publish(publisher, topic, events[:300])
    progress = [Progress(group), Progress(group)]
    first, second = (
        consumer_of(settings, engine, schema, publisher, counter(schema), group=group, topics=[topic], progress=p)
        for p in progress
    )
    async with running(first):
        await wait_until(lambda: _more_applied(engine, schema, group, topic, 100), what="first consumer started")
        async with running(second):
            await wait_until(lambda: _sharing(progress), what="both consumers hold partitions")
            await publish(publisher, topic, events[300:])
            await wait_for_state(engine, schema, expected_counts(events), group, topic, records=len(events))
    assert await out_of_order(engine, schema, expected_counts(events)) == 0


async def _sharing(progress: list[Progress]) -> bool:
    held = [set(p.ends) for p in progress]
    return all(held) and not held[0] & held[1]


def poison_on(event_ids: set[str], handle: Handler) -> Handler:
    async def fussy(session: AsyncSession, event: CloudEvent[Any], record: ConsumerRecord) -> None:
        if event.id in event_ids:
            raise ValueError(f"cannot apply {event.id}")
        await handle(session, event, record)

    return fussy


async def test_undecodable_unknown_and_failing_records_are_dead_lettered_and_the_partition_moves_on(
    settings: LeadflowSettings, engine: AsyncEngine, schema: Counting, publisher: Publisher, topic: str
) -> None:
    subject = unique("s")
    first, poison, last = make_event(subject, 1), make_event(subject, 2), make_event(subject, 3)
    key, value, headers = to_record(first)
    unknown = [(k, b"leadflow.touch.teleport.v1" if k == "ce_type" else v) for k, v in headers]
    await publisher.publish([(topic, first)])
    await publisher.publish_raw(topic, b"{not json", key=key, headers=headers)
    await publisher.publish_raw(topic, value, key=key, headers=unknown)
    await publisher.publish_raw(topic, None, key=key, headers=[])  # a tombstone: skipped, not dead-lettered
    await publisher.publish([(topic, poison), (topic, last)])
    group = unique("group")
    handle = poison_on({poison.id}, counter(schema))
    async with running(consumer_of(settings, engine, schema, publisher, handle, group=group, topics=[topic])):
        await wait_for_state(engine, schema, {first.subject or "": 2}, group, topic, records=6)
        dead = await read_topic(settings.kafka_bootstrap, settings.topics.dead_letters, at_least=3)
    assert [r.value for r in dead] == [b"{not json", value, to_record(poison)[1]]
    assert {r.key for r in dead} == {key}
    errors = [dict(r.headers)["dlq_error"].decode() for r in dead]
    assert errors[0].startswith("EventDecodeError")
    assert "teleport" in errors[1]
    assert errors[2] == f"ValueError: cannot apply {poison.id}"
    assert [int(dict(r.headers)["dlq_offset"]) for r in dead] == [1, 2, 4]
    assert {dict(r.headers)["dlq_group"] for r in dead} == {group.encode()}
    assert all(dict(r.headers)["ce_id"] == dict(headers)["ce_id"] for r in dead[:2])


def terminating_connection_on(event_id: str, times: int, tries: list[str], handle: Handler) -> Handler:
    """Kills its own database connection the first `times` times it sees the event: a real lost connection."""

    async def flaky(session: AsyncSession, event: CloudEvent[Any], record: ConsumerRecord) -> None:
        if event.id == event_id:
            tries.append(event.id)
            if len(tries) <= times:
                await session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        await handle(session, event, record)

    return flaky


async def test_a_lost_database_connection_is_retried_and_never_dead_lettered(
    settings: LeadflowSettings, engine: AsyncEngine, schema: Counting, publisher: Publisher, topic: str
) -> None:
    subject = unique("s")
    events = [make_event(subject, seq) for seq in (1, 2, 3)]
    await publisher.publish([(topic, e) for e in events])
    tries: list[str] = []
    handle = terminating_connection_on(events[1].id, 3, tries, counter(schema))
    group = unique("group")
    async with running(
        consumer_of(settings, engine, schema, publisher, handle, group=group, topics=[topic], max_attempts=2)
    ):
        await wait_for_state(engine, schema, expected_counts(events), group, topic, records=3)
    assert len(tries) == 4
    assert await _dead_letter_count(settings) == 0


async def _dead_letter_count(settings: LeadflowSettings) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(settings.topics.dead_letters, p) for p in range(4)]
        return sum((await consumer.end_offsets(partitions)).values())  # 0 means empty, even on the embedded broker
    finally:
        await consumer.stop()


async def test_cancelling_the_consumer_lets_the_in_flight_transaction_commit(
    settings: LeadflowSettings, engine: AsyncEngine, schema: Counting, publisher: Publisher, topic: str
) -> None:
    event = make_event(unique("s"), 1)
    await publisher.publish([(topic, event)])
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(session: AsyncSession, e: CloudEvent[Any], record: ConsumerRecord) -> None:
        entered.set()
        await release.wait()
        await counter(schema)(session, e, record)

    task = asyncio.create_task(consumer_of(settings, engine, schema, publisher, slow, topics=[topic]))
    await asyncio.wait_for(entered.wait(), 30)
    task.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with engine.connect() as conn:
        processed = schema.bus.processed
        stored = await conn.execute(select(func.count()).select_from(processed).where(processed.c.event_id == event.id))
        assert stored.scalar_one() == 1
    assert (await counts(engine, schema))[event.subject or ""] == (1, 0)


# --- with a batch handler: a poll's records of a partition in one transaction, same guarantees ---


def batched(handle: Handler, sizes: list[int]) -> BatchHandler:
    """Applies each event with `handle`, remembering how many came in each call."""

    async def apply(session: AsyncSession, events: Sequence[tuple[CloudEvent[Any], ConsumerRecord]]) -> None:
        sizes.append(len(events))
        for event, record in events:
            await handle(session, event, record)

    return apply


async def test_a_backlog_is_applied_in_batches_exactly_once_and_in_order(
    settings: LeadflowSettings, engine: AsyncEngine, schema: Counting, publisher: Publisher, topic: str
) -> None:
    events = backlog(subjects=20, per_subject=20)
    await publish(publisher, topic, events)
    await publish(publisher, topic, events[::3])  # redelivered: same ids again, later in the log
    sizes: list[int] = []
    handle = counter(schema)
    group = unique("group")
    consumer = consumer_of(
        settings, engine, schema, publisher, handle, group=group, topics=[topic], handle_batch=batched(handle, sizes)
    )
    async with running(consumer):
        await wait_for_state(engine, schema, expected_counts(events), group, topic, records=len(events) * 4 // 3 + 1)
    assert await out_of_order(engine, schema, expected_counts(events)) == 0
    assert max(sizes) > 1, "records of one poll arrive together"
    assert sum(sizes) == len(events)  # the repeats never reach the handler


async def test_a_poison_record_in_a_batch_is_dead_lettered_alone_and_the_rest_applied(
    settings: LeadflowSettings, engine: AsyncEngine, schema: Counting, publisher: Publisher, topic: str
) -> None:
    name = unique("s")
    events = [make_event(name, seq) for seq in range(1, 11)]
    subject, poison = events[0].subject or "", events[4]
    key, _, headers = to_record(events[0])
    await publisher.publish([(topic, e) for e in events[:3]])
    await publisher.publish_raw(topic, b"{not json", key=key, headers=headers)
    await publisher.publish_raw(topic, None, key=key, headers=[])  # a tombstone: skipped, not dead-lettered
    await publisher.publish([(topic, e) for e in events[3:]])
    group = unique("group")
    handle = poison_on({poison.id}, counter(schema))
    consumer = consumer_of(
        settings, engine, schema, publisher, handle, group=group, topics=[topic], handle_batch=batched(handle, [])
    )
    async with running(consumer):
        await wait_for_state(engine, schema, {subject: 9}, group, topic, records=12)
        dead = await read_topic(settings.kafka_bootstrap, settings.topics.dead_letters, at_least=2)
    assert sorted(r.value for r in dead) == sorted([b"{not json", to_record(poison)[1]])
    assert await out_of_order(engine, schema, {subject: 9}) == 0
