"""POST /v1/events and /v1/deals: Leadflow's own JSON API, authenticated by a source's write key."""

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, TypeAdapter

from services.ingest.intake import state_of, write_key_from
from services.ingest.sources.native import MAX_BATCH, parse_deals, parse_touches
from shared.events import Deal, Touch
from shared.web import Unauthorized, documented_body, read_body, require_content_type

router = APIRouter(tags=["native API"])
MAX_BYTES = 1024 * 1024
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Event id to use instead of one derived from the content (`<key>:<index>` in a batch).",
    "schema": {"type": "string", "maxLength": 200},
}


class Accepted(BaseModel):
    accepted: int
    ids: list[str]


def _one_or_many(item: Any) -> dict[str, Any]:
    return {**documented_body(TypeAdapter(item | list[item])), "parameters": [IDEMPOTENCY_KEY]}


RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "Every event of the request is in Kafka."},
    503: {"description": "The broker did not acknowledge; retry the same payload after Retry-After."},
}


@router.post(
    "/v1/events",
    status_code=status.HTTP_202_ACCEPTED,
    summary=f"Ingest one touch or a batch of up to {MAX_BATCH} (1 MB)",
    openapi_extra=_one_or_many(Touch),
    response_model=Accepted,
    responses=RESPONSES,
)
async def post_events(request: Request) -> Response:
    return await _ingest(request, "touches")


@router.post(
    "/v1/deals",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Ingest CRM deal updates: created, stage changed, closed won or lost",
    openapi_extra=_one_or_many(Deal),
    response_model=Accepted,
    responses=RESPONSES,
)
async def post_deals(request: Request) -> Response:
    return await _ingest(request, "deals")


async def _ingest(request: Request, kind: str) -> Response:
    state = state_of(request)
    key = write_key_from(request)
    if key is None:
        raise Unauthorized("send the write key as Bearer or Basic credentials", field="authorization")
    source = await state.source_by_write_key(key)
    with state.rejecting(source):
        require_content_type(request.headers.get("content-type"), "application/json")
        body = await read_body(request, MAX_BYTES)
        parse = parse_touches if kind == "touches" else parse_deals
        items = parse(body, source_id=source.id, idempotency_key=request.headers.get("idempotency-key"))
    records = state.records_for(source, items)
    await state.accept(source, records)
    body = orjson.dumps({"accepted": len(records), "ids": [event.id for _, event in records]})
    return Response(body, status_code=status.HTTP_202_ACCEPTED, media_type="application/json")
