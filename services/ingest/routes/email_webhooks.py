"""Email-provider webhooks at /v1/webhooks/{provider}/{source_id}: SendGrid, Mailgun, Mailchimp.

Each request is authenticated with the provider's own scheme before anything is parsed; a refused
request publishes nothing, answers 401 problem+json naming the field at fault, and counts as rejected
for the source. Events that are not a prospect's action (deliveries, bounces, ...) are acknowledged
with 200 and not published, so the provider does not retry them.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from services.ingest.intake import IngestState, received_now, state_of
from services.ingest.sources import mailchimp, mailgun, sendgrid
from services.ingest.store import Source
from shared.events import TouchData
from shared.web import read_body, require_content_type

router = APIRouter(prefix="/v1/webhooks", tags=["email webhooks"])
SENDGRID_MAX_BYTES = 5 * 1024 * 1024  # SendGrid posts a batch every 30 s or at 768 KB of events
MAX_BYTES = 1024 * 1024
FORM = "application/x-www-form-urlencoded"
ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "Every touch of the post is in Kafka; other events were acknowledged."},
    401: {"description": "The signature, timestamp, token or URL secret is wrong; nothing was published."},
    404: {"description": "No source of this kind with this id."},
    413: {"description": "The body is over the limit."},
    422: {"description": "The body is not the provider's format; the problem names the field."},
    503: {"description": "The broker did not acknowledge; the provider retries."},
}
UrlSecret = Annotated[str | None, Query(description="The url_secret shown when the source was created.")]


@router.post("/sendgrid/{source_id}", summary="SendGrid Event Webhook (signed)", responses=ANSWERS)
async def sendgrid_events(source_id: str, request: Request) -> dict[str, Any]:
    state = state_of(request)
    source = await state.source_by_id(source_id, "sendgrid")
    with state.rejecting(source):
        require_content_type(request.headers.get("content-type"), "application/json")
        body = await read_body(request, SENDGRID_MAX_BYTES)
        sendgrid.verify(
            source.public_key or "",
            body,
            request.headers.get(sendgrid.SIGNATURE_HEADER),
            request.headers.get(sendgrid.TIMESTAMP_HEADER),
            now=received_now().timestamp(),
            tolerance_s=state.settings.webhook_tolerance_s,
        )
        items = sendgrid.parse(body, source_id=source.id, country_of=state.country_of)
    return await publish(state, source, items)


@router.post("/mailgun/{source_id}", summary="Mailgun webhook (signed)", responses=ANSWERS)
async def mailgun_event(source_id: str, request: Request) -> dict[str, Any]:
    state = state_of(request)
    source = await state.source_by_id(source_id, "mailgun")
    tokens, now = seen_tokens(request), received_now().timestamp()
    tolerance_s = state.settings.webhook_tolerance_s
    with state.rejecting(source):
        require_content_type(request.headers.get("content-type"), "application/json")
        signed = mailgun.posted(await read_body(request, MAX_BYTES))
        mailgun.verify(state.signing_secret(source), signed.signature, now=now, tolerance_s=tolerance_s, seen=tokens)
        items = mailgun.parse(signed.event_data, source_id=source.id, country_of=state.country_of)
    answer = await publish(state, source, items)
    # Remembered only once published: a post the broker refused (503) may come back with the same token.
    tokens.add(signed.signature.token, float(signed.signature.timestamp), now=now, tolerance_s=tolerance_s)
    return answer


@router.get("/mailchimp/{source_id}", summary="Mailchimp's URL check when the webhook is created", responses=ANSWERS)
async def mailchimp_check(source_id: str, request: Request, secret: UrlSecret = None) -> dict[str, Any]:
    state = state_of(request)
    source = await state.source_by_id(source_id, "mailchimp")
    with state.rejecting(source):
        mailchimp.check_secret(secret, source.url_secret_hash)
    return {"ok": True}


@router.post("/mailchimp/{source_id}", summary="Mailchimp audience webhook (URL secret)", responses=ANSWERS)
async def mailchimp_event(source_id: str, request: Request, secret: UrlSecret = None) -> dict[str, Any]:
    state = state_of(request)
    source = await state.source_by_id(source_id, "mailchimp")
    with state.rejecting(source):
        mailchimp.check_secret(secret, source.url_secret_hash)
        require_content_type(request.headers.get("content-type"), FORM)
        body = await read_body(request, MAX_BYTES)
        items = mailchimp.parse(body, source_id=source.id, country_of=state.country_of)
    return await publish(state, source, items)


def seen_tokens(request: Request) -> mailgun.SeenTokens:
    """One cache per app (so per process), created on first use."""
    app_state = request.app.state
    if not hasattr(app_state, "mailgun_tokens"):
        app_state.mailgun_tokens = mailgun.SeenTokens()
    tokens: mailgun.SeenTokens = app_state.mailgun_tokens
    return tokens


async def publish(state: IngestState, source: Source, items: list[tuple[str, TouchData]]) -> dict[str, Any]:
    records = state.records_for(source, items)
    await state.accept(source, records)
    return {"accepted": len(records), "ids": [event.id for _, event in records]}
