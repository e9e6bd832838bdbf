"""Routing: MQL-event-to-assignment latency at a steady rate and assignments/s draining a burst, as ratios
of what a raw aiokafka consume loop does over the same topic in the same run.

One embedded stack; the real routing service started as production starts it (`python -m
services.routing`) with a team of eight reps and one rule. The baseline (`python -m bench.routing echo`)
is a raw aiokafka consumer that, for each MQL event, produces one record (acks=all): routing minus the
database, the decision and the outbox. Latency is from the MQL event's time to the outgoing record
reaching a reader in this process; both run alternately against the same leads topic.
"""

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.plan import Plan, say
from bench.report import Figure, Result
from bench.stack import Stack, embedded
from shared.bus import Publisher
from shared.cli import stop_processes, wait_ready
from shared.config import LeadflowSettings, Topics
from shared.events import CloudEvent, LeadCreated, LeadData, LeadScoreChanged, LeadStageChanged
from shared.stack import free_port

STEADY_PER_S = 50  # MQLs per second in the latency phase
BURST = 2000  # MQLs published at once in the throughput phase
REPS = 8
MQL_TYPE = "leadflow.lead.stage_changed.v1"


@dataclass(frozen=True)
class Phase:
    latencies_ms: list[float]
    per_s: float


def lead_events(lead_id: str, at: datetime) -> list[CloudEvent[Any]]:
    """What scoring publishes when a lead becomes MQL: created, scored, stage changed."""
    data: list[LeadData] = [
        LeadCreated(lead_id=lead_id, identifier=f"anon:{lead_id}"),
        LeadScoreChanged(lead_id=lead_id, fit=30, engagement=40, total=70, grade="B", model_version=1),
        LeadStageChanged(lead_id=lead_id, from_stage="lead", to_stage="mql", cause="score"),
    ]
    return [
        CloudEvent(id=uuid.uuid4().hex, source="/bench", type=getattr(d, "type"), time=at, subject=lead_id, data=d)  # noqa: B009
        for d in data
    ]


