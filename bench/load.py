"""The load generator, run in its own process so it never shares an event loop with what it measures.

`python -m bench.load http ...` drives an HTTP endpoint with a fixed number of keep-alive HTTP/1.1
connections on raw asyncio streams (pre-built request bytes: far lighter than an HTTP client
library, which matters on a 2-core machine). `python -m bench.load kafka ...` sends the same touches
as ingest would publish them, straight to the broker with aiokafka. Both are closed loops bounded
by a time window and a request count, and print one JSON object with the figures on stdout.
"""

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
import uvloop

Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]


def touch(i: int) -> dict[str, Any]:
    """A web visit as a marketing site would post it; every one has its own identity."""
    return {
        "type": "leadflow.touch.web_visit.v1",
        "identity": {"email": f"visitor{i}@example.com", "anonymous_id": f"anon-{i:08d}"},
        "occurred_at": "2026-03-02T10:15:00Z",
        "campaign": {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "spring-launch"},
        "channel": "web",
        "url": f"https://www.example.com/pricing?ref={i}",
        "referrer": "https://mail.example.net/",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0",
        "title": "Pricing",
        "duration_s": 42.5,
    }


def bodies(batch: int, count: int) -> list[bytes]:
    """`count` distinct JSON bodies: one touch object when batch is 1, else an array of `batch` touches."""
    if batch == 1:
        return [orjson.dumps(touch(i)) for i in range(count)]
    return [orjson.dumps([touch(b * batch + i) for i in range(batch)]) for b in range(count)]


@dataclass
class Samples:
    """Latencies of the requests that started inside the window; the window closes at its end or its count."""

    start: float
    end: float
    max_requests: int
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    last_done: float = 0.0

    def open(self, now: float) -> bool:
        return now < self.end and len(self.latencies) < self.max_requests

    def add(self, started: float, done: float, status: int) -> None:
        if started < self.start:
            return  # warm-up
        self.latencies.append(done - started)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.last_done = max(self.last_done, done)

    def summary(self, ok_status: int, events_per_request: int) -> dict[str, Any]:
        ok = self.statuses.get(ok_status, 0)
        elapsed = max(self.last_done - self.start, 1e-9)
        ordered = sorted(self.latencies)

        def percentile(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else float("nan")

        return {
            "requests": len(self.latencies),
            "ok": ok,
            "errors": len(self.latencies) - ok,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "elapsed_s": elapsed,
            "requests_per_s": ok / elapsed,
            "events_per_s": ok * events_per_request / elapsed,
            "p50_ms": percentile(0.50),
            "p99_ms": percentile(0.99),
        }


class Connection:
    """One keep-alive HTTP/1.1 connection; answers must carry Content-Length (uvicorn's always do)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> "Connection":
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> int:
        self.writer.write(raw)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        at = head.lower().find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError(f"answer without Content-Length: {head[:200]!r}")
        length = int(head[at + 17 : head.index(b"\r\n", at + 2)])
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def http_requests(url: str, write_key: str, payloads: list[bytes]) -> list[bytes]:
    parts = urlsplit(url)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {write_key}\r\n"
        "Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
    return [head.replace("{length}", str(len(p))).encode() + p for p in payloads]


async def drive_http(args: argparse.Namespace) -> dict[str, Any]:
    parts = urlsplit(args.url)
    requests = http_requests(args.url, args.key, bodies(args.batch, args.distinct))
    connections = [
        await Connection.open(parts.hostname or "127.0.0.1", parts.port or 80) for _ in range(args.concurrency)
    ]
    now = time.perf_counter()
    samples = Samples(now + args.warmup, now + args.warmup + args.duration, args.max_requests)

    async def client(n: int, connection: Connection) -> None:
        i = n
        while samples.open(started := time.perf_counter()):
            status = await connection.request(requests[i % len(requests)])
            samples.add(started, time.perf_counter(), status)
            i += args.concurrency

    try:
        await asyncio.gather(*(client(n, c) for n, c in enumerate(connections)))
    finally:
        for connection in connections:
            connection.close()
    return samples.summary(args.ok_status, args.batch)


def kafka_records(batch: int, count: int) -> list[list[Record]]:
    """The records ingest would publish for the same bodies (same key, value and CloudEvents headers)."""
    from shared.events import TOUCH_ADAPTER, content_id, event_for, to_record

    now = datetime.now(UTC)
    batches = []
    for body in bodies(batch, count):
        items = orjson.loads(body)
        batches.append(
            [
                to_record(
                    event_for(
                        TOUCH_ADAPTER.validate_python(item),
                        id=content_id("native", "bench", item),
                        source="/leadflow/ingest/api/bench",
                        received_at=now,
                    )
                )
                for item in (items if isinstance(items, list) else [items])
            ]
        )
    return batches


async def drive_kafka(args: argparse.Namespace) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    batches = kafka_records(args.batch, args.distinct)
    # The publisher's own settings (shared.bus.Publisher), minus the service around it.
    producer = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap, acks="all", linger_ms=2, max_request_size=2 * 1024 * 1024
    )
    await producer.start()
    now = time.perf_counter()
    samples = Samples(now + args.warmup, now + args.warmup + args.duration, args.max_requests)

    async def client(n: int) -> None:
        i = n
        while samples.open(started := time.perf_counter()):
            futures = [await producer.send(args.topic, v, key=k, headers=h) for k, v, h in batches[i % len(batches)]]
            await asyncio.gather(*futures)
            samples.add(started, time.perf_counter(), 0)
            i += args.concurrency

    try:
        await asyncio.gather(*(client(n) for n in range(args.concurrency)))
    finally:
        await producer.stop()
    return samples.summary(0, args.batch)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    sub = parser.add_subparsers(dest="target", required=True)
    http = sub.add_parser("http", help="POST JSON bodies to an endpoint")
    http.add_argument("--url", required=True)
    http.add_argument("--key", default="", help="write key, sent as Bearer")
    http.add_argument("--ok-status", type=int, default=202)
    kafka = sub.add_parser("kafka", help="produce the same events straight to the broker (acks=all)")
    kafka.add_argument("--bootstrap", required=True)
    kafka.add_argument("--topic", required=True)
    for p in (http, kafka):
        p.add_argument("--batch", type=int, default=1, help="events per request; 1 posts a single object")
        p.add_argument("--concurrency", type=int, default=16)
        p.add_argument("--warmup", type=float, default=1.5, help="seconds not counted")
        p.add_argument("--duration", type=float, default=8.0, help="seconds counted")
        p.add_argument("--max-requests", type=int, default=200_000, help="stop counting after this many")
        p.add_argument("--distinct", type=int, default=1000, help="distinct bodies cycled through")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    drive = drive_http if args.target == "http" else drive_kafka
    result = uvloop.run(drive(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
