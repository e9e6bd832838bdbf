"""Leadflow's own API: touches and deal updates posted as JSON, one object or an array (pure)."""

from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from shared.events import DEAL_ADAPTER, TOUCH_ADAPTER, DealData, TouchData, content_id
from shared.web import Invalid, InvalidBody, validation_errors

MAX_BATCH = 500


def parse_items(
    body: bytes, adapter: TypeAdapter[Any], *, source_id: str, idempotency_key: str | None
) -> list[tuple[str, Any]]:
    """(event id, payload) for each item; one invalid item rejects the whole request."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"body is not JSON: {exc}", field="body", rule="json") from None
    batch = raw if isinstance(raw, list) else [raw]
    if not batch:
        raise Invalid("a batch needs at least one event", field="body", rule="min-items")
    if len(batch) > MAX_BATCH:
        raise Invalid(f"a batch holds at most {MAX_BATCH} events, got {len(batch)}", field="body", rule="max-items")
    payloads, errors = [], []
    for i, item in enumerate(batch):
        prefix = f"[{i}]." if isinstance(raw, list) else ""
        try:
            payloads.append(adapter.validate_python(item))
        except ValidationError as exc:
            errors += [{**e, "field": prefix + e["field"]} for e in validation_errors(exc.errors(include_url=False))]
    if errors:
        raise InvalidBody(errors)
    if idempotency_key:
        ids = [idempotency_key] if len(batch) == 1 else [f"{idempotency_key}:{i}" for i in range(len(batch))]
    else:
        ids = [content_id("native", source_id, item) for item in batch]
    return list(zip(ids, payloads, strict=True))


def parse_touches(body: bytes, *, source_id: str, idempotency_key: str | None) -> list[tuple[str, TouchData]]:
    return parse_items(body, TOUCH_ADAPTER, source_id=source_id, idempotency_key=idempotency_key)


def parse_deals(body: bytes, *, source_id: str, idempotency_key: str | None) -> list[tuple[str, DealData]]:
    return parse_items(body, DEAL_ADAPTER, source_id=source_id, idempotency_key=idempotency_key)
