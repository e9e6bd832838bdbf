"""Browser tracking, t.js and its GIF pixel fallback: what a browser sends, mapped to touches (pure).

t.js posts one JSON object per call to /v1/collect: `page` when a page loads, `leave` with the
visible time so far when the page is hidden, `identify` and `track` from its API. A page's load and
its time-on-page reports share `page_view_id`: consumers count the page view once and take the
largest `duration_s`. A visit is a run of activity with no gap over 30 minutes; t.js counts them,
so `visit_number` > 1 is a return visit.
"""

import re
import uuid
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from services.ingest.machine import judge_click
from shared.events import Campaign, CustomTracked, Identified, Identity, TouchData, WebVisited, content_id
from shared.web import Invalid, InvalidBody, validation_errors

ANONYMOUS_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term", "utm_id")
MAX_DURATION_S = 86400.0
PIXEL_PARAMS = {
    "k": "writeKey",
    "a": "anonymousId",
    "u": "url",
    "t": "title",
    "r": "referrer",
    "v": "visit",
    "d": "durationS",
    "p": "pageViewId",
    "m": "messageId",
}
_NEEDS = {"leave": "duration_s", "identify": "email", "track": "event"}


def _clipped(limit: int) -> Callable[[Any], Any]:
    """Browsers send what the page has; an over-long title or URL is cut, not a reason to lose the visit."""

    def clip(value: Any) -> Any:
        if isinstance(value, str):
            return value[:limit] or None
        return value

    return clip


Url = Annotated[str | None, BeforeValidator(_clipped(4096))]
Title = Annotated[str | None, BeforeValidator(_clipped(1000))]


class Collected(BaseModel):
    """One call of t.js (camelCase keys). Unknown keys are ignored: a cached older t.js keeps working."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    write_key: str = Field(min_length=1, max_length=200)
    type: Literal["page", "leave", "identify", "track"] = "page"
    anonymous_id: str = Field(pattern=ANONYMOUS_ID.pattern)
    message_id: str | None = Field(None, max_length=64)
    page_view_id: str | None = Field(None, max_length=64)
    url: Url = None
    title: Title = None
    referrer: Url = None
    visit: int | None = Field(None, ge=1, le=1_000_000)
    duration_s: float | None = Field(None, ge=0)
    utm: dict[str, str] = Field(default_factory=dict)
    email: str | None = Field(None, max_length=320)
    traits: dict[str, Any] = Field(default_factory=dict)
    event: str | None = Field(None, min_length=1, max_length=200)
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("duration_s")
    @classmethod
    def _at_most_a_day(cls, value: float | None) -> float | None:
        return None if value is None else min(value, MAX_DURATION_S)  # a tab left open over a weekend

    @field_validator("email")
    @classmethod
    def _an_email(cls, value: str | None) -> str | None:
        try:
            return Identity(email=value).email if value else None
        except ValidationError:
            raise ValueError("not an email address") from None


def parse_collected(body: bytes) -> Collected:
    """Validate a /v1/collect body; 422 naming the field (in t.js's camelCase) otherwise."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"body is not JSON: {exc}", field="body", rule="json") from None
    if not isinstance(raw, dict):
        raise Invalid("body must be one JSON object", field="body", rule="object")
    return _validated(raw)


def collected_from_query(params: Mapping[str, str], *, anonymous_id: str, page_url: str | None) -> Collected:
    """The pixel's short query parameters (`k`, `a`, `u`, ...), with `utm_*` as they are."""
    raw: dict[str, Any] = {alias: params[key] for key, alias in PIXEL_PARAMS.items() if params.get(key)}
    raw["anonymousId"] = anonymous_id
    raw.setdefault("url", page_url)
    raw["utm"] = {k: v for k, v in params.items() if k in UTM_KEYS and v}
    raw["type"] = "leave" if "durationS" in raw else "page"
    return _validated(raw)


def _validated(raw: dict[str, Any]) -> Collected:
    try:
        collected = Collected.model_validate(raw)
    except ValidationError as exc:
        raise InvalidBody(validation_errors(exc.errors(include_url=False))) from None
    needed = _NEEDS.get(collected.type)
    if needed and getattr(collected, needed) is None:
        raise Invalid(f"{collected.type} calls need {to_camel(needed)}", field=to_camel(needed), rule="required")
    return collected


def anonymous_id_of(*candidates: str | None) -> str | None:
    """The first candidate that is a well-formed anonymous id (query parameter, then cookie)."""
    return next((c for c in candidates if c and ANONYMOUS_ID.match(c)), None)


def new_anonymous_id() -> str:
    return str(uuid.uuid4())


def campaign_of(utm: Mapping[str, str], url: str | None) -> Campaign | None:
    """UTM parameters t.js kept for the visit, else those in the page URL; `utm_id` is the campaign id."""
    found = {k: v for k, v in utm.items() if k in UTM_KEYS and v} or _utm_in(url)
    if not found:
        return None
    return Campaign(**{("campaign_id" if k == "utm_id" else k): v[:200] for k, v in found.items()})


def _utm_in(url: str | None) -> dict[str, str]:
    if not url:
        return {}
    return {k: v for k, v in parse_qsl(urlsplit(url).query) if k in UTM_KEYS and v}


def touch_of(collected: Collected, *, user_agent: str | None, country: str | None) -> TouchData:
    """page/leave -> WebVisited, identify -> Identified (email and anonymous id together), track -> CustomTracked."""
    try:
        return _touch(collected, user_agent, country)
    except ValidationError as exc:
        raise InvalidBody(validation_errors(exc.errors(include_url=False))) from None


def _touch(c: Collected, user_agent: str | None, country: str | None) -> TouchData:
    bot = judge_click(user_agent)  # headless browsers and crawlers run t.js too: flagged, never dropped
    common: dict[str, Any] = {
        "identity": Identity(anonymous_id=c.anonymous_id),
        "campaign": campaign_of(c.utm, c.url),
        "channel": "web",
        "url": c.url,
        "referrer": c.referrer,
        "user_agent": user_agent,
        "country": country,
        "machine_generated": bot.machine,
        "machine_reason": bot.reason,
    }
    if c.type == "identify":
        identity = Identity(email=c.email, anonymous_id=c.anonymous_id)
        return Identified(**{**common, "identity": identity}, attributes=c.traits)
    if c.type == "track":
        return CustomTracked(**common, event=c.event or "", properties=c.properties)
    return WebVisited(
        **common,
        title=c.title,
        duration_s=c.duration_s,
        return_visit=(c.visit or 1) > 1,
        visit_number=c.visit,
        page_view_id=c.page_view_id,
    )


def event_id_of(source_id: str, collected: Collected, *, nonce: str | None = None) -> str:
    """Derived from the content: t.js re-sends a failed call with the same messageId, so it keeps its id."""
    return content_id("web", source_id, collected.model_dump(exclude={"write_key"}), nonce)
