"""The whole loop: signed webhook -> ingest -> scoring -> routing assignment, as ratios of same-run baselines.

One embedded stack (fresh folder, free ports); ingest, scoring and routing started as production starts them
(`python -m services.<name>`). Every event is a signed generic-webhook form fill (`form_id: demo`) of a new,
well-fitting person, so each becomes one lead, one MQL and one assignment (two teams by territory, four reps
each). An observer in this process reads `leadflow.leads` (who is which lead) and `leadflow.assignments` (when
each lead was assigned) from the broker.

Figures:
1. sustained loop throughput: a burst of events sent as fast as ingest takes them (batches of 100), rate from
   the first send to the last assignment; baselines: ingest alone acknowledging the same burst, and a raw
   aiokafka produce -> consume hop of as many records;
2. webhook-to-assignment latency p50/p99 at 50% of the loop rate, one event per request; baseline: the raw
   aiokafka hop's produce -> consume latency at the same rate;
3. replicas: the burst again with two scoring and two routing processes (same consumer groups); baseline: one.
"""

import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.plan import Plan, say
from bench.report import Figure, Result
from bench.stack import Stack, embedded
from shared.cli import stop_processes, wait_ready
from shared.stack import free_port

BURST = 1500
BATCH = 100
COUNTRIES = ("DE", "US")
HOP_TOPIC = "bench.e2e-hop"


@dataclass
class Loop:
    stack: Stack
    admin: str
    processes: dict[str, subprocess.Popen[bytes]]
    ingest_port: int
    ports: dict[str, int] = field(default_factory=dict)
    source_id: str = ""
    secret: str = ""

    def env(self, name: str, port: int) -> dict[str, str]:
        return self.stack.env(
            LEADFLOW_ADMIN_TOKEN=self.admin,
            LEADFLOW_SECRET_KEY="bench-secret-key-0123456789",
            LEADFLOW_LOG_LEVEL="WARNING",
            LEADFLOW_SLA_SWEEP_S="3600",
            LEADFLOW_RECYCLE_SWEEP_S="3600",
            **{f"LEADFLOW_{name.upper()}_PORT": str(port), f"LEADFLOW_{name.upper()}_GROUP": f"bench-{name}"},
        )

    def start(self, name: str, replica: int = 1) -> None:
        port = self.ingest_port if name == "ingest" else free_port()
        label = f"{name}-{replica}"
        self.ports[label] = port
        self.processes[label] = self.stack.spawn(f"services.{name}", self.env(name, port), label)
        wait_ready(label, port, self.processes[label], 90)


def set_up(loop: Loop) -> None:
    admin = {"authorization": f"Bearer {loop.admin}"}
    with httpx.Client(timeout=30, headers=admin) as http:
        created = http.post(
            f"http://127.0.0.1:{loop.ingest_port}/v1/admin/sources",
            json={"name": "bench", "kind": "generic", "rate_limit_per_s": 100_000},
        )
        created.raise_for_status()
        loop.source_id, loop.secret = created.json()["id"], created.json()["credentials"]["signing_secret"]
        routing = f"http://127.0.0.1:{loop.ports['routing-1']}/v1/admin"
        for team, country in zip(("emea", "americas"), COUNTRIES, strict=True):
            http.put(f"{routing}/territories/{team}", json={"name": team, "countries": [country]}).raise_for_status()
            http.put(f"{routing}/teams/{team}", json={"name": team}).raise_for_status()
            for n in range(4):
                rep = {"name": f"{team} {n}", "team_ids": [team], "capacity": 100_000}
                http.put(f"{routing}/reps/{team}-{n}", json=rep).raise_for_status()
        rules = [{"id": t, "when": {"territories": [t]}, "team_id": t} for t in ("emea", "americas")]
        http.put(f"{routing}/rules", json={"rules": rules, "fallback_team_id": "emea"}).raise_for_status()


