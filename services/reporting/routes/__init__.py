"""What every reporting route shares: the app state, the admin check, the facts cache and table answers
(JSON or CSV, cursor pagination) with the common filters."""

import asyncio
import base64
import contextlib
import csv
import gc
import io
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeVar, cast

import orjson
from fastapi import Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.reporting import store
from services.reporting.config import ReportingSettings
from services.reporting.facts import Facts, Filters, View, resolve
from shared.bus import Publisher
from shared.consumer import Progress
from shared.web import Invalid, require_bearer

T = TypeVar("T")
CACHED_REPORTS = 64


@dataclass
class ReportCache:
    """Facts and computed reports, kept while the data version (offsets applied, registry edits) is unchanged."""

    version: tuple[Any, ...] | None = None
    facts: tuple[Facts, View] | None = None
    reports: OrderedDict[tuple[Any, ...], asyncio.Future[Any]] = field(default_factory=OrderedDict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True)
class ReportingState:
    settings: ReportingSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    publisher: Publisher
    progress: Progress
    cache: ReportCache


def state_of(request: Request) -> ReportingState:
    return cast(ReportingState, request.state.reporting)


def require_admin(request: Request) -> None:
    expected = state_of(request).settings.admin_token.get_secret_value()
    require_bearer(request, expected, "editing campaigns, costs and targets")


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Reports build millions of short-lived acyclic objects; full collections rescanning them cost 3x the work."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _computed(compute: Callable[[Facts, View], T], facts: Facts, view: View) -> T:
    with collector_paused():
        return compute(facts, view)


def _resolved(facts: Facts) -> View:
    with collector_paused():
        view = resolve(facts)
    gc.freeze()  # the facts and their view live until the data changes: no collection should rescan them
    return view


async def cached_report(request: Request, key: tuple[Any, ...], compute: Callable[[Facts, View], T]) -> T:
    """The report for `key` over the current data: computed once per data version, off the event loop.

    The lock covers only checking the version and starting the work: a report being computed holds up
    neither cached answers nor other reports; asking for it again waits for the same computation.
    """
    state = state_of(request)
    cache = state.cache
    async with cache.lock:
        async with state.sessions() as session:
            version = await store.data_version(session)
            if version != cache.version or cache.facts is None:
                cache.facts = None  # the old facts go before the new ones come: half the peak memory
                with collector_paused():
                    facts = await store.load_facts(session)
                cache.facts = (facts, await asyncio.to_thread(_resolved, facts))
                cache.version, cache.reports = version, OrderedDict()
        pending = cache.reports.get(key)
        if pending is None:
            facts, view = cache.facts
            pending = asyncio.ensure_future(asyncio.to_thread(_computed, compute, facts, view))
            pending.add_done_callback(lambda done: _forget_failure(cache, key, done))
            cache.reports[key] = pending
            while len(cache.reports) > CACHED_REPORTS:
                cache.reports.popitem(last=False)
        cache.reports.move_to_end(key)
    return cast(T, await asyncio.shield(pending))


def _forget_failure(cache: ReportCache, key: tuple[Any, ...], done: asyncio.Future[Any]) -> None:
    if (done.cancelled() or done.exception() is not None) and cache.reports.get(key) is done:
        del cache.reports[key]


class Format(StrEnum):
    JSON = "json"
    CSV = "csv"


class ReportQuery(BaseModel):
    """Filters and paging every report takes."""

    since: date | None = Field(None, description="First day counted (UTC), inclusive.")
    until: date | None = Field(None, description="Last day counted (UTC), inclusive.")
    campaign: str | None = Field(None, description="Only this campaign id.")
    channel: str | None = Field(None, description="Only this channel.")
    segment: str | None = Field(None, description="Only leads of this segment.")
    persona: str | None = Field(None, description="Only leads of this persona.")
    team: str | None = Field(None, description="Only assignments of this team (sales scorecard).")
    period: str = Field("month", pattern="^(day|week|month|quarter|year|all)$", description="Row period.")
    format: Format = Field(Format.JSON, description="`json` or `csv` (tidy: one header row, one row per line).")
    cursor: str | None = Field(None, description="`next_cursor` of the previous page.")
    limit: int = Field(500, ge=1, le=10_000, description="Rows per page.")

    def filters(self) -> Filters:
        if self.since and self.until and self.since > self.until:
            raise Invalid("since is after until", field="since", rule="date-range")
        return Filters(self.since, self.until, self.campaign, self.channel, self.segment, self.persona, self.team)

    def key(self) -> tuple[Any, ...]:
        return (self.since, self.until, self.campaign, self.channel, self.segment, self.persona, self.team, self.period)


Params = Query()


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        kind, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind == "o" and value.isdigit():
            return int(value)
    except ValueError:
        pass
    raise Invalid("not a cursor this API gave out", field="cursor", rule="cursor")


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(type(value).__name__)


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return value


def table(rows: Sequence[dict[str, Any]], query: ReportQuery, **extra: Any) -> Response:
    """One page of `rows`: JSON `{rows, next_cursor, ...extra}` or CSV with the cursor in `X-Next-Cursor`."""
    start = _decode_cursor(query.cursor)
    page = rows[start : start + query.limit]
    more = start + query.limit < len(rows)
    next_cursor = _encode_cursor(start + query.limit) if more else None
    if query.format == Format.CSV:
        out = io.StringIO()
        columns = list(dict.fromkeys(k for row in page for k in row)) if page else list(rows[0]) if rows else []
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in page:
            writer.writerow([_csv_value(row.get(c)) for c in columns])
        headers = {"X-Next-Cursor": next_cursor} if next_cursor else {}
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
    body = {"rows": page, "next_cursor": next_cursor, "total_rows": len(rows), **extra}
    return Response(orjson.dumps(body, default=_json_value), media_type="application/json")
