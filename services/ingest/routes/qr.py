"""QR codes: an admin makes one per campaign placement; scanning it records a touch and redirects.

The printed code holds only the scan URL (`/q/{code}`), so the target can be read from the database
and a code never needs reprinting to count. A scan always redirects, also when the broker is away
(see routes/tracking.py).
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from services.ingest import links, store
from services.ingest.intake import IngestState, received_now, state_of
from services.ingest.routes.admin import require_admin
from services.ingest.routes.links import WebUrl
from services.ingest.routes.tracking import (
    NO_STORE,
    anonymous_id_in,
    publish_quietly,
    quiet_source,
    remember,
    seen_by,
)
from services.ingest.sources import web
from services.ingest.store import QrCode
from shared.events import content_id
from shared.web import NotFound

router = APIRouter(tags=["QR codes"])
IMAGE_CACHE = {"Cache-Control": "public, max-age=86400"}  # a code's image never changes


class QrCodeIn(BaseModel):
    source_id: str = Field(max_length=40, description="A web source; counts go to it.")
    campaign_id: str = Field(min_length=1, max_length=200)
    target_url: WebUrl
    name: str | None = Field(None, max_length=200, examples=["Booth poster, Berlin 2026"])


class QrCodeOut(BaseModel):
    code: str
    source_id: str
    campaign_id: str
    target_url: str
    name: str | None
    created_at: datetime
    scan_url: str
    png_url: str
    svg_url: str


def _out(state: IngestState, qr: QrCode) -> dict[str, Any]:
    scan_url = _scan_url(state, qr.code)
    fields = {k: getattr(qr, k) for k in QrCode.__dataclass_fields__}
    return {**fields, "scan_url": scan_url, "png_url": f"{scan_url}.png", "svg_url": f"{scan_url}.svg"}


def _scan_url(state: IngestState, code: str) -> str:
    return f"{state.settings.public_url.rstrip('/')}/q/{code}"


@router.post(
    "/v1/admin/qr-codes",
    status_code=status.HTTP_201_CREATED,
    response_model=QrCodeOut,
    dependencies=[Depends(require_admin)],
    tags=["admin"],
    summary="Make a QR code for a campaign: its scan URL and printable PNG and SVG",
)
async def create_qr_code(body: QrCodeIn, request: Request) -> dict[str, Any]:
    state = state_of(request)
    await state.source_by_id(body.source_id, "web")
    qr = QrCode(links.new_qr_code(), body.source_id, body.campaign_id, body.target_url, body.name, datetime.now(UTC))
    async with state.sessions.begin() as session:
        await store.add_qr_code(session, qr)
    return _out(state, qr)


@router.get(
    "/v1/admin/qr-codes",
    response_model=list[QrCodeOut],
    dependencies=[Depends(require_admin)],
    tags=["admin"],
    summary="QR codes, oldest first, optionally of one campaign",
)
async def list_qr_codes(
    request: Request, campaign_id: Annotated[str | None, Query(max_length=200)] = None
) -> list[dict[str, Any]]:
    state = state_of(request)
    async with state.sessions() as session:
        return [_out(state, qr) for qr in await store.list_qr_codes(session, campaign_id)]


# The image routes come first: `/q/{code}` would also match `abc.png`.
@router.get("/q/{code}.png", summary="The printable code as PNG", response_class=Response)
async def qr_png(code: str, request: Request, scale: Annotated[int, Query(ge=1, le=40)] = 10) -> Response:
    qr = await _load(state_of(request), code)
    return Response(
        links.qr_png(_scan_url(state_of(request), qr.code), scale=scale), media_type="image/png", headers=IMAGE_CACHE
    )


@router.get("/q/{code}.svg", summary="The printable code as SVG", response_class=Response)
async def qr_svg(code: str, request: Request) -> Response:
    qr = await _load(state_of(request), code)
    return Response(
        links.qr_svg(_scan_url(state_of(request), qr.code)), media_type="image/svg+xml", headers=IMAGE_CACHE
    )


@router.get("/q/{code}", summary="Scan: records a QrScanned touch, then 302 to the target", response_class=Response)
async def scan(code: str, request: Request, background: BackgroundTasks) -> Response:
    state = state_of(request)
    qr = await _load(state, code)
    anonymous_id = anonymous_id_in(request)
    response = RedirectResponse(qr.target_url, status_code=302, headers=NO_STORE)
    if anonymous_id is None:
        anonymous_id = web.new_anonymous_id()
        remember(response, request, anonymous_id)
    source = await quiet_source(state, qr.source_id)
    if source is not None:
        seen = seen_by(request)
        touch = links.scanned(
            qr.code, campaign_id=qr.campaign_id, target_url=qr.target_url, anonymous_id=anonymous_id, **seen
        )
        event_id = content_id("qr", qr.code, anonymous_id, seen["user_agent"], received_now().isoformat())
        background.add_task(publish_quietly, state, source, state.records_for(source, [(event_id, touch)]))
    return response


async def _load(state: IngestState, code: str) -> QrCode:
    qr = await _find(state, code) if links.is_qr_code(code) else None
    if qr is None:
        raise NotFound(f"no QR code {code}")
    return qr


async def _find(state: IngestState, code: str) -> QrCode | None:
    async with state.sessions() as session:
        return await store.load_qr_code(session, code)
