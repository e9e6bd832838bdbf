"""The admin API: the directory (reps, teams, territories, account lists, rejection reasons), users and
their tokens, the rule set and its dry run, and each team's webhook signing secret."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing import store
from services.routing.auth import Role, hash_token, new_token
from services.routing.dryrun import DryRun, dry_run
from services.routing.model import DOCUMENTS, Document, Id, Kind, RuleSet, check_references, referrers
from services.routing.placement import facts_of, load_directory, webhook_secret
from services.routing.routes import require_admin, state_of
from shared.web import Conflict, InvalidBody, NotFound, documented_body, read_body, validation_errors

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])
MAX_BODY_BYTES = 2_000_000
PathId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:@-]+$")]


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidBody([{"field": "body", "rule": "json", "message": f"not JSON: {exc}"}]) from None


def _validated(model: type[Document], value: Any) -> Any:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise InvalidBody(validation_errors(exc.errors(include_url=False))) from None


async def known_ids(session: AsyncSession) -> dict[Kind, set[str]]:
    known: dict[Kind, set[str]] = {kind: set() for kind in DOCUMENTS}
    for row in await store.all_documents(session):
        known[row["kind"]].add(row["id"])
    return known


async def validated_references(session: AsyncSession, document: BaseModel) -> None:
    if errors := check_references(document, await known_ids(session)):
        raise InvalidBody([dict(e) for e in errors])


def _put_route(kind: Kind, model: type[Document]) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def put(request: Request, response: Response, document_id: PathId) -> dict[str, Any]:
        body = _json(await read_body(request, MAX_BODY_BYTES))
        if not isinstance(body, dict):
            raise InvalidBody([{"field": "body", "rule": "object", "message": "expected a JSON object"}])
        if body.setdefault("id", document_id) != document_id:
            raise InvalidBody([{"field": "id", "rule": "matches-path", "message": "id must equal the id in the path"}])
        document = _validated(model, body)
        async with state_of(request).sessions.begin() as session:
            await store.lock_directory(session)
            await validated_references(session, document)
            created = await store.put_document(session, kind, document_id, document.model_dump(mode="json"))
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return dict(document.model_dump(mode="json"))

    return put


def _list_route(kind: Kind) -> Callable[..., Awaitable[list[dict[str, Any]]]]:
    async def list_documents(request: Request) -> list[dict[str, Any]]:
        async with state_of(request).sessions() as session:
            return await store.documents_of(session, kind)

    return list_documents


def _get_route(kind: Kind) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def get(request: Request, document_id: PathId) -> dict[str, Any]:
        async with state_of(request).sessions() as session:
            found = await store.document(session, kind, document_id)
        if found is None:
            raise NotFound(f"no {kind[:-1].replace('_', ' ')} {document_id!r}", field="document_id")
        return found

    return get


def _delete_route(kind: Kind) -> Callable[..., Awaitable[Response]]:
    async def delete(request: Request, document_id: PathId) -> Response:
        async with state_of(request).sessions.begin() as session:
            await store.lock_directory(session)
            directory = await load_directory(session)
            everything = [
                *directory.reps.values(),
                *directory.teams.values(),
                *directory.lists.values(),
                directory.rules,
            ]
            if users := referrers(kind, document_id, everything):
                raise Conflict(f"still named by {', '.join(users)}", field="document_id", rule="in-use")
            if not await store.delete_document(session, kind, document_id):
                raise NotFound(f"no {kind[:-1].replace('_', ' ')} {document_id!r}", field="document_id")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return delete


for _kind, _model in DOCUMENTS.items():
    _name, _path = _kind.replace("_", " "), "/" + _kind.replace("_", "-")
    router.add_api_route(_path, _list_route(_kind), methods=["GET"], summary=f"Every one of the {_name}")
    router.add_api_route(f"{_path}/{{document_id}}", _get_route(_kind), methods=["GET"], summary=f"One of the {_name}")
    router.add_api_route(
        f"{_path}/{{document_id}}",
        _put_route(_kind, _model),
        methods=["PUT"],
        summary=f"Create or replace one of the {_name} (validated; ids it names must exist)",
        openapi_extra=documented_body(TypeAdapter(_model)),
        responses={201: {"description": "Created"}, 200: {"description": "Replaced"}},
    )
    router.add_api_route(
        f"{_path}/{{document_id}}",
        _delete_route(_kind),
        methods=["DELETE"],
        status_code=204,
        summary=f"Delete one of the {_name}; refused (409) while something names it",
    )


# --- users ---------------------------------------------------------------------------------------


class UserIn(BaseModel):
    id: Id
    name: str = Field(min_length=1, max_length=200)
    role: Role
    rep_id: Id | None = Field(None, description="Required for role rep: the rep whose leads the user sees.")
    team_id: Id | None = Field(None, description="Required for role manager: the team the user manages.")

    @model_validator(mode="after")
    def _scope(self) -> "UserIn":
        if self.role == "rep" and self.rep_id is None:
            raise ValueError("a rep user needs rep_id")
        if self.role == "manager" and self.team_id is None:
            raise ValueError("a manager user needs team_id")
        return self


class UserOut(BaseModel):
    id: str
    name: str
    role: str
    rep_id: str | None
    team_id: str | None
    created_at: datetime


class NewUser(UserOut):
    token: str = Field(description="Shown once; only its hash is stored.")


@router.post("/users", status_code=201, summary="Create a sales user and their API token (shown once)")
async def create_user(request: Request, user: UserIn) -> NewUser:
    token = new_token()
    async with state_of(request).sessions.begin() as session:
        known = await known_ids(session)
        if user.rep_id and user.rep_id not in known["reps"]:
            raise InvalidBody([{"field": "rep_id", "rule": "unknown-reference", "message": f"no rep {user.rep_id!r}"}])
        if user.team_id and user.team_id not in known["teams"]:
            raise InvalidBody(
                [{"field": "team_id", "rule": "unknown-reference", "message": f"no team {user.team_id!r}"}]
            )
        if any(u["id"] == user.id for u in await store.user_list(session)):
            raise Conflict(f"user {user.id!r} exists", field="id", rule="unique")
        row = await store.add_user(session, {**user.model_dump(), "token_hash": hash_token(token)})
    return NewUser(**{k: v for k, v in row.items() if k != "token_hash"}, token=token)


@router.get("/users", summary="Every sales user (tokens are never shown again)")
async def list_users(request: Request) -> list[UserOut]:
    async with state_of(request).sessions() as session:
        return [UserOut(**row) for row in await store.user_list(session)]


@router.delete("/users/{user_id}", status_code=204, summary="Delete a user: their token stops working")
async def delete_user(request: Request, user_id: PathId) -> Response:
    async with state_of(request).sessions.begin() as session:
        if not await store.delete_user(session, user_id):
            raise NotFound(f"no user {user_id!r}", field="user_id")
    return Response(status_code=204)


# --- rules ---------------------------------------------------------------------------------------


class RulesOut(BaseModel):
    version: int
    created_at: datetime | None
    rules: dict[str, Any]


@router.get("/rules", summary="The active rule set (version 0: no rules, everything to the open queue)")
async def get_rules(request: Request) -> RulesOut:
    async with state_of(request).sessions() as session:
        row = await store.active_rules(session)
    if row is None:
        return RulesOut(version=0, created_at=None, rules=RuleSet().model_dump(mode="json"))
    return RulesOut(version=row["version"], created_at=row["created_at"], rules=row["body"])


@router.put(
    "/rules",
    status_code=201,
    summary="Activate a new rule set version; an invalid one is refused and the active one stays",
    openapi_extra=documented_body(TypeAdapter(RuleSet)),
)
async def put_rules(request: Request) -> RulesOut:
    rules = _validated(RuleSet, _json(await read_body(request, MAX_BODY_BYTES)))
    async with state_of(request).sessions.begin() as session:
        await store.lock_directory(session)
        await validated_references(session, rules)
        row = await store.add_rule_set(session, rules.model_dump(mode="json"))
    return RulesOut(version=row["version"], created_at=row["created_at"], rules=row["body"])


@router.post(
    "/rules/dry-run",
    summary="Replay a proposed rule set over the MQLs of the last `days` days: who would have received what",
    openapi_extra=documented_body(TypeAdapter(RuleSet)),
)
async def dry_run_rules(
    request: Request,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
    limit: Annotated[int, Query(ge=1, le=50_000)] = 10_000,
) -> DryRun:
    rules = _validated(RuleSet, _json(await read_body(request, MAX_BODY_BYTES)))
    async with state_of(request).sessions() as session:
        await validated_references(session, rules)
        directory = await load_directory(session)
        mqls = await store.mqls_since(session, datetime.now(UTC) - timedelta(days=days), limit)
    return dry_run([(m["mql_at"], facts_of(m)) for m in mqls], directory, rules)


# --- webhooks ------------------------------------------------------------------------------------


@router.get("/teams/{team_id}/webhook-secret", summary="The secret the team's CRM uses to check signatures")
async def team_webhook_secret(request: Request, team_id: PathId) -> dict[str, str]:
    state = state_of(request)
    async with state.sessions() as session:
        if await store.document(session, "teams", team_id) is None:
            raise NotFound(f"no team {team_id!r}", field="team_id")
    secret = webhook_secret(state.settings.secret_key.get_secret_value(), team_id)
    return {"team_id": team_id, "secret": secret, "signature_header": "X-Leadflow-Signature: t=<unix>,v1=<hex>"}


class Delivery(BaseModel):
    id: int
    team_id: str
    event_id: str
    event_type: str
    lead_id: str
    url: str
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


@router.get("/webhooks/deliveries", summary="The delivery log, newest first (cursor: `before` = last id seen)")
async def deliveries(
    request: Request,
    team_id: Annotated[str | None, Query(max_length=64)] = None,
    delivery_status: Annotated[Literal["pending", "delivered", "dead"] | None, Query(alias="status")] = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[Delivery]:
    async with state_of(request).sessions() as session:
        rows = await store.delivery_log(session, team_id=team_id, status=delivery_status, before=before, limit=limit)
    return [Delivery(**{k: v for k, v in r.items() if k in Delivery.model_fields}) for r in rows]
