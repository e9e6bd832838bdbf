"""Segment's HTTP Tracking API (also spoken by RudderStack SDKs): calls and batches to touches (pure).

One Segment message becomes one touch. Its event id is the `messageId` when the SDK sent one (every
Segment and RudderStack SDK does, and keeps it across retries), else a hash of the message.
"""

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import orjson
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.ingest.machine import HUMAN, Verdict, judge_click, judge_open
from shared.events import (
    AdClicked,
    Campaign,
    CustomTracked,
    EmailClicked,
    EmailForwarded,
    EmailOpened,
    FormFilled,
    Identified,
    Identity,
    TouchData,
    Unsubscribed,
    WebVisited,
    content_id,
)
from shared.web import Invalid, InvalidBody, PayloadTooLarge, validation_errors

MAX_CALL_BYTES = 32 * 1024  # Segment's documented limit per call, and per message inside a batch
MAX_BATCH_BYTES = 500 * 1024  # Segment's documented limit per batch request
CallType = Literal["identify", "track", "page", "screen", "group", "alias"]
Locate = Callable[[str | None], str | None]
# Volatile parts of a message that a retry may change; left out of the content-derived id.
_VOLATILE = frozenset({"sentAt", "writeKey", "_metadata"})


class _Lenient(BaseModel):
    # SDKs add fields freely and some send numeric ids; keep what we do not map, coerce numbers to text.
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True, frozen=True)


class SegmentPage(_Lenient):
    url: str | None = None
    referrer: str | None = None
    title: str | None = None


class SegmentCampaign(_Lenient):
    """UTM parameters as analytics.js reports them: `utm_campaign` is `name`, the others drop `utm_`."""

    name: str | None = None
    source: str | None = None
    medium: str | None = None
    term: str | None = None
    content: str | None = None
    id: str | None = None


class SegmentContext(_Lenient):
    ip: str | None = Field(None, description="Used to derive the country at ingest; never published.")
    userAgent: str | None = Field(None, validation_alias=AliasChoices("userAgent", "user_agent"))
    traits: dict[str, Any] | None = None
    page: SegmentPage | None = None
    campaign: SegmentCampaign | None = None


class SegmentMessage(_Lenient):
    """One identify, track, page, screen, group or alias call. Needs `userId` or `anonymousId`."""

    type: CallType | None = Field(None, description="Required inside a batch; the path decides otherwise.")
    messageId: str | None = Field(None, max_length=200, description="Becomes the event id; keep it on retries.")
    userId: str | None = Field(None, max_length=200)
    anonymousId: str | None = Field(None, max_length=200)
    previousId: str | None = Field(None, max_length=200, description="alias: the id being linked to userId.")
    groupId: str | None = Field(None, max_length=200, description="group: the account or company id.")
    event: str | None = Field(None, max_length=200, description="track: the action, e.g. `Email Opened`.")
    name: str | None = Field(None, description="page/screen: the page or screen name.")
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    context: SegmentContext = Field(default_factory=SegmentContext)
    traits: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None
    writeKey: str | None = Field(None, description="analytics.js sends the write key here instead of Basic auth.")

    @field_validator("messageId", "userId", "anonymousId", "previousId", "groupId", "event", mode="after")
    @classmethod
    def _blank_is_absent(cls, value: str | None) -> str | None:
        return (value.strip() or None) if value is not None else None


class SegmentBatch(_Lenient):
    batch: list[SegmentMessage] = Field(description="Each message carries its `type`.")
    sentAt: datetime | None = None
    context: SegmentContext | None = Field(None, description="Merged into every message's context.")
    writeKey: str | None = None


def decode(body: bytes) -> dict[str, Any]:
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"body is not JSON: {exc}", field="body", rule="json") from None
    if not isinstance(raw, dict):
        raise Invalid("body must be a JSON object", field="body", rule="type")
    return raw