def form_fill(run: str, n: int) -> dict[str, Any]:
    return {
        "type": "leadflow.touch.form_fill.v1",
        "identity": {"email": f"p{n}-{run}@bench{n % 50}.example"},
        "form_id": "demo",
        "attributes": {
            "title": "VP Sales",
            "company": f"Bench {n % 50}",
            "industry": "software",
            "employees": 300,
            "country": COUNTRIES[n % 2],
        },
    }


def signed(secret: str, body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    signature = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "content-type": "application/json",
        "X-Leadflow-Timestamp": stamp,
        "X-Leadflow-Signature": f"v1={signature}",
    }


@dataclass
class Observer:
    """Reads who became which lead and when each lead was assigned, from the end of the topics at start."""

    bootstrap: str
    topics: tuple[str, str]
    lead_of: dict[str, str] = field(default_factory=dict)  # email -> lead id
    assigned: dict[str, float] = field(default_factory=dict)  # lead id -> monotonic time seen

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["Observer"]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20)
        await consumer.start()
        try:
            partitions = [tp for t in self.topics for tp in await _partitions(consumer, t)]
            consumer.assign(partitions)
            await consumer.seek_to_end(*partitions)
            for tp in partitions:
                await consumer.position(tp)
            task = asyncio.create_task(self._read(consumer))
            try:
                yield self
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            await consumer.stop()

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        leads, _ = self.topics
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.monotonic()
            for tp, records in batches.items():
                for r in records:
                    kind = dict(r.headers).get("ce_type", b"").decode()
                    if tp.topic == leads and kind == "leadflow.lead.created.v1" and r.value:
                        data = json.loads(r.value)
                        if data.get("email"):
                            self.lead_of[data["email"]] = data["lead_id"]
                    elif kind == "leadflow.assignment.assigned.v1" and r.value:
                        self.assigned.setdefault(json.loads(r.value)["lead_id"], now)

    def assigned_at(self, email: str) -> float | None:
        lead = self.lead_of.get(email)
        return self.assigned.get(lead) if lead else None


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[Any]:
    from aiokafka import TopicPartition

    for _ in range(50):
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        await consumer.force_metadata_update()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no partitions for {topic}")


@dataclass
class Burst:
    sent: int
    ingest_s: float  # first send to last acknowledgement
    loop_s: float  # first send to last assignment
    assigned: int


async def burst(loop: Loop, events: int, timeout_s: float = 180) -> Burst:
    run = uuid.uuid4().hex[:8]
    topics = (loop.stack.settings.topics.leads, loop.stack.settings.topics.assignments)
    url = f"http://127.0.0.1:{loop.ingest_port}/v1/webhooks/generic/{loop.source_id}"
    emails = [form_fill(run, n)["identity"]["email"] for n in range(events)]
    observer = Observer(loop.stack.settings.kafka_bootstrap, topics)
    async with observer.running() as seen, httpx.AsyncClient(timeout=60) as http:
        bodies = [
            json.dumps([form_fill(run, n) for n in range(i, min(i + BATCH, events))]).encode()
            for i in range(0, events, BATCH)
        ]
        limit = asyncio.Semaphore(4)

        async def post(body: bytes) -> None:
            async with limit:
                response = await http.post(url, content=body, headers=signed(loop.secret, body))
                response.raise_for_status()

        start = time.monotonic()
        await asyncio.gather(*(post(b) for b in bodies))
        acked = time.monotonic()
        deadline = acked + timeout_s
        while time.monotonic() < deadline:
            done = [t for e in emails if (t := seen.assigned_at(e)) is not None]
            if len(done) == events:
                break
            await asyncio.sleep(0.2)
        done = [t for e in emails if (t := seen.assigned_at(e)) is not None]
    if len(done) < events:
        say(f"  only {len(done)} of {events} assigned within {timeout_s:.0f} s")
    last = max(done) if done else time.monotonic()
    result = Burst(events, acked - start, last - start, len(done))
    say(
        f"  burst of {events}: ingest acknowledged {events / result.ingest_s:,.0f} events/s, "
        f"loop {result.assigned / result.loop_s:,.0f} assignments/s"
    )
    return result


