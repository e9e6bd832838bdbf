"""Scoring working a backlog, as ratios of what aiokafka alone and PostgreSQL's COPY alone do here.

One embedded stack; a backlog of realistic journeys (anonymous visits, a form fill that merges them
into a known lead, email opens and clicks) published to the touches topic; then, on that same topic:

1. a raw aiokafka consume-and-decode loop (`from_record` on every record), in this process;
2. a raw asyncpg COPY of the same touches into a copy of `scoring.touches` (same keys and index);
3. the real scoring service (`python -m services.scoring`) started on the backlog with a new group.
   Its rate is counted from its first stored offset to its last, from its own offsets table.

Then latency at a steady rate: new people's form fills published one by one with `occurred_at` = now;
the time to the first lead event about each (its CloudEvents `time` is the touch's) against the time
for the touch itself to reach a consumer of the touches topic (one hop, the floor for any consumer).
"""

import asyncio
import contextlib
import random
import secrets
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.ingest import Target, profiled
from bench.plan import Plan, say
from bench.report import Figure, Result
from bench.stack import Stack, embedded
from shared.bus import Publisher
from shared.cli import stop_processes, wait_ready
from shared.config import LeadflowSettings
from shared.events import (
    CloudEvent,
    EmailClicked,
    EmailOpened,
    FormFilled,
    Identified,
    Identity,
    TouchData,
    WebVisited,
    event_for,
    from_record,
    to_record,
)
from shared.stack import free_port

PEOPLE = 6_000  # about 6 touches each
STEADY_RATE_PER_S = 100.0
TITLES = ["Software Engineer", "VP Engineering", "CTO", "Procurement Manager", "Data Analyst", "Head of IT"]
INDUSTRIES = ["software", "finance", "retail", "manufacturing", "healthcare"]
PAGES = ["/", "/pricing", "/docs/start", "/blog/lead-scoring", "/customers", "/careers"]


def journey(person: int, start: datetime, rng: random.Random) -> list[TouchData]:
    """Two or three anonymous page views, a form fill that names the visitor, then email engagement;
    every fourth person also browses on a second device and logs in there (a merge)."""
    anon, email = f"anon-{person}", f"person{person}@company{person % 900}.com"
    at = start + timedelta(minutes=rng.randrange(60 * 24 * 20))
    touches: list[TouchData] = []
    for _ in range(rng.randrange(2, 4)):
        at += timedelta(minutes=rng.randrange(5, 600))
        url = f"https://acme.test{rng.choice(PAGES)}"
        touches.append(WebVisited(identity=Identity(anonymous_id=anon), url=url, occurred_at=at, duration_s=40))
    at += timedelta(minutes=rng.randrange(1, 60))
    fields = {
        "job_title": rng.choice(TITLES),
        "company": f"Company {person % 900}",
        "employees": rng.choice([8, 60, 400, 2500]),
        "industry": rng.choice(INDUSTRIES),
    }
    touches.append(FormFilled(identity=Identity(email=email, anonymous_id=anon), form_id="demo", fields=fields))
    for _ in range(rng.randrange(1, 4)):
        at += timedelta(hours=rng.randrange(1, 72))
        touches.append(EmailOpened(identity=Identity(email=email), message_id=f"m{person}", occurred_at=at))
    at += timedelta(hours=2)
    link = "https://acme.test/pricing"
    touches.append(EmailClicked(identity=Identity(email=email), link_url=link, occurred_at=at))
    if person % 4 == 0:  # a second device: its own anonymous lead until a login merges it into the known one
        phone = Identity(anonymous_id=f"anon-{person}-phone")
        at += timedelta(hours=rng.randrange(1, 48))
        touches.append(WebVisited(identity=phone, url="https://acme.test/pricing", occurred_at=at, duration_s=90))
        at += timedelta(minutes=3)
        login = Identity(email=email, anonymous_id=phone.anonymous_id)
        touches.append(Identified(identity=login, attributes={"job_title": rng.choice(TITLES)}, occurred_at=at))
    return touches


