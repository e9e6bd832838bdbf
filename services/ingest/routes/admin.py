"""Admin API for sources: create (credentials shown once), list, disable/enable, per-source counts."""

import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import BaseModel, Field

from services.ingest import store
from services.ingest.auth import KINDS, CredentialError, issue_credentials
from services.ingest.intake import state_of
from services.ingest.store import Source
from shared.web import Invalid, NotFound, require_bearer


def require_admin(request: Request) -> None:
    require_bearer(request, state_of(request).settings.admin_token.get_secret_value(), "admin endpoints")


router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])

SourceKind = Literal["api", "segment", "web", "sendgrid", "mailgun", "typeform", "hubspot", "mailchimp", "generic"]
assert set(SourceKind.__args__) == KINDS  # type: ignore[attr-defined]


class SourceIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    kind: SourceKind
    rate_limit_per_s: float | None = Field(None, gt=0, le=100_000)
    signing_secret: str | None = Field(
        None,
        min_length=8,
        max_length=500,
        description="Mailgun signing key, HubSpot client secret, or your own.",
    )
    public_key: str | None = Field(None, max_length=4000, description="SendGrid's verification key (base64 DER).")


class SourceOut(BaseModel):
    id: str
    name: str
    kind: str
    enabled: bool
    rate_limit_per_s: float
    created_at: datetime
    disabled_at: datetime | None
    endpoint: str


class CreatedSource(SourceOut):
    credentials: dict[str, str] = Field(description="Shown once; only a hash or a sealed copy is kept.")


class DayCount(BaseModel):
    day: date
    accepted: int
    rejected: int


class SourceDetail(SourceOut):
    accepted: int
    rejected: int
    days: list[DayCount]


def endpoint_of(request: Request, source: Source) -> str:
    base = state_of(request).settings.public_url.rstrip("/")
    paths = {"api": "/v1/events", "segment": "/v1/batch", "web": "/t.js"}
    if source.kind in paths:
        return base + paths[source.kind]
    return f"{base}/v1/webhooks/{source.kind}/{source.id}"


def _out(request: Request, source: Source) -> dict[str, Any]:
    fields = ("id", "name", "kind", "enabled", "rate_limit_per_s", "created_at", "disabled_at")
    return {**{f: getattr(source, f) for f in fields}, "endpoint": endpoint_of(request, source)}


@router.post("/sources", status_code=status.HTTP_201_CREATED, response_model=CreatedSource)
async def create_source(body: SourceIn, request: Request) -> dict[str, Any]:
    state = state_of(request)
    try:
        issued = issue_credentials(body.kind, signing_secret=body.signing_secret, public_key=body.public_key)
    except CredentialError as exc:
        raise Invalid(str(exc), field=exc.field, rule="required") from None
    source = Source(
        id=f"src_{secrets.token_hex(8)}",
        name=body.name,
        kind=body.kind,
        rate_limit_per_s=body.rate_limit_per_s or state.settings.default_rate_limit_per_s,
        enabled=True,
        created_at=datetime.now(UTC),
        write_key_hash=issued.write_key_hash,
        url_secret_hash=issued.url_secret_hash,
        signing_secret_encrypted=state.box.seal(issued.signing_secret) if issued.signing_secret else None,
        public_key=issued.public_key,
    )
    async with state.sessions.begin() as session:
        await store.add_source(session, source)
    credentials = dict(issued.shown)
    if source.kind == "mailchimp":
        credentials["webhook_url"] = f"{endpoint_of(request, source)}?secret={issued.shown['url_secret']}"
    return {**_out(request, source), "credentials": credentials}


@router.get("/sources", response_model=list[SourceOut])
async def list_sources(request: Request) -> list[dict[str, Any]]:
    async with state_of(request).sessions() as session:
        return [_out(request, s) for s in await store.list_sources(session)]


@router.get("/sources/{source_id}", response_model=SourceDetail)
async def get_source(
    source_id: str, request: Request, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> dict[str, Any]:
    state = state_of(request)
    await state.flush_counts()
    async with state.sessions() as session:
        source = await store.load_source(session, source_id)
        if source is None:
            raise NotFound(f"no source {source_id}")
        counts = await store.load_counts(session, source_id, datetime.now(UTC).date() - timedelta(days=days - 1))
    rows = [DayCount(day=d, accepted=a, rejected=r) for d, a, r in counts]
    return {
        **_out(request, source),
        "accepted": sum(r.accepted for r in rows),
        "rejected": sum(r.rejected for r in rows),
        "days": rows,
    }


async def _set_enabled(request: Request, source_id: str, enabled: bool) -> dict[str, Any]:
    state = state_of(request)
    async with state.sessions.begin() as session:
        source = await store.set_source_enabled(session, source_id, enabled)
    if source is None:
        raise NotFound(f"no source {source_id}")
    state.forget(source_id)
    return _out(request, source)


@router.post("/sources/{source_id}/disable", response_model=SourceOut)
async def disable_source(source_id: str, request: Request) -> dict[str, Any]:
    return await _set_enabled(request, source_id, False)


@router.post("/sources/{source_id}/enable", response_model=SourceOut)
async def enable_source(source_id: str, request: Request) -> dict[str, Any]:
    return await _set_enabled(request, source_id, True)
