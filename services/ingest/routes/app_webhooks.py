"""POST /v1/webhooks/{typeform,hubspot,generic}/{source_id}: signed webhooks of apps and of any other tool.

Each request is checked against the source's signing secret before anything is parsed; a bad or stale
signature answers 401 naming the header, publishes nothing and counts as rejected.
"""

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, status
from pydantic import TypeAdapter

from services.ingest.intake import received_now, state_of
from services.ingest.sources import generic, hubspot, typeform
from services.ingest.store import Source
from shared.events import AnyData, DealData, TouchData
from shared.web import documented_body, read_body, require_content_type

router = APIRouter(prefix="/v1/webhooks", tags=["app webhooks"])
MAX_BYTES = 1024 * 1024
Items = Sequence[tuple[str, TouchData | DealData]]
Check = Callable[[bytes, str], None]  # (raw body, signing secret); raises Unauthorized
Parse = Callable[[bytes, Source], Items]
RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "Every mapped event is in Kafka; `ids` lists them."},
    401: {"description": "Missing, wrong or stale signature; the problem names the header."},
    503: {"description": "The broker did not acknowledge; the provider's retry gets the same ids."},
}


@router.post(
    "/typeform/{source_id}",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Typeform webhook: each form response becomes a form fill",
    openapi_extra=documented_body(typeform.WEBHOOK_ADAPTER),
    responses=RESPONSES,
)
async def post_typeform(
    source_id: str,
    request: Request,
    signature: Annotated[str | None, Header(alias=typeform.SIGNATURE_HEADER)] = None,
) -> dict[str, Any]:
    def check(body: bytes, secret: str) -> None:
        typeform.verify(body, signature, secret)

    return await _receive(request, source_id, "typeform", check, lambda body, _: typeform.parse(body))


@router.post(
    "/hubspot/{source_id}",
    status_code=status.HTTP_202_ACCEPTED,
    summary="HubSpot app webhook: contact events become identify touches, deal events deal updates",
    openapi_extra=documented_body(hubspot.EVENTS_ADAPTER),
    responses=RESPONSES,
)
async def post_hubspot(
    source_id: str,
    request: Request,
    signature: Annotated[str | None, Header(alias=hubspot.SIGNATURE_HEADER)] = None,
    timestamp: Annotated[str | None, Header(alias=hubspot.TIMESTAMP_HEADER)] = None,
) -> dict[str, Any]:
    settings = state_of(request).settings
    uri = hubspot.signed_uri(settings.public_url, request.url.path, request.url.query)
    tolerance = timedelta(seconds=settings.webhook_tolerance_s)

    def check(body: bytes, secret: str) -> None:
        delivery = hubspot.Delivery(request.method, uri, body, signature, timestamp)
        hubspot.verify(delivery, secret, now=received_now(), tolerance=tolerance)

    return await _receive(request, source_id, "hubspot", check, lambda body, _: hubspot.parse(body))


@router.post(
    "/generic/{source_id}",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Any tool: Leadflow touch and deal payloads, signed with the source's secret",
    description=generic.__doc__,
    openapi_extra=documented_body(TypeAdapter(AnyData | list[AnyData])),
    responses=RESPONSES,
)
async def post_generic(
    source_id: str,
    request: Request,
    timestamp: Annotated[str | None, Header(alias=generic.TIMESTAMP_HEADER)] = None,
    signature: Annotated[str | None, Header(alias=generic.SIGNATURE_HEADER)] = None,
) -> dict[str, Any]:
    tolerance = timedelta(seconds=state_of(request).settings.webhook_tolerance_s)

    def check(body: bytes, secret: str) -> None:
        now = received_now()
        generic.verify(body, timestamp=timestamp, received=signature, secret=secret, now=now, tolerance=tolerance)

    return await _receive(request, source_id, "generic", check, lambda body, s: generic.parse(body, source_id=s.id))


async def _receive(request: Request, source_id: str, kind: str, check: Check, parse: Parse) -> dict[str, Any]:
    state = state_of(request)
    source = await state.source_by_id(source_id, kind)
    with state.rejecting(source):
        require_content_type(request.headers.get("content-type"), "application/json")
        body = await read_body(request, MAX_BYTES)
        check(body, state.signing_secret(source))
        items = parse(body, source)
    records = state.records_for(source, items)
    await state.accept(source, records)
    return {"accepted": len(records), "ids": [event.id for _, event in records]}