def backlog(people: int) -> list[CloudEvent[Any]]:
    rng = random.Random(7)
    start = datetime(2026, 10, 1, tzinfo=UTC)
    received = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        event_for(touch, id=f"bench-{person}-{n}", source="/bench", received_at=received)
        for person in range(people)
        for n, touch in enumerate(journey(person, start, rng))
    ]


async def publish(settings: LeadflowSettings, events: list[CloudEvent[Any]]) -> None:
    publisher = Publisher(settings.model_copy(update={"publish_timeout_s": 60.0}))
    await publisher.start()
    try:
        for start in range(0, len(events), 2000):
            await publisher.publish([(settings.topics.touches, e) for e in events[start : start + 2000]])
    finally:
        await publisher.stop()


async def raw_consume_and_decode(settings: LeadflowSettings, expected: int) -> float:
    """Records/s of a bare aiokafka loop reading the topic from the start and decoding every record."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(settings.topics.touches, p) for p in range(settings.topic_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen, started = 0, time.perf_counter()
        while seen < expected:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    from_record(record.value, record.headers)
                seen += len(records)
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def raw_copy(dsn: str, events: list[CloudEvent[Any]]) -> float:
    """Rows/s of asyncpg's COPY of the same touches into a table shaped like `scoring.touches`."""
    rows = []
    for event in events:
        _, value, _ = to_record(event)
        rows.append((event.id, event.subject, event.time, event.data.type, value.decode()))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TABLE IF EXISTS public.copied_touches")
        await conn.execute("CREATE TABLE public.copied_touches (LIKE scoring.touches INCLUDING ALL)")
        started = time.perf_counter()
        columns = ["event_id", "lead_id", "occurred_at", "type", "payload"]
        await conn.copy_records_to_table("copied_touches", records=rows, columns=columns, schema_name="public")
        return len(rows) / (time.perf_counter() - started)
    finally:
        await conn.close()