async def steady(loop: Loop, rate: float, plan: Plan) -> list[float]:
    """One event per request at `rate`/s; latency (ms) from send to the assignment seen, warm-up dropped."""
    run = uuid.uuid4().hex[:8]
    topics = (loop.stack.settings.topics.leads, loop.stack.settings.topics.assignments)
    url = f"http://127.0.0.1:{loop.ingest_port}/v1/webhooks/generic/{loop.source_id}"
    total = int(rate * (plan.warmup_s + plan.duration_s))
    sent: dict[str, float] = {}
    observer = Observer(loop.stack.settings.kafka_bootstrap, topics)
    async with observer.running() as seen, httpx.AsyncClient(timeout=60) as http:
        start = time.monotonic()

        async def one(n: int) -> None:
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            event = form_fill(run, n)
            body = json.dumps(event).encode()
            sent[event["identity"]["email"]] = time.monotonic()
            (await http.post(url, content=body, headers=signed(loop.secret, body))).raise_for_status()

        await asyncio.gather(*(one(n) for n in range(total)))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sum(seen.assigned_at(e) is not None for e in sent) == total:
                break
            await asyncio.sleep(0.2)
        counted = [e for e, t in sent.items() if t - start >= plan.warmup_s]
        return [
            (at - sent[e]) * 1000 for e in counted if (at := seen.assigned_at(e)) is not None
        ]  # unassigned ones are reported below


