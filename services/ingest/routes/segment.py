"""Segment's HTTP Tracking API: Segment and RudderStack SDKs and analytics.js send here by changing their host.

Server SDKs send the write key as Basic credentials (user name, empty password); analytics.js puts `writeKey`
in the body and posts JSON as `text/plain` so that browsers skip the CORS preflight, to the short paths
`/v1/i`, `/v1/t`, `/v1/p`, `/v1/s`, `/v1/g`, `/v1/a` and `/v1/b`. Answers `{"success": true}` as Segment does.
"""

import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from pydantic import TypeAdapter

from services.ingest.intake import client_ip, received_now, state_of, write_key_from
from services.ingest.sources.segment import (
    MAX_BATCH_BYTES,
    MAX_CALL_BYTES,
    CallType,
    Receipt,
    SegmentBatch,
    SegmentMessage,
    decode,
    parse_batch,
    parse_call,
    write_key_in,
)
from shared.web import (
    Invalid,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
    documented_body,
    nul_field,
    read_body,
    require_content_type,
)

router = APIRouter(tags=["Segment-compatible API"])
# analytics.js posts each call to /v1/<first letter of its type>, and batches to /v1/b.
CALLS: tuple[tuple[CallType, str], ...] = (
    ("identify", "i"),
    ("track", "t"),
    ("page", "p"),
    ("screen", "s"),
    ("group", "g"),
    ("alias", "a"),
)
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Every message is in Kafka.", "content": {"application/json": {"example": {"success": True}}}},
    413: {"description": "Over 32 KB per call or per message, or 500 KB per batch."},
    503: {"description": "The broker did not acknowledge; retry (same messageId, same event id)."},
}


async def _ingest(request: Request, call_type: CallType | None) -> dict[str, bool]:
    state = state_of(request)
    header_key = write_key_from(request)
    # A Basic-auth key is checked before the body is read; analytics.js's key is in the body itself.
    source = await state.source_by_write_key(header_key) if header_key else None
    with state.rejecting(source):
        raw = await _read(request, MAX_CALL_BYTES if call_type else MAX_BATCH_BYTES)
    source = source or await state.source_by_write_key(_body_key(raw))
    with state.rejecting(source):
        receipt = Receipt(source.id, received_now(), client_ip(request), state.country_of)
        items = parse_call(raw, call_type, receipt) if call_type else parse_batch(raw, receipt)
    await state.accept(source, state.records_for(source, items, receipt.received_at))
    return {"success": True}


async def _read(request: Request, limit: int) -> dict[str, Any]:
    require_content_type(request.headers.get("content-type"), "application/json", "text/plain")
    body = await read_body(request, limit)
    return decode(inflate(body, request.headers.get("content-encoding"), limit))


def _body_key(raw: dict[str, Any]) -> str:
    key = write_key_in(raw)
    if key is None:
        raise Unauthorized(
            "send the write key as Basic credentials (empty password) or as writeKey in the body",
            field="authorization",
            rule="write-key",
        )
    return key


def inflate(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body, gunzipped for `Content-Encoding: gzip` (analytics-python, RudderStack SDKs); at most limit bytes."""
    coding = (encoding or "").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding != "gzip":
        raise UnsupportedMediaType(f"Content-Encoding {coding} is not supported; use gzip", field="Content-Encoding")
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise Invalid(f"body is not valid gzip: {exc}", field="body", rule="gzip") from None
    if len(out) > limit:
        raise PayloadTooLarge(f"body exceeds {limit} bytes once unzipped", field="body", rule="max-size")
    if not inflater.eof:
        raise Invalid("gzip body is truncated", field="body", rule="gzip")
    if (where := nul_field(out)) is not None:  # RejectNul saw only the compressed bytes
        raise Invalid("NUL characters (U+0000) cannot be stored", field=where, rule="no_nul")
    return out


def _documented(adapter: TypeAdapter[Any]) -> dict[str, Any]:
    extra = documented_body(adapter)
    content = extra["requestBody"]["content"]
    content["text/plain"] = content["application/json"]  # the same JSON, as analytics.js sends it
    return extra


def _endpoint(call_type: CallType | None) -> Callable[[Request], Awaitable[dict[str, bool]]]:
    async def endpoint(request: Request) -> dict[str, bool]:
        return await _ingest(request, call_type)

    return endpoint


def _add(path: str, call_type: CallType | None, summary: str, *, listed: bool = True) -> None:
    body = _documented(TypeAdapter(SegmentMessage if call_type else SegmentBatch))
    name = f"segment_{path.rsplit('/', 1)[-1]}"
    router.add_api_route(
        path,
        _endpoint(call_type),
        methods=["POST"],
        name=name,
        summary=summary,
        openapi_extra=body,
        responses=RESPONSES,
        include_in_schema=listed,
    )


for _type, _short in CALLS:
    _add(f"/v1/{_type}", _type, f"Segment {_type} call (analytics.js: /v1/{_short})")
    _add(f"/v1/{_short}", _type, f"Segment {_type} call, analytics.js path", listed=False)
_add("/v1/batch", None, "Segment batch: up to 500 KB of messages, all or nothing (also /v1/import, /v1/b)")
_add("/v1/import", None, "Segment import (same as batch)", listed=False)
_add("/v1/b", None, "Segment batch, analytics.js path", listed=False)