def write_key_in(raw: dict[str, Any]) -> str | None:
    key = raw.get("writeKey")
    return (key.strip() or None) if isinstance(key, str) else None


def corrected_time(timestamp: datetime | None, sent_at: datetime | None, received_at: datetime) -> datetime | None:
    """Segment's clock-skew correction: `receivedAt - (sentAt - timestamp)`, both read on the sender's clock."""
    if timestamp is None:
        return None
    timestamp = _aware(timestamp)
    try:
        return timestamp if sent_at is None else received_at - (_aware(sent_at) - timestamp)
    except OverflowError:  # absurd clocks (year 1 vs 9999): keep what the sender said
        return timestamp


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Receipt:
    """What the edge knows about a request: whose it is, when it arrived, from which address."""

    source_id: str
    received_at: datetime
    client_ip: str | None
    locate: Locate


def parse_call(raw: dict[str, Any], call_type: CallType, receipt: Receipt) -> list[tuple[str, TouchData]]:
    """One call posted to /v1/<type>; the path decides the type, whatever the body says."""
    return _parse([("", {**raw, "type": call_type})], receipt)


def parse_batch(raw: dict[str, Any], receipt: Receipt) -> list[tuple[str, TouchData]]:
    """All messages of a batch, or an error naming `batch[i].<field>` of each bad one: nothing is partial."""
    items = raw.get("batch")
    if not isinstance(items, list) or not items:
        raise Invalid("batch must be a non-empty array of messages", field="batch", rule="min-items")
    prepared = [(f"batch[{i}]", _with_batch_defaults(item, raw)) for i, item in enumerate(items)]
    for prefix, item in prepared:
        if len(orjson.dumps(item)) > MAX_CALL_BYTES:
            raise PayloadTooLarge(f"{prefix} exceeds {MAX_CALL_BYTES} bytes", field=prefix, rule="max-size")
    return _parse(prepared, receipt)


def _with_batch_defaults(item: Any, raw: dict[str, Any]) -> Any:
    """A batch's `sentAt` and `context` apply to each message that does not set its own."""
    if not isinstance(item, dict):
        return item
    shared, own = raw.get("context"), item.get("context")
    if isinstance(shared, dict) and isinstance(own, dict | None):
        item = {**item, "context": {**shared, **(own or {})}}
    if "sentAt" not in item and raw.get("sentAt") is not None:
        item = {**item, "sentAt": raw["sentAt"]}
    return item


def _parse(items: list[tuple[str, Any]], receipt: Receipt) -> list[tuple[str, TouchData]]:
    touches: list[tuple[str, TouchData]] = []
    errors: list[dict[str, Any]] = []
    for prefix, item in items:
        message, problems = _validated(item, prefix)
        if message is None or problems:
            errors += problems
            continue
        country = receipt.locate(_ip_for_country(message, receipt.client_ip))
        try:
            touch = to_touch(message, received_at=receipt.received_at, country=country)
        except ValidationError as exc:  # a value no touch can hold: name the message, and the touch field
            errors += [
                {**e, "field": prefix or "body", "message": f"{e['field']}: {e['message']}"}
                for e in validation_errors(exc.errors(include_url=False))
            ]
            continue
        touches.append((_event_id(item, message, receipt.source_id), touch))
    if errors:
        raise InvalidBody(errors)
    return touches


def _validated(item: Any, prefix: str) -> tuple[SegmentMessage | None, list[dict[str, Any]]]:
    dot = f"{prefix}." if prefix else ""
    if not isinstance(item, dict):
        return None, [{"field": prefix or "body", "rule": "dict_type", "message": "a message is a JSON object"}]
    try:
        message = SegmentMessage.model_validate(item)
    except ValidationError as exc:
        return None, validation_errors(exc.errors(include_url=False), prefix=dot)
    return message, [{"field": dot + f, "rule": "missing", "message": text} for f, text in _missing(message)]