async def hop(bootstrap: str, count: int, rate: float | None) -> tuple[float, list[float]]:
    """Raw aiokafka: produce `count` records (acks=all) and consume them; rate/s and per-record latency (ms)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20)
    await producer.start()
    await consumer.start()
    try:
        partitions = await _partitions(consumer, HOP_TOPIC)
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:
            await consumer.position(tp)
        sent: dict[bytes, float] = {}
        got: dict[bytes, float] = {}
        payload = json.dumps(form_fill("hop", 0)).encode()

        keys = [uuid.uuid4().hex.encode() for _ in range(count)]
        wanted = set(keys)

        async def read() -> None:
            while len(wanted) > 0:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    now = time.monotonic()
                    for r in records:
                        if r.key in wanted:
                            got[r.key] = now
                            wanted.discard(r.key)

        reader = asyncio.create_task(read())
        start = time.monotonic()
        pending = []
        for n, key in enumerate(keys):
            if rate:
                await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            sent[key] = time.monotonic()
            pending.append(await producer.send(HOP_TOPIC, payload, key=key))
        await asyncio.gather(*pending)
        await asyncio.wait_for(reader, 60)
        elapsed = max(got.values()) - start
        return count / elapsed, [(got[k] - sent[k]) * 1000 for k in sent]
    finally:
        await producer.stop()
        await consumer.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run_benchmark(plan: Plan) -> Result:
    with (
        embedded(["ingest", "scoring", "routing"], extra_topics=[HOP_TOPIC]) as stack,
        contextlib.ExitStack() as cleanup,
    ):
        processes: dict[str, subprocess.Popen[bytes]] = {}
        cleanup.callback(stop_processes, processes)
        loop = Loop(stack, secrets.token_urlsafe(24), processes, free_port())
        say("starting ingest, scoring and routing (one process each)")
        for name in ("ingest", "scoring", "routing"):
            loop.start(name)
        set_up(loop)
        bootstrap = stack.settings.kafka_bootstrap
        say("warm-up burst (one replica each)")
        asyncio.run(burst(loop, BURST // 5))
        one: list[Burst] = []
        hops: list[float] = []
        for n in range(plan.rounds):
            say(f"round {n + 1}/{plan.rounds}: burst through the loop, then the raw aiokafka hop")
            one.append(asyncio.run(burst(loop, BURST)))
            hops.append(asyncio.run(hop(bootstrap, BURST, None))[0])
        loop_rate = max(b.assigned / b.loop_s for b in one)
        ingest_rate = max(b.sent / b.ingest_s for b in one)
        rate = max(1.0, loop_rate / 2)
        say(f"steady load at {rate:,.0f} events/s (50% of the loop's rate), one event per request")
        latencies = asyncio.run(steady(loop, rate, plan))
        _, hop_latencies = asyncio.run(hop(bootstrap, int(rate * plan.duration_s), rate))
        say("starting a second scoring and a second routing process (same consumer groups)")
        loop.start("scoring", 2)
        loop.start("routing", 2)
        asyncio.run(burst(loop, BURST // 5))  # let both groups settle on the new members
        two = [asyncio.run(burst(loop, BURST)) for _ in range(plan.rounds)]
        two_rate = max(b.assigned / b.loop_s for b in two)
        expected = int(rate * plan.duration_s)
        deadlocks = sum(
            f.read_text(errors="replace").count("deadlock detected") for f in stack.folder.glob("routing-*.log")
        )
        return summarise(
            plan,
            stack,
            one + two,
            loop_rate,
            ingest_rate,
            max(hops),
            latencies,
            hop_latencies,
            two_rate,
            expected,
            deadlocks,
        )


def summarise(
    plan: Plan,
    stack: Stack,
    bursts: list[Burst],
    loop_rate: float,
    ingest_rate: float,
    hop_rate: float,
    latencies: list[float],
    hop_latencies: list[float],
    two_rate: float,
    expected: int,
    deadlocks: int,
) -> Result:
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    figures = [
        Figure("loop throughput vs ingest alone", "events/s", loop_rate, ingest_rate, goal=0.1),
        Figure("loop throughput vs aiokafka hop", "events/s", loop_rate, hop_rate, goal=0.05),
        Figure(
            "webhook -> assignment p50 at 50% load",
            "ms",
            p50,
            percentile(hop_latencies, 0.5),
            goal=0.05,
            lower_is_better=True,
        ),
        Figure(
            "webhook -> assignment p99 at 50% load",
            "ms",
            p99,
            percentile(hop_latencies, 0.99),
            goal=0.05,
            lower_is_better=True,
        ),
        Figure("loop throughput, 2 replicas vs 1", "events/s", two_rate, loop_rate, goal=1.3),
    ]
    lost = sum(b.sent - b.assigned for b in bursts)
    notes = [
        f"each event: a signed generic-webhook form fill (form_id demo) of a new well-fitting person -> one lead, "
        f"one MQL, one assignment; two teams by territory, 4 reps each; bursts of {BURST} in batches of {BATCH} "
        "(4 requests in flight), rate from the first send to the last `assigned` event seen on the broker",
        "baselines: ingest's own acknowledgement rate for the same bursts; a raw aiokafka producer (acks=all, "
        "linger 2 ms) and consumer moving as many records through one topic; for latency, that hop's "
        "produce -> consume time at the same rate",
        f"latency: one event per request at 50% of the loop's best burst rate, {plan.warmup_s:g} s warm-up "
        f"dropped, {plan.duration_s:g} s counted ({len(latencies)} of {expected} counted events assigned)",
        f"replicas: a second `python -m services.scoring` and `services.routing` in the same consumer groups, "
        f"{stack.settings.topic_partitions} partitions per topic; best of {plan.rounds} bursts each",
        f"events sent but not assigned within 180 s over all bursts: {lost}; routing batches retried after "
        f"PostgreSQL reported a deadlock: {deadlocks}",
        "broker: embedded Tansu (memory-only); PostgreSQL, the broker, the services and this load generator "
        "share the machine",
    ]
    return Result("e2e (webhook -> ingest -> scoring -> routing)", "loop", "baseline", figures, notes)