async def reader(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    await consumer._client.force_metadata_update()
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for tp in partitions:
        await consumer.position(tp)  # resolve "end" now: records produced from here on are ours
    return consumer


async def collect(consumer: AIOKafkaConsumer, expected: int, timeout_s: float) -> list[tuple[float, float]]:
    """(sent time, received time) of `expected` outgoing records, from their ce_time header."""
    seen: list[tuple[float, float]] = []
    deadline = time.monotonic() + timeout_s
    while len(seen) < expected and time.monotonic() < deadline:
        for records in (await consumer.getmany(timeout_ms=200)).values():
            now = time.time()
            for r in records:
                sent = datetime.fromisoformat(dict(r.headers)["ce_time"].decode()).timestamp()
                seen.append((sent, now))
    if len(seen) < expected:
        raise RuntimeError(f"only {len(seen)} of {expected} outgoing records after {timeout_s:g} s")
    return seen


async def prime(publisher: Publisher, topic: str, consumer: AIOKafkaConsumer, leads: int = 20) -> None:
    """A few MQLs through end to end first: the consumer has joined its group and caught up when they are out."""
    await publisher.publish(
        [(topic, e) for _ in range(leads) for e in lead_events(uuid.uuid4().hex, datetime.now(UTC))]
    )
    await collect(consumer, leads, 120)


async def phases(settings: LeadflowSettings, out_topic: str, plan: Plan) -> tuple[Phase, Phase]:
    """A steady rate for the plan's duration (latency), then a burst (throughput)."""
    publisher = Publisher(settings)
    await publisher.start()
    consumer = await reader(settings.kafka_bootstrap, out_topic)
    try:
        await prime(publisher, settings.topics.leads, consumer)
        steady = int(STEADY_PER_S * (plan.warmup_s + plan.duration_s))
        warm = int(STEADY_PER_S * plan.warmup_s)
        collecting = asyncio.create_task(collect(consumer, steady, plan.duration_s + plan.warmup_s + 120))
        start = time.monotonic()
        for n in range(steady):
            await asyncio.sleep(max(0.0, start + n / STEADY_PER_S - time.monotonic()))
            await publisher.publish(
                [(settings.topics.leads, e) for e in lead_events(uuid.uuid4().hex, datetime.now(UTC))]
            )
        timed = sorted(await collecting)[warm:]
        latencies = [(received - sent) * 1000 for sent, received in timed]
        collecting = asyncio.create_task(collect(consumer, BURST, 300))
        began = time.time()
        burst = [e for _ in range(BURST) for e in lead_events(uuid.uuid4().hex, datetime.now(UTC))]
        for i in range(0, len(burst), 600):
            await publisher.publish([(settings.topics.leads, e) for e in burst[i : i + 600]])
        done = await collecting
        per_s = BURST / (max(received for _, received in done) - began)
        return Phase(latencies, STEADY_PER_S), Phase([], per_s)
    finally:
        await consumer.stop()
        await publisher.stop()


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


# --- the baseline: a raw aiokafka consume loop -------------------------------------------------------


async def echo(bootstrap: str, topic: str, out: str) -> None:
    """For each MQL event of `topic` from now on, one record to `out` (acks=all) with its ce_time; until killed."""
    consumer = await reader(bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    print("ready", flush=True)  # the bench waits for this line in the log
    while True:
        for records in (await consumer.getmany(timeout_ms=200)).values():
            sends = [
                await producer.send(out, key=r.key, value=b"{}", headers=list(r.headers))
                for r in records
                if dict(r.headers).get("ce_type") == MQL_TYPE.encode()
            ]
            await asyncio.gather(*sends)


# --- running both ------------------------------------------------------------------------------------


def start_routing(stack: Stack, processes: dict[str, subprocess.Popen[bytes]]) -> None:
    admin_token, port = secrets.token_urlsafe(24), free_port()
    topics = stack.settings.topics
    env = stack.env(
        LEADFLOW_ADMIN_TOKEN=admin_token,
        LEADFLOW_SECRET_KEY=secrets.token_urlsafe(32),
        LEADFLOW_ROUTING_PORT=str(port),
        LEADFLOW_TOPIC_LEADS=topics.leads,
        LEADFLOW_TOPIC_ASSIGNMENTS=topics.assignments,
        LEADFLOW_LOG_LEVEL="WARNING",
    )
    processes["routing"] = stack.spawn("services.routing", env, "routing")
    wait_ready("routing", port, processes["routing"])
    hours = {"days": list(range(7)), "start": "00:00:00", "end": "23:59:59"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"authorization": f"Bearer {admin_token}"}) as c:
        c.put("/v1/admin/teams/bench", json={"name": "bench"}).raise_for_status()
        for n in range(REPS):
            rep = {"name": f"rep {n}", "team_ids": ["bench"], "capacity": 100_000, "working_hours": hours}
            c.put(f"/v1/admin/reps/rep-{n}", json=rep).raise_for_status()
        c.put("/v1/admin/rules", json={"rules": [{"id": "all", "team_id": "bench"}]}).raise_for_status()


def wait_for_line(log_file: Path, line: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while line not in log_file.read_text(errors="replace").splitlines():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{log_file.name}: never said {line!r}")
        time.sleep(0.1)


def run_benchmark(plan: Plan) -> Result:
    topics = Topics(assignments="bench.assignments", leads="bench.leads")
    with embedded(["routing"], topics, extra_topics=["bench.echo"]) as stack:
        settings = stack.settings
        processes: dict[str, subprocess.Popen[bytes]] = {}
        try:
            start_routing(stack, processes)
            say("routing: steady rate, then burst")
            routed = asyncio.run(phases(settings, settings.topics.assignments, plan))
            stop_processes({"routing": processes.pop("routing")})
            args = ["bench.routing", "echo", settings.kafka_bootstrap, settings.topics.leads, "bench.echo"]
            processes["echo"] = stack.spawn(args, dict(os.environ), "echo")
            wait_for_line(stack.folder / "echo.log", "ready", processes["echo"])
            say("raw aiokafka consume loop: steady rate, then burst")
            echoed = asyncio.run(phases(settings, "bench.echo", plan))
        finally:
            stop_processes(processes)
    return summarise(routed, echoed, plan, settings.topic_partitions)


def summarise(routed: tuple[Phase, Phase], echoed: tuple[Phase, Phase], plan: Plan, partitions: int) -> Result:
    (r_steady, r_burst), (e_steady, e_burst) = routed, echoed
    figures = [
        Figure(f"burst of {BURST} MQLs drained", "assignments/s", r_burst.per_s, e_burst.per_s),
        Figure(f"MQL -> assignment p50 at {STEADY_PER_S}/s", "ms", percentile(r_steady.latencies_ms, 50),
               percentile(e_steady.latencies_ms, 50), lower_is_better=True),
        Figure(f"MQL -> assignment p99 at {STEADY_PER_S}/s", "ms", percentile(r_steady.latencies_ms, 99),
               percentile(e_steady.latencies_ms, 99), lower_is_better=True),
    ]  # fmt: skip
    notes = [
        "baseline: a raw aiokafka consumer (own group, same leads topic) producing one record per MQL event "
        "(acks=all); routing: each poll's records of a partition in one transaction (offsets, dedupe, read model, "
        "then the decisions under the lead's and team's locks, assignments, outbox), then the relay publishes",
        f"each lead is three events (created, score changed, stage changed to mql); {REPS} reps, one rule; "
        f"latency from the MQL event's time to the outgoing record at a reader, {plan.warmup_s:g} s warm-up "
        f"dropped, {plan.duration_s:g} s counted at {STEADY_PER_S} MQLs/s; burst: {BURST} MQLs published at once, "
        "rate from the first publish to the last outgoing record",
        f"broker: embedded Tansu (memory-only), {partitions} partitions per topic; one routing process",
    ]
    return Result("routing", "routing", "aiokafka loop", figures, notes)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.routing echo")
    parser.add_argument("mode", choices=["echo"])
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("out")
    options = parser.parse_args()
    asyncio.run(echo(options.bootstrap, options.topic, options.out))
