"""The consume loop: exactly-once effects in PostgreSQL from an at-least-once bus (DESIGN §4.2-4.5).

Per record (or per poll's records of one partition, for services that give a batch handler), one
transaction owned by this loop (STYLE 3): store the offset, record the event ids, and only for new ids
call the service's handler, which writes its state and outbox rows. Offsets live in the service's
schema and are read back on every assignment; Kafka-committed offsets are never used. Poison records
go to the dead-letter topic; transient database or broker errors are retried.

The log end is the fetch high watermark, not `end_offsets`: the embedded broker answers ListOffsets
with the last *batch's* base offset + 1 (measured), which would make a live log look forgotten.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from prometheus_client import Gauge
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import db
from shared.bus import BrokerUnavailable, Publisher
from shared.config import LeadflowSettings
from shared.events import CloudEvent, from_record

log = logging.getLogger(__name__)

T = TypeVar("T")
Record: TypeAlias = ConsumerRecord  # of bytes key and value; aiokafka ships no type information
Handler = Callable[[AsyncSession, CloudEvent[Any], Record], Awaitable[None]]
BatchHandler = Callable[[AsyncSession, Sequence[tuple[CloudEvent[Any], Record]]], Awaitable[None]]
Work = Callable[[AsyncSession], Awaitable[None]]

LAG = Gauge(
    "leadflow_consumer_lag",
    "Records on the broker not yet applied: partition end minus (stored offset + 1)",
    ["group", "topic", "partition"],
)
# Connection lost, serialization failure/deadlock, out of resources, server shutting down.
TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57")


def is_transient(exc: BaseException) -> bool:
    """Errors that waiting fixes: retried for as long as they last, never dead-lettered."""
    if isinstance(exc, BrokerUnavailable | KafkaError | ConnectionError | TimeoutError | sa_exc.TimeoutError):
        return True
    if isinstance(exc, sa_exc.DisconnectionError | sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        return exc.connection_invalidated or sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES
    return False


def backoff(tries: int, *, first_s: float = 0.05, max_s: float = 5.0) -> float:
    return float(min(max_s, first_s * 2**tries))


async def retry_transient(what: str, attempt: Callable[[], Awaitable[T]]) -> T:
    """Run `attempt` until it succeeds; a non-transient error propagates."""
    tries = 0
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("%s failed; retrying", what, extra={"error": repr(exc), "tries": tries})
        await asyncio.sleep(backoff(tries))
        tries += 1


def partition_lag(next_offset: int | None, end: int) -> int:
    """Records still to apply; a next offset beyond the end means the log was lost and is read again."""
    if next_offset is None or next_offset > end:
        return end
    return end - next_offset


@dataclass
class Progress:
    """Per assigned partition: the next offset to apply (stored offset + 1) and the log end (high watermark)."""

    group: str
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    ends: dict[TopicPartition, int] = field(default_factory=dict)

    def lag(self) -> dict[TopicPartition, int]:
        return {tp: partition_lag(self.next_offsets.get(tp), end) for tp, end in self.ends.items()}

    def caught_up(self, max_lag: int = 0) -> bool:
        """Readiness: every assigned partition whose end is known is within `max_lag` records."""
        return all(lag <= max_lag for lag in self.lag().values())

    def observe(self, consumer: AIOKafkaConsumer) -> None:
        assigned = consumer.assignment()
        self.forget([tp for tp in {*self.ends, *self.next_offsets} if tp not in assigned])
        for tp in assigned:
            end = consumer.highwater(tp)
            if end is not None:
                self.ends[tp] = end
        for tp, lag in self.lag().items():
            LAG.labels(self.group, tp.topic, str(tp.partition)).set(lag)

    def forget(self, partitions: Collection[TopicPartition]) -> None:
        for tp in partitions:
            self.next_offsets.pop(tp, None)
            if self.ends.pop(tp, None) is not None:
                with contextlib.suppress(KeyError):
                    LAG.remove(self.group, tp.topic, str(tp.partition))


async def _finish_even_if_cancelled(work: Awaitable[None]) -> None:
    """Shutdown waits for the in-flight transaction to commit or roll back instead of abandoning it."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await task
        raise


def dead_letter_headers(record: Record, group: str, error: str) -> list[tuple[str, bytes]]:
    return [
        *record.headers,
        ("dlq_error", error[:2000].encode()),
        ("dlq_topic", record.topic.encode()),
        ("dlq_partition", str(record.partition).encode()),
        ("dlq_offset", str(record.offset).encode()),
        ("dlq_group", group.encode()),
    ]


@dataclass(frozen=True)
class _Service:
    sessions: async_sessionmaker[AsyncSession]
    tables: db.BusTables
    publisher: Publisher
    handle: Handler
    group: str
    dead_letters: str
    max_attempts: int
    handle_batch: BatchHandler | None = None


