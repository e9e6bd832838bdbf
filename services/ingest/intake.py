"""What every ingest route shares: finding the source, admitting the request, publishing, counting.

Routes parse with a pure `sources/<provider>.py` function, then call `accept`, which answers only
after the broker acknowledged every event of the request (DESIGN §4.1).
"""

import asyncio
import base64
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from geoip2fast import GeoIP2Fast
from prometheus_client import Counter as PromCounter
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.ingest import store
from services.ingest.auth import SecretBox, hash_secret
from services.ingest.config import IngestSettings
from services.ingest.limits import TokenBuckets
from services.ingest.store import Source
from shared.bus import BrokerUnavailable, Publisher
from shared.events import CloudEvent, DealData, TouchData, event_for
from shared.web import Forbidden, NotFound, RateLimited, Unauthorized, Unavailable

log = logging.getLogger(__name__)
Record = tuple[str, CloudEvent[Any]]
EVENTS = PromCounter("leadflow_ingest_events_total", "Events by source kind and outcome", ["kind", "outcome"])


@dataclass
class Counts:
    """Per-source accepted/rejected counts, buffered in memory and added to the database every second."""

    pending: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, source: Source, outcome: str, n: int = 1) -> None:
        self.pending[(source.id, outcome)] += n
        EVENTS.labels(source.kind, outcome).inc(n)

    def take(self) -> dict[str, tuple[int, int]]:
        taken, self.pending = self.pending, Counter()
        ids = {source_id for source_id, _ in taken}
        return {s: (taken[(s, "accepted")], taken[(s, "rejected")]) for s in ids}

    def put_back(self, counts: dict[str, tuple[int, int]]) -> None:
        for source_id, (accepted, rejected) in counts.items():
            self.pending[(source_id, "accepted")] += accepted
            self.pending[(source_id, "rejected")] += rejected


@dataclass
class IngestState:
    settings: IngestSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    publisher: Publisher
    box: SecretBox
    geo: GeoIP2Fast
    buckets: TokenBuckets = field(default_factory=TokenBuckets)
    counts: Counts = field(default_factory=Counts)
    _cache: dict[str, tuple[float, Source | None]] = field(default_factory=dict)

    async def _cached(self, key: str, load: Any) -> Source | None:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.settings.source_cache_s:
            return hit[1]
        async with self.sessions() as session:
            source: Source | None = await load(session)
        self._cache[key] = (now, source)
        return source

    async def source_by_write_key(self, write_key: str) -> Source:
        digest = hash_secret(write_key)
        source = await self._cached(f"key:{digest}", lambda s: store.load_source_by_write_key(s, digest))
        if source is None:
            raise Unauthorized("unknown write key", field="authorization", rule="write-key")
        return source

    async def source_by_id(self, source_id: str, *kinds: str) -> Source:
        source = await self._cached(f"id:{source_id}", lambda s: store.load_source(s, source_id))
        if source is None or (kinds and source.kind not in kinds):
            raise NotFound(f"no {'/'.join(kinds) or ''} source {source_id}".replace("  ", " "))
        return source

    def forget(self, source_id: str) -> None:
        self._cache = {k: v for k, v in self._cache.items() if v[1] is None or v[1].id != source_id}

    def admit(self, source: Source, n: int) -> None:
        """Refuse disabled sources and sources over their rate; counts the refusal."""
        if not source.enabled:
            self.counts.add(source, "rejected", n)
            raise Forbidden(f"source {source.id} is disabled", field="source", rule="enabled")
        wait = self.buckets.take(source.id, source.rate_limit_per_s, n, time.monotonic())
        if wait > 0:
            self.counts.add(source, "rejected", n)
            raise RateLimited(
                f"source {source.id} is over its limit of {source.rate_limit_per_s:g} events/s",
                field="source",
                rule="rate-limit",
                headers={"Retry-After": str(max(1, int(wait + 0.999)))},
            )

    async def accept(self, source: Source, records: list[Record]) -> None:
        """Publish all records and return only after the broker acked them all; else 503."""
        self.admit(source, len(records))
        try:
            await self.publisher.publish(records)
        except BrokerUnavailable as exc:
            log.warning("publish failed", extra={"source": source.id, "error": str(exc)})
            raise Unavailable(
                "the event broker did not acknowledge; retry with the same payload",
                headers={"Retry-After": str(self.settings.retry_after_s)},
            ) from exc
        self.counts.add(source, "accepted", len(records))

    def reject(self, source: Source, n: int = 1) -> None:
        self.counts.add(source, "rejected", n)

    @contextlib.contextmanager
    def rejecting(self, source: Source | None) -> Iterator[None]:
        """Whatever fails inside counts as one rejected request of the source (when it is known)."""
        try:
            yield
        except Exception:
            if source is not None:
                self.reject(source)
            raise

    def signing_secret(self, source: Source) -> str:
        if source.signing_secret_encrypted is None:
            raise Unauthorized(f"source {source.id} has no signing secret", field="source", rule="signing-secret")
        return self.box.open(source.signing_secret_encrypted)

    def records_for(
        self, source: Source, items: Sequence[tuple[str, TouchData | DealData]], received_at: datetime | None = None
    ) -> list[Record]:
        """(topic, event) per (event id, payload): deals to the deals topic, touches to the touches topic."""
        origin = f"/leadflow/ingest/{source.kind}/{source.id}"
        at = received_at or received_now()
        topics = self.settings.topics
        return [
            (
                topics.deals if isinstance(p, DealData) else topics.touches,
                event_for(p, id=i, source=origin, received_at=at),
            )
            for i, p in items
        ]

    def country_of(self, ip: str | None) -> str | None:
        if not ip:
            return None
        code: str = self.geo.lookup(ip).country_code
        return code if len(code) == 2 and code.isalpha() else None

    async def flush_counts(self) -> None:
        counts = self.counts.take()
        if not counts:
            return
        try:
            async with self.sessions.begin() as session:
                await store.add_counts(session, datetime.now(UTC).date(), counts)
        except Exception:
            self.counts.put_back(counts)
            raise

    async def flush_counts_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.counts_flush_s)
            with contextlib.suppress(Exception):
                await self.flush_counts()


def state_of(request: Request) -> IngestState:
    state: IngestState = request.state.ingest
    return state


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def write_key_from(request: Request) -> str | None:
    """Write key from `Authorization: Basic base64(key:)` (Segment SDKs) or `Authorization: Bearer key`."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if scheme.lower() == "basic" and value:
        try:
            user, _, _password = base64.b64decode(value.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return user or None
    return None


def received_now() -> datetime:
    return datetime.now(UTC)
