"""Signed webhooks from any tool: Leadflow's own touch and deal payloads, HMAC-signed Stripe-style (pure).

The sender signs `f"{timestamp}.{raw body}"` with the source's signing secret:

    X-Leadflow-Timestamp: 1767225600                  (unix seconds, when the request was signed)
    X-Leadflow-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>

Several `v1=` values may be sent, comma-separated (one per secret while rotating); one match is enough.
A timestamp further than the tolerance from now is refused, so a captured request cannot be replayed later.

The body is one payload of `POST /v1/events` or `POST /v1/deals`, or an array of them, mixed freely:
each payload's versioned `type` says whether it is a touch or a deal, so one URL serves both. Event ids
are derived from the content (the timestamp is not part of it): a re-signed retry keeps its ids.
"""

import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta

from services.ingest.sources.native import parse_items
from shared.events import DATA_ADAPTER, DealData, TouchData
from shared.web import Unauthorized

TIMESTAMP_HEADER = "X-Leadflow-Timestamp"
SIGNATURE_HEADER = "X-Leadflow-Signature"
SCHEME = "v1"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of `<timestamp>.<body>`: the value after `v1=`."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, now: datetime) -> dict[str, str]:
    """The two headers a sender adds; what the tests and the README examples do."""
    timestamp = str(int(now.timestamp()))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: f"{SCHEME}={signature(secret, timestamp, body)}"}


def verify(
    body: bytes, *, timestamp: str | None, received: str | None, secret: str, now: datetime, tolerance: timedelta
) -> None:
    stamp = (timestamp or "").strip()
    signed_at = _signed_at(stamp)
    if abs(now - signed_at) > tolerance:
        raise Unauthorized(
            f"{TIMESTAMP_HEADER} is {signed_at.isoformat()}, more than {tolerance.total_seconds():g} s from now",
            field=TIMESTAMP_HEADER,
            rule="replay-window",
        )
    candidates = _v1_values(received)
    if not candidates:
        raise Unauthorized(
            f"{SIGNATURE_HEADER} needs a `{SCHEME}=<hex>` value", field=SIGNATURE_HEADER, rule="signature"
        )
    expected = signature(secret, stamp, body).encode()
    if not any(hmac.compare_digest(value.encode(), expected) for value in candidates):
        raise Unauthorized(
            f"{SIGNATURE_HEADER} does not match `<timestamp>.<body>` signed with this source's secret",
            field=SIGNATURE_HEADER,
            rule="signature",
        )


def parse(body: bytes, *, source_id: str) -> list[tuple[str, TouchData | DealData]]:
    """(event id, payload) per item, ids as `POST /v1/events` derives them; one bad item rejects all."""
    return parse_items(body, DATA_ADAPTER, source_id=source_id, idempotency_key=None)


def _signed_at(timestamp: str) -> datetime:
    if not re.fullmatch(r"[0-9]{1,12}", timestamp):
        raise Unauthorized(f"{TIMESTAMP_HEADER} must be unix seconds", field=TIMESTAMP_HEADER, rule="timestamp")
    return datetime.fromtimestamp(int(timestamp), UTC)


def _v1_values(header: str | None) -> list[str]:
    pairs = (part.strip().partition("=") for part in (header or "").split(","))
    return [value.strip().lower() for scheme, _, value in pairs if scheme.strip() == SCHEME and value.strip()]