class _Loop(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, service: _Service, progress: Progress) -> None:
        self.s = service
        self.progress = progress
        self.consumer: AIOKafkaConsumer = None
        self.locks: dict[TopicPartition, asyncio.Lock] = {}  # each held for one record's transaction
        self.generation = 0  # bumped on revocation: records fetched before it are not ours to apply

    def _lock(self, tp: TopicPartition) -> asyncio.Lock:
        return self.locks.setdefault(tp, asyncio.Lock())

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        async with contextlib.AsyncExitStack() as in_flight_done:
            for tp in sorted(revoked):
                await in_flight_done.enter_async_context(self._lock(tp))
            self.generation += 1
        self.progress.forget(revoked)

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        # aiokafka hands out records before this listener runs and swallows its errors: paused, the
        # partitions yield nothing from Kafka's own idea of the position until our seek is done.
        self.consumer.pause(*assigned)
        topics = {tp.topic for tp in assigned}
        stored = await retry_transient("reading stored offsets", lambda: self._stored_offsets(topics))
        await self._seek(assigned, stored)
        self.consumer.resume(*assigned)

    async def _seek(self, assigned: Collection[TopicPartition], stored: Mapping[tuple[str, int], int]) -> None:
        for tp in sorted(assigned):
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                log.info("no stored offset: reading from the beginning", extra=_where(self.s.group, tp))
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, offset + 1)
                self.progress.next_offsets[tp] = offset + 1

    async def _stored_offsets(self, topics: Collection[str]) -> dict[tuple[str, int], int]:
        async with self.s.sessions() as session:
            return await db.stored_offsets(session, self.s.tables, self.s.group, topics)

    async def run(self) -> None:
        while True:
            batches = await retry_transient("fetching", lambda: self.consumer.getmany(timeout_ms=500))
            generation = self.generation
            async with asyncio.TaskGroup() as partitions:  # in parallel across partitions, in order within one
                for records in batches.values():
                    partitions.create_task(self._apply_in_order(records, generation))
            self.progress.observe(self.consumer)
            await self._restart_lost_logs()

    async def _apply_in_order(self, records: Sequence[Record], generation: int) -> None:
        if self.s.handle_batch is not None:
            await self._apply_batches(records, generation)
            return
        for record in records:
            if generation != self.generation:
                return  # revoked: the partition's next owner resumes from the stored offset
            await self._process(record, generation)

    async def _apply_batches(self, records: Sequence[Record], generation: int) -> None:
        """A poll's records of one partition in one transaction; a record that cannot be decoded splits it."""
        run: list[tuple[Record, CloudEvent[Any]]] = []
        for record in records:
            if record.value is None:  # a tombstone: compaction's business, not an event
                await self._apply_batch(run, generation)
                run = []
                await self._skip(record, generation)
                continue
            try:
                run.append((record, from_record(record.value, record.headers)))
            except Exception as exc:  # poison: apply what came before it, then dead-letter it
                await self._apply_batch(run, generation)
                run = []
                await self._dead_letter(record, f"{type(exc).__name__}: {exc}", generation)
        await self._apply_batch(run, generation)

    async def _apply_batch(self, run: Sequence[tuple[Record, CloudEvent[Any]]], generation: int) -> None:
        """One transaction for the run; if it fails for a reason waiting does not fix, record by record."""
        if not run or generation != self.generation:
            return
        last = run[-1][0]
        handle_batch = self.s.handle_batch
        assert handle_batch is not None

        async def work(session: AsyncSession) -> None:
            await db.save_offset(session, self.s.tables, self.s.group, last.topic, last.partition, last.offset)
            new = await db.first_times(session, self.s.tables, [event.id for _, event in run])
            fresh: list[tuple[CloudEvent[Any], Record]] = []
            for record, event in run:
                if event.id in new:
                    new.discard(event.id)  # the same id twice in one poll applies once
                    fresh.append((event, record))
            if fresh:
                await handle_batch(session, fresh)

        tries = 0
        while True:
            try:
                await self._transaction(last, generation, work)
                return
            except Exception as exc:
                if not is_transient(exc):
                    log.warning("batch failed; applying it record by record", extra={**_at(last), "error": repr(exc)})
                    break
                log.warning("applying batch failed; retrying", extra={**_at(last), "error": repr(exc)})
            await asyncio.sleep(backoff(tries))
            tries += 1
        for record, event in run:
            if generation != self.generation:
                return
            await self._apply(record, event, generation)

    async def _restart_lost_logs(self) -> None:
        """A log ending before our next offset was lost (the memory-only broker restarted): read it again."""
        for tp, end in list(self.progress.ends.items()):
            next_offset = self.progress.next_offsets.get(tp)
            if next_offset is not None and next_offset > end:
                log.warning(
                    "stored offset is beyond the log end: broker lost its log, reading from the beginning",
                    extra={**_where(self.s.group, tp), "next_offset": next_offset, "log_end": end},
                )
                del self.progress.next_offsets[tp]
                await self.consumer.seek_to_beginning(tp)

    async def _process(self, record: Record, generation: int) -> None:
        if record.value is None:  # a tombstone: compaction's business, not an event
            await self._skip(record, generation)
            return
        try:
            event = from_record(record.value, record.headers)
        except Exception as exc:  # EventDecodeError, or a header that is not even UTF-8: poison either way
            await self._dead_letter(record, f"{type(exc).__name__}: {exc}", generation)
            return
        await self._apply(record, event, generation)

    async def _apply(self, record: Record, event: CloudEvent[Any], generation: int) -> None:
        """Transient errors are retried for as long as they last; others `max_attempts` times, then dead-lettered."""

        async def work(session: AsyncSession) -> None:
            where = (record.topic, record.partition, record.offset)
            if await db.save_offset_and_first_time(session, self.s.tables, self.s.group, *where, event.id):
                await self.s.handle(session, event, record)

        tries = failures = 0
        while True:
            try:
                await self._transaction(record, generation, work)
                return
            except Exception as exc:
                failures += 0 if is_transient(exc) else 1
                if failures >= self.s.max_attempts:
                    await self._dead_letter(record, f"{type(exc).__name__}: {exc}", generation)
                    return
                log.warning("applying failed; retrying", extra={**_at(record), "error": repr(exc)})
            await asyncio.sleep(backoff(tries))
            tries += 1

    async def _transaction(self, record: Record, generation: int, work: Work) -> None:
        """`work` stores the record's offset and applies it; one transaction, finished even on shutdown."""
        tp = TopicPartition(record.topic, record.partition)
        async with self._lock(tp):
            if generation != self.generation:
                return
            await _finish_even_if_cancelled(self._commit(work))
            self.progress.next_offsets[tp] = record.offset + 1

    async def _commit(self, work: Work) -> None:
        async with self.s.sessions.begin() as session:
            await work(session)

    async def _skip(self, record: Record, generation: int) -> None:
        async def work(session: AsyncSession) -> None:
            await db.save_offset(session, self.s.tables, self.s.group, record.topic, record.partition, record.offset)

        await retry_transient("storing offset", lambda: self._transaction(record, generation, work))

    async def _dead_letter(self, record: Record, error: str, generation: int) -> None:
        """The offset is stored only after the dead-letter topic acknowledged the record."""
        if generation != self.generation:
            return
        headers = dead_letter_headers(record, self.s.group, error)
        publish = self.s.publisher.publish_raw
        await retry_transient(
            "dead-lettering",
            lambda: publish(self.s.dead_letters, record.value or b"", key=record.key, headers=headers),
        )
        log.error("record dead-lettered", extra={**_at(record), "error": error})
        await self._skip(record, generation)