def _missing(message: SegmentMessage) -> list[tuple[str, str]]:
    """Segment's own requirements: an id for the person, and what each call type cannot do without."""
    needs = {
        "type": message.type is None,
        "userId": not (message.userId or message.anonymousId),
        "event": message.type == "track" and not message.event,
        "previousId": message.type == "alias" and not message.previousId,
        "groupId": message.type == "group" and not message.groupId,
    }
    texts = {"userId": "userId or anonymousId is required", "type": "Field required"}
    return [(f, texts.get(f, f"a {message.type} call needs {f}")) for f, missing in needs.items() if missing]


def _event_id(item: dict[str, Any], message: SegmentMessage, source_id: str) -> str:
    if message.messageId:
        return message.messageId
    return content_id("segment", source_id, {k: v for k, v in item.items() if k not in _VOLATILE})


def _ip_for_country(message: SegmentMessage, client_ip: str | None) -> str | None:
    """`context.ip` when sent; else the request's own address, but only for calls made from a person's
    device (they carry a user agent): a server library's request comes from a data centre."""
    if message.context.ip:
        return message.context.ip
    return client_ip if message.context.userAgent else None


def to_touch(message: SegmentMessage, *, received_at: datetime, country: str | None) -> TouchData:
    """identify/alias/group -> Identified, page/screen -> WebVisited, track -> by event name (see _TRACKED)."""
    common = _common(message, received_at, country)
    if message.type == "track":
        return _tracked(message, common)
    if message.type in ("page", "screen"):
        title = _text(_page_of(message).title or message.name, 1000)
        return WebVisited(**common, channel="web" if message.type == "page" else "app", title=title)
    traits = message.traits or {}
    if message.type == "group":
        company = {"id": message.groupId, **traits}  # Segment's own `company` trait shape
        return Identified(**{**common, "attributes": {**common["attributes"], "company": company}})
    attributes = {**common["attributes"], **traits}
    return Identified(**{**common, "attributes": attributes}, previous_id=message.previousId)


def _common(message: SegmentMessage, received_at: datetime, country: str | None) -> dict[str, Any]:
    page = _page_of(message)
    return {
        "identity": _identity(message),
        "occurred_at": corrected_time(message.timestamp or message.originalTimestamp, message.sentAt, received_at),
        "campaign": _campaign(message, page.url),
        "url": page.url,
        "referrer": page.referrer,
        "user_agent": _text(message.context.userAgent, 1024),
        "country": country,
        "attributes": dict(message.context.traits or {}),
    }


def _page_of(message: SegmentMessage) -> SegmentPage:
    """The page of the call: a page call's own properties first (analytics.js sets both), then context.page."""
    seen = message.context.page or SegmentPage()
    own = (message.properties or {}) if message.type == "page" else {}
    return SegmentPage(
        url=_text(own.get("url") or seen.url, 4096),
        referrer=_text(own.get("referrer") or seen.referrer, 4096),
        title=_text(own.get("title") or seen.title, 1000),
    )


def _identity(message: SegmentMessage) -> Identity:
    ids = {"user_id": message.userId, "anonymous_id": message.anonymousId}
    with suppress(ValidationError):  # a malformed email stays in the attributes; the ids still say who it is
        return Identity(email=_email(message), **ids)
    return Identity(**ids)


def _email(message: SegmentMessage) -> str | None:
    # A group call's traits describe the company, so its email is not the person's.
    own = message.traits if message.type != "group" else None
    for bag in (own, message.context.traits, message.properties):
        value = (bag or {}).get("email")
        if isinstance(value, str) and value.strip():
            return value
    return None


def _campaign(message: SegmentMessage, url: str | None) -> Campaign | None:
    """context.campaign (analytics.js's UTM reading) wins field by field over UTM parameters in the page URL."""
    given = message.context.campaign or SegmentCampaign()
    in_url = _utm_in(url)
    named = {"source": given.source, "medium": given.medium, "campaign": given.name}
    named |= {"content": given.content, "term": given.term}
    values = {f"utm_{k}": _text(v or in_url.get(k), 200) for k, v in named.items()}
    campaign_id = (message.properties or {}).get("campaign_id") or given.id or in_url.get("id")
    values["campaign_id"] = _text(campaign_id, 200)
    return Campaign(**values) if any(values.values()) else None


