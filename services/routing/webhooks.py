"""Outbound CRM webhooks (pure): the signature a receiver checks and when a failed delivery is tried again.

Signature: `X-Leadflow-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, the
scheme Stripe uses, so a receiver can refuse stale or replayed deliveries.
"""

import hashlib
import hmac
from datetime import datetime, timedelta

SIGNATURE_HEADER = "X-Leadflow-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, body: bytes, now: int, tolerance_s: int = 300) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if not parts.get("t", "").isdigit() or abs(now - int(parts["t"])) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, int(parts["t"]), body), f"t={parts['t']},v1={parts.get('v1', '')}")


def next_attempt(attempts: int, now: datetime, *, max_attempts: int, first_s: float, max_s: float) -> datetime | None:
    """After `attempts` failures: the next try, doubling the wait each time; None: dead-lettered."""
    if attempts >= max_attempts:
        return None
    return now + timedelta(seconds=min(max_s, first_s * 2 ** (attempts - 1)))
