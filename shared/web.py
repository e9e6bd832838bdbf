"""The HTTP edge every service shares: RFC 9457 problem+json, /healthz, /readyz, /metrics."""

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import db
from shared.bus import Publisher

log = logging.getLogger(__name__)
T = TypeVar("T")
PROBLEM_JSON = "application/problem+json"

REQUESTS = Counter("leadflow_http_requests_total", "HTTP requests", ["service", "route", "method", "status"])
LATENCY = Histogram(
    "leadflow_http_request_seconds",
    "HTTP request latency",
    ["service", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class Problem(Exception):
    """A client-facing error. Raise it (or a subclass) anywhere below the edge; it renders as problem+json."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        field: str | None = None,
        rule: str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = [{"field": field, "rule": rule or self.slug, "message": detail}] if field else []
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Missing or invalid credentials"


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class UnsupportedMediaType(Problem):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class Invalid(Problem):
    status, slug, title = 422, "validation", "The request is not valid"


class RateLimited(Problem):
    status, slug, title = 429, "rate-limited", "Too many requests"


class Unavailable(Problem):
    status, slug, title = 503, "unavailable", "Temporarily unavailable"


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str,
    errors: Sequence[Mapping[str, Any]] = (),
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail}
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = list(errors)
    body.update(extra or {})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def field_path(loc: Sequence[Any]) -> str:
    """`("body", "events", 3, "identity", "email")` -> `events[3].identity.email`."""
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "leadflow." in str(part) or part in ("function-after", "tagged-union"):
            continue  # pydantic's union-member labels are not fields
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


_TAG_FIELD = {"union_tag_invalid": ("type",), "union_tag_not_found": ("type",)}


def validation_errors(errors: Sequence[Mapping[str, Any]], prefix: str = "") -> list[dict[str, Any]]:
    return [
        {
            "field": prefix + field_path((*e.get("loc", ()), *_TAG_FIELD.get(e.get("type", ""), ()))),
            "rule": e.get("type", "invalid"),
            "message": e.get("msg", "invalid"),
        }
        for e in errors
    ]


def invalid_response(errors: list[dict[str, Any]], instance: str | None = None) -> JSONResponse:
    first = errors[0] if errors else {"field": "body", "message": "invalid"}
    detail = f"{first['field']}: {first['message']}"
    return problem_response(422, Invalid.title, detail, slug=Invalid.slug, errors=errors, instance=instance)


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(
            exc.status,
            exc.title,
            exc.detail,
            slug=exc.slug,
            errors=exc.errors,
            instance=request.url.path,
            headers=exc.headers,
            extra=exc.extra,
        )

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return invalid_response(validation_errors(exc.errors()), request.url.path)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(
            exc.status_code,
            str(exc.detail),
            str(exc.detail),
            slug=f"http-{exc.status_code}",
            instance=request.url.path,
            headers=exc.headers,
        )

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", extra={"path": request.url.path})
        return problem_response(500, "Internal error", "An unexpected error occurred.", slug="internal")

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)


ReadinessCheck = Callable[[], Awaitable[None]]


class ServiceState(Protocol):
    """What every service's lifespan state holds and readiness looks at."""

    @property
    def engine(self) -> AsyncEngine: ...

    @property
    def publisher(self) -> Publisher: ...


def database_and_broker(state: ServiceState) -> Mapping[str, ReadinessCheck]:
    """The readiness of every service: its database answers and its broker answers a metadata request."""
    return {"database": lambda: db.ping(state.engine), "broker": state.publisher.check}


def install_operational_routes(app: FastAPI, checks: Callable[[Request], Mapping[str, ReadinessCheck]]) -> None:
    """/healthz says the process is alive; /readyz runs each dependency check (database, broker)."""

    @app.get("/healthz", tags=["operations"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="Readiness: database and broker reachable")
    async def readyz(request: Request) -> Response:
        results: dict[str, str] = {}
        for name, check in checks(request).items():
            try:
                await asyncio.wait_for(check(), timeout=3)
                results[name] = "ok"
            except Exception as exc:  # any failure means not ready; say which and why
                results[name] = f"failed: {type(exc).__name__}: {exc}"[:300]
        ready = all(v == "ok" for v in results.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": results}, 200 if ready else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Counts requests and latency per route template (pure ASGI: no per-request task overhead)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(self.service, route, scope["method"], str(status)).inc()
            LATENCY.labels(self.service, route).observe(time.perf_counter() - start)


def create_base_app(service: str, *, description: str, lifespan: Any, version: str = "0.1.0", **kwargs: Any) -> FastAPI:
    app = FastAPI(title=f"leadflow-{service}", description=description, version=version, lifespan=lifespan, **kwargs)
    install_problem_handlers(app)
    app.add_middleware(RejectNul)
    app.add_middleware(MetricsMiddleware, service=service)
    _hoist_body_schemas(app)
    return app


def require_bearer(request: Request, expected: str, purpose: str) -> None:
    """401 unless the request carries `Authorization: Bearer <expected>` (compared in constant time)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthorized(f"{purpose} needs `Authorization: Bearer <LEADFLOW_ADMIN_TOKEN>`", field="authorization")


class InvalidBody(Invalid):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        super().__init__(f"{first['field']}: {first['message']}")
        self.errors = errors


def parse_json(adapter: TypeAdapter[T], body: bytes) -> T:
    """Validate a raw JSON body; any error becomes a 422 problem naming each bad field."""
    try:
        return adapter.validate_json(body)
    except ValidationError as exc:
        raise InvalidBody(validation_errors(exc.errors(include_url=False))) from None


def require_content_type(content_type: str | None, *allowed: str) -> None:
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in allowed:
        raise UnsupportedMediaType(
            f"Content-Type must be one of {', '.join(allowed)}, got {media or 'none'}",
            field="Content-Type",
            rule="media-type",
        )


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refusing more than max_bytes (413) without reading past the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"body is {declared} bytes; the limit is {max_bytes}", field="body", rule="max-size")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body exceeds the limit of {max_bytes} bytes", field="body", rule="max-size")
        chunks.append(chunk)
    return b"".join(chunks)


def documented_body(adapter: TypeAdapter[Any], *, media_type: str = "application/json") -> dict[str, Any]:
    """`openapi_extra` for a route that validates its own raw body, so the schema still shows in /docs."""
    schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {
        "requestBody": {"required": True, "content": {media_type: {"schema": schema}}},
        "x-leadflow-defs": defs,
    }


def _hoist_body_schemas(app: FastAPI) -> None:
    """Move the `x-leadflow-defs` of documented_body into components.schemas once the spec is built."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = build()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for path in spec.get("paths", {}).values():
            for operation in path.values():
                schemas.update(operation.pop("x-leadflow-defs", {}) if isinstance(operation, dict) else {})
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def nul_field(body: bytes) -> str | None:
    """Where a NUL (U+0000) is in a body, which PostgreSQL text and JSONB cannot hold: the JSON field path
    (`events[2].properties.note`), `body` for other content, None when there is none. A JSON `\\u0000`
    counts; in a body that is not JSON those six characters are only text."""
    if b"\x00" not in body and b"\\u0000" not in body:
        return None
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "body" if b"\x00" in body else None
    return _nul_path(document, "") or ("body" if b"\x00" in body else None)


def _nul_path(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    items: Iterable[tuple[str, Any]] = ()
    if isinstance(value, dict):
        for key in value:
            if "\x00" in key:
                return f"{path}.{key!r}" if path else repr(key)
        items = ((f"{path}.{k}" if path else k, v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    return next((found for sub, v in items if (found := _nul_path(v, sub)) is not None), None)


def nul_in_target(scope: Scope) -> str | None:
    """The path, or the name of the first query parameter, that holds a NUL; None when neither does."""
    if "\x00" in scope.get("path", ""):
        return "path"
    query: bytes = scope.get("query_string", b"")
    if b"%00" not in query and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return name.replace("\x00", "") or "query"
    return None


class RejectNul:
    """A request with a NUL in its path, query or (uncompressed) body is refused with a 422 naming where,
    before any handler sees it: PostgreSQL would refuse it halfway through storing the request. Bodies
    up to BUFFER_BYTES are read ahead for the check and replayed to the app; larger ones go through as
    they are, to the size limits of the routes."""

    BUFFER_BYTES = 5 * 1024 * 1024

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (where := nul_in_target(scope)) is not None:
            await _refuse_nul(scope, send, where)
            return
        read: list[Message] = []
        size, more = 0, True
        while more and size <= self.BUFFER_BYTES:
            message = await receive()
            read.append(message)
            size += len(message.get("body", b""))
            more = message["type"] == "http.request" and message.get("more_body", False)
        encoded = any(k == b"content-encoding" for k, _ in scope["headers"])  # the inflating route checks those
        body = b"".join(m.get("body", b"") for m in read) if not more and not encoded else b""
        if (where := nul_field(body)) is not None:
            await _refuse_nul(scope, send, where)
            return

        async def replay() -> Message:
            return read.pop(0) if read else await receive()

        await self.app(scope, replay, send)


async def _refuse_nul(scope: Scope, send: Send, where: str) -> None:
    error = {"field": where, "rule": "no_nul", "message": "NUL characters (U+0000) cannot be stored"}
    response = invalid_response([error], instance=scope.get("path"))
    await response(scope, _nothing_to_receive, send)


async def _nothing_to_receive() -> Message:
    return {"type": "http.disconnect"}


class OpenCors:
    """CORS for public tracking endpoints: any origin, no credentials (keys travel in the body or URL).

    Requests without an Origin header (server SDKs, webhooks) pass straight through at no cost, unlike
    Starlette's CORSMiddleware, which wraps every response.
    """

    MAX_AGE = "86400"

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not any(k == b"origin" for k, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            allow = [
                (b"access-control-allow-origin", b"*"),
                (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                (b"access-control-allow-headers", headers.get(b"access-control-request-headers", b"*")),
                (b"access-control-max-age", self.MAX_AGE.encode()),
            ]
            await send({"type": "http.response.start", "status": 204, "headers": allow})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_origin(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"access-control-allow-origin", b"*")]
            await send(message)

        await self.app(scope, receive, send_with_origin)