def _utm_in(url: str | None) -> dict[str, str]:
    try:
        query = urlsplit(url or "").query
    except ValueError:
        return {}
    return {k[4:]: v for k, v in parse_qsl(query) if k.startswith("utm_") and v}


def _text(value: Any, limit: int) -> str | None:
    """Descriptive text is clipped to what the touch holds rather than refused: it is not worth a lost batch."""
    if value is None or value == "":
        return None
    return str(value)[:limit]


def _tracked(message: SegmentMessage, common: dict[str, Any]) -> TouchData:
    """Segment's Email spec and form events get their own touch types; any other event stays custom."""
    name = (message.event or "").strip().lower()
    properties = message.properties or {}
    build = _TRACKED.get(name)
    if build is not None:
        return build(properties, common)
    channel = "email" if name.startswith("email ") else None  # Email Delivered, Bounced, Marked as Spam
    return CustomTracked(**common, channel=channel, event=message.event or "", properties=properties)


def _opened(properties: dict[str, Any], common: dict[str, Any]) -> TouchData:
    return _email_touch(EmailOpened, properties, common, judge_open(common["user_agent"]))


def _clicked(properties: dict[str, Any], common: dict[str, Any]) -> TouchData:
    link_url = _text(properties.get("link_url"), 4096)
    return _email_touch(EmailClicked, properties, common, judge_click(common["user_agent"]), link_url=link_url)


def _forwarded(properties: dict[str, Any], common: dict[str, Any]) -> TouchData:
    return _email_touch(EmailForwarded, properties, common, HUMAN)


def _email_touch(
    kind: type[EmailOpened | EmailClicked | EmailForwarded],
    properties: dict[str, Any],
    common: dict[str, Any],
    verdict: Verdict,
    **extra: Any,
) -> TouchData:
    """Segment's Email spec names the message `email_id`; the opener's or clicker's agent says if it was a machine."""
    flags = {"machine_generated": verdict.machine, "machine_reason": verdict.reason}
    return kind(**common, **extra, **flags, channel="email", message_id=_text(properties.get("email_id"), 500))


def _unsubscribed(properties: dict[str, Any], common: dict[str, Any]) -> TouchData:
    list_id = _text(properties.get("list_id"), 200)
    return Unsubscribed(**common, channel="email", list_id=list_id, reason=_text(properties.get("reason"), 1000))


def _ad_clicked(properties: dict[str, Any], common: dict[str, Any]) -> TouchData:
    network = _text(properties.get("network"), 100)
    return AdClicked(**common, ad_id=_text(properties.get("ad_id"), 200), network=network)


_FORM_KEYS = frozenset({"form_id", "formId", "form_name", "formName"})


def _form_filled(properties: dict[str, Any], common: dict[str, Any]) -> TouchData:
    return FormFilled(
        **common,
        channel="web" if common["url"] else None,
        form_id=_text(properties.get("form_id") or properties.get("formId"), 200),
        form_name=_text(properties.get("form_name") or properties.get("formName"), 500),
        fields={k: v for k, v in properties.items() if k not in _FORM_KEYS},
    )


# Keys are lower-case event names. "Email Forwarded" and "Ad Clicked" are not in Segment's specs, but
# are the names tools use for the touches Leadflow has a type for.
_TRACKED: dict[str, Callable[[dict[str, Any], dict[str, Any]], TouchData]] = {
    "email opened": _opened,
    "email link clicked": _clicked,
    "email forwarded": _forwarded,
    "unsubscribed": _unsubscribed,
    "ad clicked": _ad_clicked,
    **dict.fromkeys(("form submitted", "form filled", "form completed", "form sent"), _form_filled),
}
