"""Leadflow's own API: touches and deal updates posted as JSON, one object or an array (pure)."""

from typing import Any

from pydantic import TypeAdapter, ValidationError

from shared.events import (
    DATA_ADAPTER,
    DEAL_ADAPTER,
    TOUCH_ADAPTER,
    AnyData,
    Deal,
    DealData,
    Touch,
    TouchData,
    digest_id,
)
from shared.web import Invalid, InvalidBody, Problem, validation_errors

MAX_BATCH = 500


class MalformedJson(Problem):
    status, slug, title = 400, "malformed-json", "The body is not JSON"


_LIST_OF: dict[int, TypeAdapter[Any]] = {
    id(TOUCH_ADAPTER): TypeAdapter(list[Touch]),
    id(DEAL_ADAPTER): TypeAdapter(list[Deal]),
    id(DATA_ADAPTER): TypeAdapter(list[AnyData]),
}


def parse_items(
    body: bytes, adapter: TypeAdapter[Any], *, source_id: str, idempotency_key: str | None
) -> list[tuple[str, Any]]:
    """(event id, payload) for each item; one invalid item rejects the whole request.

    Without an Idempotency-Key the id is a digest of the validated payload, so a re-posted event keeps
    its id (a missing `occurred_at` is filled in later, from the time of receipt, outside the digest).
    """
    if idempotency_key is not None and not 0 < len(idempotency_key) <= 200:
        raise Invalid("Idempotency-Key must be 1 to 200 characters", field="Idempotency-Key", rule="max-length")
    is_batch = body.lstrip()[:1] == b"["
    try:
        parsed = (_LIST_OF[id(adapter)] if is_batch else adapter).validate_json(body)
    except ValidationError as exc:
        errors = validation_errors(exc.errors(include_url=False))
        if any(e["rule"] == "json_invalid" for e in errors):
            raise MalformedJson(errors[0]["message"], field="body", rule="json") from None
        raise InvalidBody(errors) from None
    batch: list[Any] = parsed if is_batch else [parsed]
    if not batch:
        raise Invalid("a batch needs at least one event", field="body", rule="min-items")
    if len(batch) > MAX_BATCH:
        raise Invalid(f"a batch holds at most {MAX_BATCH} events, got {len(batch)}", field="body", rule="max-items")
    if anonymous := _without_identifier(batch, is_batch):
        raise InvalidBody(anonymous)
    if idempotency_key:
        ids = [idempotency_key] if not is_batch else [f"{idempotency_key}:{i}" for i in range(len(batch))]
    else:
        ids = [digest_id("native", source_id, item.model_dump_json()) for item in batch]
    return list(zip(ids, batch, strict=True))


def _without_identifier(batch: list[Any], is_batch: bool) -> list[dict[str, Any]]:
    """Touches whose identity names no one: they have no partition key, so nobody could apply them."""
    message = "give at least one of email, anonymous_id, user_id, recipient_id"
    return [
        {"field": f"[{n}].identity" if is_batch else "identity", "rule": "missing", "message": message}
        for n, item in enumerate(batch)
        if isinstance(item, TouchData) and not any(item.identity.model_dump().values())
    ]


def parse_touches(body: bytes, *, source_id: str, idempotency_key: str | None) -> list[tuple[str, TouchData]]:
    return parse_items(body, TOUCH_ADAPTER, source_id=source_id, idempotency_key=idempotency_key)


def parse_deals(body: bytes, *, source_id: str, idempotency_key: str | None) -> list[tuple[str, DealData]]:
    return parse_items(body, DEAL_ADAPTER, source_id=source_id, idempotency_key=idempotency_key)
