"""Typeform webhooks: the `Typeform-Signature` check and a `form_response` as a form fill (pure).

Typeform signs the raw body: `Typeform-Signature: sha256=<base64 HMAC-SHA256(secret, body)>`. It sends
no timestamp, so there is no replay window; a replayed delivery carries the same `event_id`, hence the
same event id, and consumers apply it once (DESIGN §4.2).
"""

import base64
import hashlib
import hmac
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shared.events import Campaign, FormFilled, Identity
from shared.web import Unauthorized, parse_json

SIGNATURE_HEADER = "Typeform-Signature"
ANONYMOUS_ID_KEYS = ("anonymous_id", "anon_id", "ajs_anonymous_id")
CAMPAIGN_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
# Hidden fields that say who the respondent is or where they came from; every other one is an attribute.
_IDENTIFYING = frozenset({"email", "user_id", "campaign_id", "campaign", *ANONYMOUS_ID_KEYS, *CAMPAIGN_KEYS})


class _Lenient(BaseModel):
    # Typeform adds keys to its payload over time; keep only what is mapped.
    model_config = ConfigDict(extra="ignore", frozen=True)


class FormField(_Lenient):
    id: str | None = None
    ref: str | None = None
    type: str | None = None
    title: str | None = None


class Answer(BaseModel):
    """One answer: its value sits under the key named by `type` (`{"type": "email", "email": "..."}`)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str
    field: FormField = Field(default_factory=FormField)


class Definition(_Lenient):
    id: str | None = None
    title: str | None = None
    fields: list[FormField] = Field(default_factory=list)


class FormResponse(_Lenient):
    form_id: str = Field(min_length=1, max_length=200)
    token: str = Field(min_length=1, max_length=180)
    submitted_at: datetime | None = None
    landed_at: datetime | None = None
    hidden: dict[str, Any] = Field(default_factory=dict)
    calculated: dict[str, Any] = Field(default_factory=dict)
    definition: Definition = Field(default_factory=Definition)
    answers: list[Answer] = Field(default_factory=list)


class Webhook(_Lenient):
    event_id: str = Field(min_length=1, max_length=180)
    event_type: str
    form_response: FormResponse


WEBHOOK_ADAPTER: TypeAdapter[Webhook] = TypeAdapter(Webhook)


def signature(secret: str, body: bytes) -> str:
    """The `Typeform-Signature` value Typeform sends for this body."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()


def verify(body: bytes, received: str | None, secret: str) -> None:
    if not received:
        raise Unauthorized(f"the {SIGNATURE_HEADER} header is missing", field=SIGNATURE_HEADER, rule="signature")
    if not hmac.compare_digest(received.strip().encode(), signature(secret, body).encode()):
        raise Unauthorized(
            f"{SIGNATURE_HEADER} does not match the body signed with this source's secret",
            field=SIGNATURE_HEADER,
            rule="signature",
        )


def parse(body: bytes) -> list[tuple[str, FormFilled]]:
    """(event id, form fill); a partial response (`form_response_partial`) is not a fill and maps to nothing."""
    webhook = parse_json(WEBHOOK_ADAPTER, body)
    if webhook.event_type != "form_response":
        return []
    return [(f"typeform:{webhook.event_id}", form_fill(webhook.form_response))]


def form_fill(response: FormResponse) -> FormFilled:
    hidden = {key.lower(): value for key, value in response.hidden.items() if value not in (None, "")}
    return FormFilled(
        identity=identity_of(response, hidden),
        occurred_at=response.submitted_at,
        campaign=campaign_of(hidden),
        form_id=response.form_id,
        form_name=_clip(response.definition.title, 500),
        fields=fields_of(response),
        attributes={key: value for key, value in hidden.items() if key not in _IDENTIFYING},
    )


def identity_of(response: FormResponse, hidden: dict[str, Any]) -> Identity:
    """Email from an email answer or the `email` hidden field; the response token keeps an anonymous fill a touch."""
    emails = [_value(a) for a in response.answers if a.type == "email"] + [hidden.get("email")]
    anonymous_id = next((hidden[k] for k in ANONYMOUS_ID_KEYS if k in hidden), None)
    return Identity(
        email=next((e for e in emails if _is_email(e)), None),
        anonymous_id=_clip(anonymous_id, 200),
        user_id=_clip(hidden.get("user_id"), 200),
        recipient_id=f"typeform:{response.token}",
    )


def campaign_of(hidden: dict[str, Any]) -> Campaign | None:
    values = {key: _clip(hidden.get(key), 200) for key in CAMPAIGN_KEYS}
    values["campaign_id"] = _clip(hidden.get("campaign_id", hidden.get("campaign")), 200)
    present = {key: value for key, value in values.items() if value}
    return Campaign(**present) if present else None


def fields_of(response: FormResponse) -> dict[str, Any]:
    """Answers keyed by the question's ref (stable when a title is reworded), else its title, else its id."""
    titles = {f.id: f.title for f in response.definition.fields if f.id}
    fields: dict[str, Any] = {}
    for answer in response.answers:
        key = answer.field.ref or titles.get(answer.field.id or "") or answer.field.id or f"answer_{len(fields)}"
        fields[key] = _value(answer)
    if "score" in response.calculated:
        fields.setdefault("score", response.calculated["score"])
    return fields


def _value(answer: Answer) -> Any:
    raw = (answer.model_extra or {}).get(answer.type)
    if answer.type == "choice" and isinstance(raw, dict):
        return raw.get("label", raw.get("other"))
    if answer.type == "choices" and isinstance(raw, dict):
        return [*raw.get("labels", []), *([raw["other"]] if raw.get("other") else [])]
    return raw


def _is_email(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        Identity(email=value)
    except ValidationError:
        return False
    return True


def _clip(value: Any, limit: int) -> str | None:
    return None if value in (None, "") else str(value)[:limit]