async def applied(dsn: str, group: str, topic: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        query = 'SELECT coalesce(sum("offset" + 1), 0) FROM scoring.consumer_offsets WHERE group_id = $1 AND topic = $2'
        return int(await conn.fetchval(query, group, topic))
    finally:
        await conn.close()


async def scoring_rate(dsn: str, group: str, topic: str, expected: int) -> tuple[float, float]:
    """Touches/s from the first stored offset to the last, and seconds to get through the whole backlog."""
    first: tuple[float, int] | None = None
    started = time.perf_counter()
    last_report = started
    while True:
        done = await applied(dsn, group, topic)
        now = time.perf_counter()
        if first is None and done > 0:
            first = (now, done)
        if done >= expected:
            assert first is not None
            return (done - first[1]) / max(now - first[0], 1e-9), now - started
        if now - last_report > 5:
            say(f"  scoring: {done:,}/{expected:,} touches applied")
            last_report = now
        await asyncio.sleep(0.1)


def start_scoring(s: Stack, group: str) -> tuple[Any, int]:
    port = free_port()
    env = s.env(
        LEADFLOW_ADMIN_TOKEN=secrets.token_urlsafe(24),
        LEADFLOW_SCORING_PORT=str(port),
        LEADFLOW_SCORING_GROUP=group,
        LEADFLOW_LOG_LEVEL="WARNING",
    )
    return s.spawn("services.scoring", env, "scoring"), port


async def steady_latency(settings: LeadflowSettings, seconds: float) -> tuple[list[float], list[float]]:
    """(one hop to a touches consumer, touch to its first lead event) in ms, for touches sent one by one."""
    topics = [settings.topics.touches, settings.topics.leads]
    tail = AIOKafkaConsumer(*topics, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="latest")
    await tail.start()
    publisher = Publisher(settings)
    await publisher.start()
    hop: dict[str, float] = {}
    lead: dict[str, float] = {}
    sent: dict[str, float] = {}

    async def listen() -> None:
        async for record in tail:
            headers = dict(record.headers)
            touch_time = headers["ce_time"].decode()
            arrived = time.time()
            table = hop if record.topic == settings.topics.touches else lead
            table.setdefault(touch_time, arrived)

    listening = asyncio.create_task(listen())
    try:
        await asyncio.sleep(2)  # the tail's partitions assigned and at the end
        rng, n = random.Random(11), 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            n += 1
            now = datetime.now(UTC)
            fields = {"job_title": rng.choice(TITLES), "employees": 400, "industry": "software"}
            touch = FormFilled(identity=Identity(email=f"steady{n}@acme{n}.com"), form_id="demo", fields=fields)
            event = event_for(touch, id=f"steady-{n}", source="/bench", received_at=now)
            sent[now.isoformat()] = now.timestamp()
            await publisher.publish([(settings.topics.touches, event)])
            await asyncio.sleep(1 / STEADY_RATE_PER_S)
        await asyncio.sleep(3)  # the last ones through
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listening
        await publisher.stop()
        await tail.stop()
    hops = [(hop[t] - at) * 1000 for t, at in sent.items() if t in hop]
    leads = [(lead[t] - at) * 1000 for t, at in sent.items() if t in lead]
    say(f"  steady: {len(sent)} sent, {len(hops)} seen on touches, {len(leads)} with a lead event")
    return hops, leads


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def run_benchmark(plan: Plan) -> Result:
    events = backlog(PEOPLE)
    with embedded(["scoring"]) as s, contextlib.ExitStack() as cleanup:
        say(f"publishing a backlog of {len(events):,} touches ({PEOPLE:,} people)")
        asyncio.run(publish(s.settings, events))
        raw = max(asyncio.run(raw_consume_and_decode(s.settings, len(events))) for _ in range(plan.rounds))
        say(f"  raw aiokafka consume + decode: {raw:,.0f} records/s")
        copy = max(asyncio.run(raw_copy(s.dsn, events)) for _ in range(plan.rounds))
        say(f"  raw asyncpg COPY: {copy:,.0f} rows/s")
        processes: dict[str, Any] = {}
        cleanup.callback(stop_processes, processes)
        group = "scoring-bench"
        processes["scoring"], port = start_scoring(s, group)
        with profiled(Target("scoring", [], pid=processes["scoring"].pid), plan, "scoring-backlog"):
            rate, total_s = asyncio.run(scoring_rate(s.dsn, group, s.settings.topics.touches, len(events)))
        say(f"  scoring: {rate:,.0f} touches/s ({total_s:.1f} s for the backlog, start-up included)")
        wait_ready("scoring", port, processes["scoring"])
        hops, leads = asyncio.run(steady_latency(s.settings, plan.duration_s))
    figures = [
        Figure("backlog vs consume + decode", "touches/s", rate, raw, goal=0.1),
        Figure("backlog vs COPY", "touches/s", rate, copy, goal=0.1),
        Figure(
            "touch to lead event p50", "ms", percentile(leads, 50), percentile(hops, 50), goal=0.1, lower_is_better=True
        ),
        Figure(
            "touch to lead event p99", "ms", percentile(leads, 99), percentile(hops, 99), goal=0.1, lower_is_better=True
        ),
    ]
    notes = [
        f"backlog: {len(events):,} touches of {PEOPLE:,} journeys (2-3 anonymous visits, a form fill that names "
        "the visitor, 1-3 opens, a click; every fourth person also a second device and a login there, a merge), "
        "6 partitions; scoring starts after all are published, new group",
        "baselines: a raw aiokafka loop reading and decoding (`from_record`) the same records; asyncpg "
        "`copy_records_to_table` of the same touches into a table like `scoring.touches` (best of "
        f"{plan.rounds})",
        f"latency: {STEADY_RATE_PER_S:g} form fills/s of new people for {plan.duration_s:g} s; baseline is the same "
        "touch's arrival at a plain consumer of the touches topic (one hop)",
        "broker: embedded Tansu (memory-only); one scoring process; the outbox relay polls every 50 ms",
    ]
    return Result("scoring", "scoring", "baseline", figures, notes)
