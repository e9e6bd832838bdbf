"""Outbound CRM webhooks: due deliveries are posted signed, retried with exponential backoff, then
dead-lettered. Rows are locked while being sent, so replicas never post one delivery at once."""

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.routing import store
from services.routing.config import RoutingSettings
from services.routing.placement import webhook_secret
from services.routing.webhooks import SIGNATURE_HEADER, next_attempt, signature
from shared.consumer import retry_transient

log = logging.getLogger(__name__)


async def post(client: httpx.AsyncClient, settings: RoutingSettings, row: dict[str, Any], now: datetime) -> str | None:
    """The error of one attempt, or None when the receiver answered 2xx."""
    secret = webhook_secret(settings.secret_key.get_secret_value(), row["team_id"])
    headers = {
        "content-type": "application/json",
        SIGNATURE_HEADER: signature(secret, int(now.timestamp()), row["body"]),
        "X-Leadflow-Event-Id": row["event_id"],
    }
    try:
        response = await client.post(row["url"], content=row["body"], headers=headers)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:1000]
    return None if response.is_success else f"HTTP {response.status_code}"


def outcome(settings: RoutingSettings, row: dict[str, Any], error: str | None, now: datetime) -> dict[str, Any]:
    attempts = row["attempts"] + 1
    if error is None:
        return {"status": "delivered", "attempts": attempts, "delivered_at": now, "last_error": None}
    retry_at = next_attempt(
        attempts,
        now,
        max_attempts=settings.webhook_max_attempts,
        first_s=settings.webhook_first_retry_s,
        max_s=settings.webhook_max_retry_s,
    )
    status = "pending" if retry_at else "dead"
    return {"status": status, "attempts": attempts, "last_error": error, "next_attempt_at": retry_at or now}


async def deliver_once(
    sessions: async_sessionmaker[AsyncSession], client: httpx.AsyncClient, settings: RoutingSettings, size: int = 20
) -> int:
    async with sessions.begin() as session:
        rows = await store.due_deliveries(session, datetime.now(UTC), size)
        for row in rows:
            now = datetime.now(UTC)
            error = await post(client, settings, row, now)
            if error is not None:
                log.warning("webhook delivery failed", extra={"delivery": row["id"], "error": error})
            await store.save_delivery(session, row["id"], outcome(settings, row, error, now))
    return len(rows)


async def deliver_forever(sessions: async_sessionmaker[AsyncSession], settings: RoutingSettings) -> None:
    async with httpx.AsyncClient(timeout=settings.webhook_timeout_s) as client:
        while True:
            try:
                if await retry_transient("webhook delivery", lambda: deliver_once(sessions, client, settings)):
                    continue
            except Exception:
                log.exception("webhook delivery failed; trying again")
            await asyncio.sleep(settings.webhook_poll_s)
