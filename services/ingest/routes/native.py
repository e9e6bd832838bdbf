"""POST /v1/events and /v1/deals: Leadflow's own JSON API, authenticated by a source's write key."""

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, status
from pydantic import TypeAdapter

from services.ingest.intake import received_now, state_of, write_key_from
from services.ingest.sources.native import MAX_BATCH, parse_deals, parse_touches
from shared.events import Deal, Touch, event_for
from shared.web import Unauthorized, documented_body, read_body, require_content_type

router = APIRouter(tags=["native API"])
MAX_BYTES = 1024 * 1024
IdempotencyKey = Annotated[
    str | None,
    Header(max_length=200, description="Event id to use instead of one derived from the content."),
]


def _one_or_many(item: Any) -> dict[str, Any]:
    return documented_body(TypeAdapter(item | list[item]))


@router.post(
    "/v1/events",
    status_code=status.HTTP_202_ACCEPTED,
    summary=f"Ingest one touch or a batch of up to {MAX_BATCH} (1 MB)",
    openapi_extra=_one_or_many(Touch),
    responses={
        202: {"description": "Every event is in Kafka."},
        503: {"description": "The broker did not acknowledge; retry."},
    },
)
async def post_events(request: Request, idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    return await _ingest(request, "touches", idempotency_key)


@router.post(
    "/v1/deals",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Ingest CRM deal updates: created, stage changed, closed won or lost",
    openapi_extra=_one_or_many(Deal),
)
async def post_deals(request: Request, idempotency_key: IdempotencyKey = None) -> dict[str, Any]:
    return await _ingest(request, "deals", idempotency_key)


async def _ingest(request: Request, kind: str, idempotency_key: str | None) -> dict[str, Any]:
    state = state_of(request)
    key = write_key_from(request)
    if key is None:
        raise Unauthorized("send the write key as Bearer or Basic credentials", field="authorization")
    source = await state.source_by_write_key(key)
    try:
        require_content_type(request.headers.get("content-type"), "application/json")
        body = await read_body(request, MAX_BYTES)
        parse = parse_touches if kind == "touches" else parse_deals
        items = parse(body, source_id=source.id, idempotency_key=idempotency_key)
    except Exception:
        state.reject(source)
        raise
    topic = state.settings.topics.touches if kind == "touches" else state.settings.topics.deals
    origin = f"/leadflow/ingest/{source.kind}/{source.id}"
    now = received_now()
    records = [(topic, event_for(p, id=i, source=origin, received_at=now)) for i, p in items]
    await state.accept(source, records)
    return {"accepted": len(records), "ids": [event.id for _, event in records]}
