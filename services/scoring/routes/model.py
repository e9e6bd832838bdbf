"""The scoring model: read the active version, store a new one (validated; every version kept)."""

from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, status
from pydantic import BaseModel, Field

from services.scoring import store
from services.scoring.model import DEFAULT_MODEL, ModelInvalid, ScoringModel, validate_model
from services.scoring.routes import require_admin, state_of
from shared.web import InvalidBody, read_body

router = APIRouter(prefix="/v1/model", tags=["model"])
MAX_MODEL_BYTES = 1_000_000


class ModelOut(BaseModel):
    version: int
    created_at: datetime | None
    model: dict[str, Any]


class VersionOut(BaseModel):
    version: int
    created_at: datetime
    active: bool


@router.get("", summary="The active scoring model (version 0 is the built-in default)")
async def get_model(request: Request) -> ModelOut:
    async with state_of(request).sessions() as session:
        row = await store.active_model(session)
    if row is None:
        return ModelOut(version=0, created_at=None, model=DEFAULT_MODEL.model_dump(mode="json"))
    return ModelOut(version=row["version"], created_at=row["created_at"], model=row["body"])


@router.get("/versions", summary="Every stored version, newest first")
async def list_versions(request: Request) -> list[VersionOut]:
    async with state_of(request).sessions() as session:
        return [VersionOut(**row) for row in await store.model_version_list(session)]


class RescoreOut(BaseModel):
    version: int
    leads: int
    pending: int = Field(description="Leads not yet rescored by the active version.")


@router.get("/rescore", summary="Progress of rescoring every lead by the active model version")
async def rescore_progress(request: Request) -> RescoreOut:
    state = state_of(request)
    async with state.sessions() as session:
        version, _ = await state.models.active(session)
        leads, pending = await store.rescore_progress(session, version)
    return RescoreOut(version=version, leads=leads, pending=pending)


@router.put(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(require_admin)],
    summary="Store a new version and make it active; an invalid model is refused and the active one stays",
)
async def put_model(request: Request) -> ModelOut:
    model = parse_model(await read_body(request, MAX_MODEL_BYTES))
    async with state_of(request).sessions.begin() as session:
        row = await store.add_model_version(session, model.model_dump(mode="json"))
    return ModelOut(version=row["version"], created_at=row["created_at"], model=row["body"])


def parse_model(body: bytes) -> ScoringModel:
    """A model from a request body; problem+json (422) naming every invalid field otherwise."""
    try:
        return validate_model(_json(body))
    except ModelInvalid as exc:
        raise InvalidBody([dict(e) for e in exc.errors]) from None


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidBody([{"field": "body", "rule": "json", "message": f"not JSON: {exc}"}]) from None
