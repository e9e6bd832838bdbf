"""Ingest throughput and latency as ratios of what FastAPI alone and aiokafka alone do on this machine.

One embedded stack (fresh folder, free ports), the real ingest service started as production starts
it (`python -m services.ingest`, settings from LEADFLOW_* variables), and two baselines:

1. single events: a bare FastAPI endpoint (bench/bare.py) that parses the same JSON and answers 202,
   served by uvicorn with the same options in its own process;
2. batches of 500: a raw aiokafka producer (acks=all, bench/load.py) sending the same events to the
   same broker.

The load generator is a third process (bench/load.py), closed-loop with a fixed concurrency.
"""

import contextlib
import json
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.plan import Plan, say
from bench.report import Figure, Result
from bench.stack import ROOT, Stack, embedded
from services.ingest.sources.native import MAX_BATCH
from shared.cli import stop_processes, wait_ready
from shared.config import LeadflowSettings
from shared.stack import free_port

SINGLE_CONCURRENCY = 16
BATCH_CONCURRENCY = 4
Run = dict[str, Any]


@dataclass
class Target:
    """Where a load is sent: an HTTP endpoint (with its process, for profiling) or the broker itself."""

    name: str
    args: list[str]
    pid: int | None = None


@dataclass
class Services:
    folder: Path
    settings: LeadflowSettings
    processes: dict[str, subprocess.Popen[bytes]]
    ingest_port: int
    bare_port: int
    write_key: str


def create_api_source(port: int, admin_token: str) -> str:
    """An api source with the highest rate limit the admin API allows, so the bench is never throttled."""
    response = httpx.post(
        f"http://127.0.0.1:{port}/v1/admin/sources",
        json={"name": "bench", "kind": "api", "rate_limit_per_s": 100_000},
        headers={"authorization": f"Bearer {admin_token}"},
        timeout=10,
    )
    response.raise_for_status()
    key: str = response.json()["credentials"]["write_key"]
    return key


@contextlib.contextmanager
def services() -> Iterator[Services]:
    """The embedded stack, migrated and with topics; ingest and the bare app running."""
    with embedded(["ingest"]) as stack, contextlib.ExitStack() as cleanup:
        processes: dict[str, subprocess.Popen[bytes]] = {}
        cleanup.callback(stop_processes, processes)
        yield start_services(stack, processes)


def start_services(stack: Stack, processes: dict[str, subprocess.Popen[bytes]]) -> Services:
    admin_token = secrets.token_urlsafe(24)
    ingest_port, bare_port = free_port(), free_port()
    env = stack.env(
        LEADFLOW_ADMIN_TOKEN=admin_token,
        LEADFLOW_SECRET_KEY=secrets.token_urlsafe(32),
        LEADFLOW_INGEST_HOST="127.0.0.1",
        LEADFLOW_INGEST_PORT=str(ingest_port),
        LEADFLOW_INGEST_PUBLIC_URL=f"http://127.0.0.1:{ingest_port}",
    )
    say("starting ingest (python -m services.ingest) and the bare FastAPI baseline")
    processes["ingest"] = stack.spawn("services.ingest", env, "ingest")
    processes["bare"] = stack.spawn("bench.bare", {**env, "BENCH_PORT": str(bare_port)}, "bare")
    wait_ready("ingest", ingest_port, processes["ingest"])
    wait_ready("bare", bare_port, processes["bare"])
    key = create_api_source(ingest_port, admin_token)
    return Services(stack.folder, stack.settings, processes, ingest_port, bare_port, key)


