"""HubSpot app webhooks: the v3 request signature and CRM events as touches and deals (pure).

HubSpot posts a JSON array of up to 100 events. v3 signs `method + URI + body + timestamp` with the app's
client secret (HMAC-SHA256, base64) and sends the time in `X-HubSpot-Request-Timestamp` (ms). The URI is
the URL HubSpot called, with the percent-escapes of `_DECODED` turned back into characters.

Contacts become `Identified` touches keyed by `hubspot:<portalId>:<objectId>` (and the email once an
`email` change says it); deals become deal events with that same form of id. HubSpot's `eventId` is
"not guaranteed to be unique", so the event id also names the portal, subscription and object; it
stays the same across HubSpot's retries (only `attemptNumber` changes).
"""

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from shared.events import DealCreated, DealData, DealLost, DealStageChanged, DealWon, Identified, Identity, TouchData
from shared.web import Unauthorized, parse_json

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
_DECODED = {"3A": ":", "2F": "/", "3F": "?", "40": "@", "21": "!", "24": "$", "27": "'", "28": "(", "29": ")"}
_DECODED |= {"2A": "*", "2C": ",", "3B": ";"}
_ESCAPE = re.compile("%(" + "|".join(_DECODED) + ")", re.IGNORECASE)
# The developer platform's generic `object.*` subscriptions name the object by type id.
OBJECT_TYPES = {"0-1": "contact", "0-3": "deal"}


@dataclass(frozen=True)
class Delivery:
    """What a HubSpot request carries that its v3 signature covers."""

    method: str
    uri: str
    body: bytes
    signature: str | None = None
    timestamp: str | None = None


def signed_uri(public_url: str, path: str, query: str = "") -> str:
    """The URI HubSpot signs: the public URL it called, with `%3A`, `%2F`, ... decoded as its docs list."""
    uri = public_url.rstrip("/") + path + (f"?{query}" if query else "")
    return _ESCAPE.sub(lambda m: _DECODED[m.group(1).upper()], uri)


def signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.upper().encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def verify(delivery: Delivery, secret: str, *, now: datetime, tolerance: timedelta) -> None:
    """v3 only: the v1/v2 signatures HubSpot also sends have no timestamp, so a captured request could be
    replayed forever by stripping the v3 headers; every current HubSpot app request carries v3."""
    if not delivery.signature:
        raise Unauthorized(f"the {SIGNATURE_HEADER} header is missing", field=SIGNATURE_HEADER, rule="signature")
    sent_at = _timestamp(delivery.timestamp)
    if abs(now - sent_at) > tolerance:
        raise Unauthorized(
            f"{TIMESTAMP_HEADER} is {sent_at.isoformat()}, more than {tolerance.total_seconds():g} s from now",
            field=TIMESTAMP_HEADER,
            rule="replay-window",
        )
    expected = signature_v3(secret, delivery.method, delivery.uri, delivery.body, delivery.timestamp or "")
    if not hmac.compare_digest(delivery.signature.strip().encode(), expected.encode()):
        raise Unauthorized(
            f"{SIGNATURE_HEADER} does not match {delivery.method} {delivery.uri} signed with the client secret",
            field=SIGNATURE_HEADER,
            rule="signature",
        )


def _timestamp(value: str | None) -> datetime:
    if not value or not re.fullmatch(r"[0-9]{1,15}", value.strip()):
        raise Unauthorized(
            f"{TIMESTAMP_HEADER} must be milliseconds since the epoch", field=TIMESTAMP_HEADER, rule="timestamp"
        )
    return datetime.fromtimestamp(int(value) / 1000, UTC)


class HubSpotEvent(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True, coerce_numbers_to_str=True
    )

    event_id: int
    subscription_id: int | None = None
    portal_id: int
    app_id: int | None = None
    occurred_at: int = Field(description="Milliseconds since the epoch.")
    subscription_type: str = Field(max_length=100, examples=["contact.propertyChange", "deal.creation"])
    object_id: int
    object_type_id: str | None = None
    property_name: str | None = Field(None, max_length=200)
    property_value: str | None = None
    change_source: str | None = None
    attempt_number: int = 0