def _where(group: str, tp: TopicPartition) -> dict[str, Any]:
    return {"group": group, "topic": tp.topic, "partition": tp.partition}


def _at(record: Record) -> dict[str, Any]:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}


async def _started_consumer(
    bootstrap: str, loop: _Loop, topics: Sequence[str], options: Mapping[str, Any]
) -> AIOKafkaConsumer:
    """A subscribed, started consumer; waits for the broker if it is not there yet."""
    tries = 0
    while True:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=loop.s.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **options,
        )
        loop.consumer = consumer
        consumer.subscribe(list(topics), listener=loop)
        try:
            await consumer.start()
        except BaseException as exc:
            await consumer.stop()
            if not isinstance(exc, KafkaError | OSError):
                raise
            log.warning("broker not reachable; retrying", extra={"error": repr(exc), "group": loop.s.group})
        else:
            return consumer
        await asyncio.sleep(backoff(tries))
        tries += 1


async def consume(
    settings: LeadflowSettings,
    sessions: async_sessionmaker[AsyncSession],
    tables: db.BusTables,
    publisher: Publisher,
    handle: Handler,
    *,
    group: str,
    topics: Sequence[str],
    max_attempts: int = 3,
    progress: Progress | None = None,
    kafka_options: Mapping[str, Any] | None = None,
    handle_batch: BatchHandler | None = None,
) -> None:
    """Apply every record of `topics` exactly once in effect, in partition order, until cancelled.

    `handle(session, event, record)` writes state and outbox rows in the loop's transaction and never
    commits. With `handle_batch(session, [(event, record), ...])`, each poll's new records of one partition
    are applied in one transaction (faster); a batch that fails is applied again record by record with
    `handle`, so a poison record still goes alone to the dead-letter topic. Cancelling stops fetching,
    lets the in-flight transaction finish and leaves the group.
    `publisher` must be started; it carries dead letters to `settings.topics.dead_letters`.
    """
    dead_letters = settings.topics.dead_letters
    service = _Service(sessions, tables, publisher, handle, group, dead_letters, max_attempts, handle_batch)
    loop = _Loop(service, progress if progress is not None else Progress(group))
    consumer = await _started_consumer(settings.kafka_bootstrap, loop, topics, kafka_options or {})
    try:
        await loop.run()
    finally:
        loop.progress.forget(list(loop.progress.ends) + list(loop.progress.next_offsets))
        await consumer.stop()
