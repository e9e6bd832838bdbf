"""Email opens and clicks through Leadflow's own links: minted by an admin, followed by recipients.

A changed or foreign token is a 404 problem, never a redirect. A valid click always redirects and a
valid open always answers the GIF, also when the broker is away (see routes/tracking.py).
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import AfterValidator, BaseModel, Field, ValidationError, field_validator

from services.ingest import links
from services.ingest.intake import IngestState, received_now, state_of
from services.ingest.machine import ClickBursts
from services.ingest.routes.admin import require_admin
from services.ingest.routes.tracking import (
    NO_STORE,
    anonymous_id_in,
    gif_response,
    publish_quietly,
    quiet_source,
    seen_by,
)
from shared.events import Identity
from shared.web import NotFound

router = APIRouter(tags=["email links"])


def _web_url(url: str) -> str:
    if not links.is_web_url(url):
        raise ValueError("must be an absolute http or https URL")
    return url


WebUrl = Annotated[str, Field(max_length=4096), AfterValidator(_web_url)]


class EmailLinksIn(BaseModel):
    source_id: str = Field(max_length=40, description="A web source; counts go to it.")
    campaign_id: str = Field(min_length=1, max_length=200)
    email: str = Field(max_length=320, description="The recipient.")
    message_id: str = Field(min_length=1, max_length=500)
    urls: list[WebUrl] = Field(default_factory=list, max_length=200, description="Targets of the message's links.")
    sent_at: datetime | None = Field(None, description="When the message goes out; now if absent.")

    @field_validator("email")
    @classmethod
    def _an_email(cls, value: str) -> str:
        try:
            return Identity(email=value).email or ""
        except ValidationError:
            raise ValueError("not an email address") from None


class Link(BaseModel):
    url: str
    click_url: str


class EmailLinksOut(BaseModel):
    open_url: str = Field(description="Put it in an <img> of the message: an open pixel.")
    links: list[Link]


@router.post(
    "/v1/admin/email-links",
    response_model=EmailLinksOut,
    dependencies=[Depends(require_admin)],
    tags=["admin"],
    summary="Signed open-pixel and click URLs for one message to one recipient (nothing is stored)",
)
async def mint_email_links(body: EmailLinksIn, request: Request) -> dict[str, Any]:
    state = state_of(request)
    await state.source_by_id(body.source_id, "web")
    minted = links.email_links(
        state.settings.public_url,
        _key(state),
        source_id=body.source_id,
        campaign_id=body.campaign_id,
        email=body.email,
        message_id=body.message_id,
        sent_at=int((body.sent_at or datetime.now(UTC)).timestamp()),
        urls=body.urls,
    )
    return {"open_url": minted.open_url, "links": [{"url": u, "click_url": c} for u, c in minted.click_urls.items()]}


@router.get("/o/{token}.gif", summary="Email open pixel")
async def open_pixel(token: str, request: Request, background: BackgroundTasks) -> Response:
    state = state_of(request)
    claims = _verified(state, token, "open")
    source = await quiet_source(state, claims.source_id)
    if source is not None:
        touch = links.opened(claims, **seen_by(request))
        event_id = links.link_event_id(token, touch.user_agent, received_now())
        background.add_task(publish_quietly, state, source, state.records_for(source, [(event_id, touch)]))
    return gif_response()


@router.get("/c/{token}", summary="Email click: records the click, then 302 to the signed target")
async def click(token: str, request: Request, background: BackgroundTasks) -> Response:
    state = state_of(request)
    claims = _verified(state, token, "click")
    target = claims.url or ""
    now = received_now()
    burst = _bursts(request).record(links.burst_key(claims), target, now.timestamp())
    source = await quiet_source(state, claims.source_id)
    if source is not None:
        seen = seen_by(request)
        touch = links.clicked(claims, **seen, anonymous_id=anonymous_id_in(request), at=now, links_in_burst=burst)
        event_id = links.link_event_id(token, seen["user_agent"], now)
        background.add_task(publish_quietly, state, source, state.records_for(source, [(event_id, touch)]))
    return RedirectResponse(target, status_code=302, headers=NO_STORE)


def _key(state: IngestState) -> bytes:
    return links.links_key(state.settings.secret_key.get_secret_value())


def _verified(state: IngestState, token: str, kind: links.LinkKind) -> links.LinkClaims:
    try:
        return links.verify(token, _key(state), kind)
    except links.BadToken:
        raise NotFound(f"no such {kind} link") from None


def _bursts(request: Request) -> ClickBursts:
    """Per app (process): replicas see their own bursts, which is enough for 'all links at once'."""
    bursts: ClickBursts | None = getattr(request.app.state, "click_bursts", None)
    if bursts is None:
        bursts = request.app.state.click_bursts = ClickBursts()
    return bursts
