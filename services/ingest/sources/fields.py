"""Reading loosely typed provider JSON: the few coercions every webhook parser needs (pure)."""

from datetime import UTC, datetime
from typing import Any


def mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def text(value: Any, limit: int | None = None) -> str | None:
    """A scalar as text, clipped to `limit`; None for missing, empty or structured values."""
    if value is None or isinstance(value, dict | list) or value == "":
        return None
    return str(value)[:limit]


def unix_time(value: Any) -> datetime | None:
    """Unix seconds (int, float or string); values this large are milliseconds (some documented examples)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    if seconds > 1e11:
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None