@contextlib.contextmanager
def profiled(target: Target, plan: Plan, label: str) -> Iterator[None]:
    """py-spy records the target process for the length of one run, when asked and available."""
    py_spy = shutil.which("py-spy")
    if plan.profile_dir is None or target.pid is None or py_spy is None:
        yield
        return
    plan.profile_dir.mkdir(parents=True, exist_ok=True)
    output = plan.profile_dir / f"{label}.folded"  # collapsed stacks: speedscope.app or flamegraph.pl read them
    seconds = str(int(plan.warmup_s + plan.duration_s + 1))
    recorder = subprocess.Popen(
        [py_spy, "record", "--pid", str(target.pid), "--duration", seconds, "--format", "raw", "--output", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        try:
            recorder.wait(30)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait()
        say(f"profile of {target.name}: {output}")


def measure(target: Target, kind: str, plan: Plan, extra: list[str]) -> Run:
    """One run of the load generator in its own process; its JSON summary."""
    command = [
        sys.executable,
        "-m",
        "bench.load",
        *target.args,
        f"--warmup={plan.warmup_s}",
        f"--duration={plan.duration_s}",
        *extra,
    ]
    with profiled(target, plan, f"{target.name}-{kind}"):
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=plan.warmup_s + plan.duration_s + 120
        )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}):\n{done.stderr[-3000:]}")
    run: Run = json.loads(done.stdout)
    if run["ok"] == 0:
        raise RuntimeError(f"{target.name}: no request succeeded; statuses {run['statuses']}")
    rate = f"{run['events_per_s']:,.0f} events/s" if kind == "batch" else f"{run['requests_per_s']:,.0f} req/s"
    errors = f", {run['errors']} errors {run['statuses']}" if run["errors"] else ""
    say(f"  {kind:6} {target.name:8} {rate:>18}  p50 {run['p50_ms']:.1f} ms  p99 {run['p99_ms']:.1f} ms{errors}")
    return run


def best(runs: list[Run], key: str) -> Run:
    return max(runs, key=lambda r: float(r[key]))


def run_benchmark(plan: Plan) -> Result:
    with services() as s:
        http = ["http", "--key", s.write_key]
        ingest_url, bare_url = (f"--url=http://127.0.0.1:{port}/v1/events" for port in (s.ingest_port, s.bare_port))
        ingest = Target("ingest", [*http, ingest_url], pid=s.processes["ingest"].pid)
        bare = Target("bare", [*http, bare_url])
        kafka = ["kafka", f"--bootstrap={s.settings.kafka_bootstrap}", f"--topic={s.settings.topics.touches}"]
        producer = Target("aiokafka", kafka)
        single = [f"--concurrency={SINGLE_CONCURRENCY}", "--batch=1", "--distinct=2000", "--max-requests=200000"]
        batch = [f"--concurrency={BATCH_CONCURRENCY}", f"--batch={MAX_BATCH}", "--distinct=16", "--max-requests=1000"]
        runs: dict[str, list[Run]] = {"ingest-single": [], "bare": [], "ingest-batch": [], "aiokafka": []}
        for n in range(plan.rounds):
            say(f"ingest round {n + 1}/{plan.rounds}")
            runs["ingest-single"].append(measure(ingest, "single", plan, single))
            runs["bare"].append(measure(bare, "single", plan, single))
            runs["ingest-batch"].append(measure(ingest, "batch", plan, batch))
            runs["aiokafka"].append(measure(producer, "batch", plan, batch))
    return summarise(runs, plan, s.settings.topic_partitions)


def summarise(runs: dict[str, list[Run]], plan: Plan, partitions: int) -> Result:
    single, bare = best(runs["ingest-single"], "requests_per_s"), best(runs["bare"], "requests_per_s")
    batch, raw = best(runs["ingest-batch"], "events_per_s"), best(runs["aiokafka"], "events_per_s")
    figures = [
        Figure("single event throughput", "requests/s", single["requests_per_s"], bare["requests_per_s"]),
        Figure("single event latency p50", "ms", single["p50_ms"], bare["p50_ms"], lower_is_better=True),
        Figure("single event latency p99", "ms", single["p99_ms"], bare["p99_ms"], lower_is_better=True),
        Figure(f"batch of {MAX_BATCH} throughput", "events/s", batch["events_per_s"], raw["events_per_s"]),
    ]
    errors = sum(r["errors"] for key in ("ingest-single", "ingest-batch") for r in runs[key])
    notes = [
        f"single events: bare FastAPI endpoint (parse JSON, 202) as baseline; {SINGLE_CONCURRENCY} keep-alive "
        f"connections; batches: raw aiokafka producer (acks=all, linger 2 ms) sending the same records to the "
        f"same broker, {BATCH_CONCURRENCY} batches in flight",
        f"closed loop, {plan.warmup_s:g} s warm-up then {plan.duration_s:g} s counted, best of {plan.rounds} "
        "alternating rounds; load generator in its own process on the same machine",
        f"broker: embedded Tansu (memory-only), {partitions} partitions per topic",
        f"ingest answers other than 202 over all rounds: {errors}",
    ]
    return Result("ingest", "ingest", "baseline", figures, notes)
