"""Web tracking: the t.js script, POST /v1/collect it calls, and the 1x1 GIF pixel for pages without JavaScript.

/v1/collect is an acknowledgement like every JSON endpoint: 202 only once the event is in Kafka, 503
with Retry-After otherwise (t.js keeps the call and re-sends it on the next page). What a *person* is
waiting for (this pixel, the email pixel and links, QR scans) is answered first and published right
after the answer: the GIF or redirect is never an acknowledgement, and a lost event is logged and
counted as rejected for its source, never a broken image or a dead link.
"""

import functools
import logging
from importlib import resources
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request, Response, status
from pydantic import TypeAdapter

from services.ingest.intake import IngestState, client_ip, received_now, state_of
from services.ingest.sources import web
from services.ingest.store import Source
from shared.events import CloudEvent
from shared.web import Forbidden, NotFound, Problem, Unavailable, documented_body, read_body, require_content_type

log = logging.getLogger(__name__)
router = APIRouter(tags=["web tracking"])

MAX_BYTES = 32 * 1024
COOKIE = "lf_aid"
TWO_YEARS_S = 2 * 365 * 24 * 3600
# The smallest transparent 1x1 GIF (43 bytes).
GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
NO_STORE = {"Cache-Control": "no-store, no-cache, must-revalidate, private", "Pragma": "no-cache"}
Record = tuple[str, CloudEvent[Any]]


@functools.cache
def script() -> bytes:
    return resources.files("services.ingest").joinpath("static/t.js").read_bytes()


@router.get("/t.js", summary="The tracking script for web pages", response_class=Response)
async def tracking_script() -> Response:
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return Response(script(), media_type="text/javascript; charset=utf-8", headers=headers)


@router.post(
    "/v1/collect",
    status_code=status.HTTP_202_ACCEPTED,
    summary="One t.js call: page, leave (time on page), identify or track; writeKey in the body",
    openapi_extra=documented_body(TypeAdapter(web.Collected), media_type="text/plain"),
    responses={202: {"description": "The event is in Kafka."}, 503: {"description": "Not in Kafka; re-send it."}},
)
async def collect(request: Request) -> dict[str, Any]:
    state = state_of(request)
    require_content_type(request.headers.get("content-type"), "text/plain", "application/json")
    collected = web.parse_collected(await read_body(request, MAX_BYTES))
    source = await web_source(state, collected.write_key)
    try:
        touch = web.touch_of(collected, **seen_by(request))
    except Problem:
        state.reject(source)
        raise
    records = state.records_for(source, [(web.event_id_of(source.id, collected), touch)])
    await state.accept(source, records)
    return {"accepted": 1, "ids": _ids(records)}


@router.get("/p.gif", summary="Page-view pixel: k=write key, a=anonymous id, u=url, t=title, r=referrer, v=visit")
async def pixel(request: Request, background: BackgroundTasks) -> Response:
    params = request.query_params
    anonymous_id = web.anonymous_id_of(params.get("a"), request.cookies.get(COOKIE))
    response = gif_response()
    if anonymous_id is None:
        anonymous_id = web.new_anonymous_id()
        remember(response, request, anonymous_id)
    found = await _pixel_record(request, anonymous_id)
    if found is not None:
        background.add_task(publish_quietly, state_of(request), *found)
    return response


async def _pixel_record(request: Request, anonymous_id: str) -> tuple[Source, list[Record]] | None:
    state, params = state_of(request), request.query_params
    try:
        source = await web_source(state, params.get("k", ""))
    except Problem as exc:
        log.info("pixel refused", extra={"reason": exc.detail})
        return None
    try:
        page_url = params.get("u") or request.headers.get("referer")
        collected = web.collected_from_query(params, anonymous_id=anonymous_id, page_url=page_url)
        touch = web.touch_of(collected, **seen_by(request))
    except Problem as exc:
        state.reject(source)
        log.info("pixel refused", extra={"source": source.id, "reason": exc.detail})
        return None
    nonce = None if collected.message_id else received_now().isoformat()  # each load is a view of its own
    return source, state.records_for(source, [(web.event_id_of(source.id, collected, nonce=nonce), touch)])


async def web_source(state: IngestState, write_key: str) -> Source:
    source = await state.source_by_write_key(write_key)
    if source.kind != "web":
        raise Forbidden(f"this write key belongs to a {source.kind} source; use a web source", field="writeKey")
    return source


async def quiet_source(state: IngestState, source_id: str) -> Source | None:
    """The web source a link or QR code was made for; None (logged) when it was since removed."""
    try:
        return await state.source_by_id(source_id, "web")
    except NotFound:
        log.warning("link or QR code of a missing source", extra={"source": source_id})
        return None


def seen_by(request: Request) -> dict[str, str | None]:
    """The user agent is kept; the IP only becomes a country, it never leaves ingest."""
    user_agent = request.headers.get("user-agent")
    return {
        "user_agent": user_agent[:1024] if user_agent else None,
        "country": state_of(request).country_of(client_ip(request)),
    }


async def publish_quietly(state: IngestState, source: Source, records: list[Record]) -> None:
    """After a person got their GIF or redirect: publish; a failure is counted and logged, not retried."""
    try:
        await state.accept(source, records)
    except Unavailable:
        state.reject(source, len(records))
        log.warning("touch lost: broker did not acknowledge", extra={"source": source.id, "ids": _ids(records)})
    except Problem as exc:  # disabled or over its rate: `admit` counted it
        log.info("touch refused", extra={"source": source.id, "reason": exc.detail, "ids": _ids(records)})


def _ids(records: list[Record]) -> list[str]:
    return [event.id for _, event in records]


def gif_response() -> Response:
    return Response(GIF, media_type="image/gif", headers=NO_STORE)


def anonymous_id_in(request: Request) -> str | None:
    """The t.js cookie, sent here when ingest runs on a subdomain of the tracked site."""
    return web.anonymous_id_of(request.cookies.get(COOKIE))


def remember(response: Response, request: Request, anonymous_id: str) -> None:
    secure = state_of(request).settings.public_url.startswith("https:")
    response.set_cookie(COOKIE, anonymous_id, max_age=TWO_YEARS_S, path="/", samesite="lax", secure=secure)