EVENTS_ADAPTER: TypeAdapter[list[HubSpotEvent]] = TypeAdapter(list[HubSpotEvent])


def parse(body: bytes) -> list[tuple[str, TouchData | DealData]]:
    """(event id, payload) per mapped event; subscriptions Leadflow has no event for are left out."""
    mapped = [(event_id(e), to_payload(e)) for e in parse_json(EVENTS_ADAPTER, body)]
    return [(i, payload) for i, payload in mapped if payload is not None]


def event_id(event: HubSpotEvent) -> str:
    subscription = event.subscription_id if event.subscription_id is not None else "-"
    return f"hubspot:{event.portal_id}:{subscription}:{event.event_id}:{event.object_id}"


def object_ref(event: HubSpotEvent) -> str:
    return f"hubspot:{event.portal_id}:{event.object_id}"


def to_payload(event: HubSpotEvent) -> TouchData | DealData | None:
    kind, _, action = event.subscription_type.partition(".")
    if kind == "object":
        kind = OBJECT_TYPES.get(event.object_type_id or "", kind)
    if kind == "contact":
        return contact_touch(event, action)
    if kind == "deal":
        return deal_event(event, action)
    return None


def contact_touch(event: HubSpotEvent, action: str) -> Identified | None:
    """Creation, a property change (attributes {name: value}) or deletion (attributes {"deleted": true})."""
    identity = Identity(recipient_id=object_ref(event))
    if action == "creation":
        attributes: dict[str, object] = {}
    elif action == "propertyChange" and event.property_name:
        attributes = {event.property_name: event.property_value}
        if event.property_name == "email" and event.property_value:
            identity = _with_email(identity, event.property_value)
    elif action == "deletion":
        attributes = {"deleted": True}
    else:
        return None
    return Identified(identity=identity, occurred_at=_occurred(event), channel="crm", attributes=attributes)


def deal_event(event: HubSpotEvent, action: str) -> DealData | None:
    """Creation, or a change of stage, amount, name or currency; a value the contract cannot hold maps to nothing.

    HubSpot's default pipeline closes with the stage ids `closedwon` and `closedlost`; other stages (and
    custom pipelines' stage ids) are stage changes. An amount, name or currency change is a
    `DealStageChanged` whose `stage` is absent, meaning "unchanged": it carries the deal's new value.
    """
    common = {"deal_id": object_ref(event), "occurred_at": _occurred(event), "source_system": "hubspot"}
    try:
        if action == "creation":
            return DealCreated.model_validate(common)
        if action == "propertyChange":
            return _deal_change(event, common)
    except (ValidationError, InvalidOperation):
        return None
    return None


_CLOSED_STAGES: dict[str, type[DealData]] = {"closedwon": DealWon, "closedlost": DealLost}
_DEAL_PROPERTIES = {"amount": "amount", "dealname": "name", "deal_currency_code": "currency"}


def _deal_change(event: HubSpotEvent, common: dict[str, Any]) -> DealData | None:
    name, value = event.property_name, event.property_value
    if not value:
        return None
    if name == "dealstage":
        kind = _CLOSED_STAGES.get(value, DealStageChanged)
        return kind.model_validate({**common, "stage": value})
    if name not in _DEAL_PROPERTIES:
        return None
    typed = Decimal(value) if name == "amount" else value
    return DealStageChanged.model_validate({**common, _DEAL_PROPERTIES[name]: typed})


def _with_email(identity: Identity, email: str) -> Identity:
    try:
        return Identity(email=email, recipient_id=identity.recipient_id)
    except ValidationError:
        return identity  # still recorded as the `email` attribute


def _occurred(event: HubSpotEvent) -> datetime:
    return datetime.fromtimestamp(event.occurred_at / 1000, UTC)
