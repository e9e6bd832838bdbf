"""Mailgun webhooks: one JSON event per post, signed with the domain's webhook signing key (pure).

Body: `{"signature": {"timestamp", "token", "signature"}, "event-data": {...}}`. The signature is the
hex HMAC-SHA256 of `timestamp + token` under the HTTP webhook signing key; subaccount events also carry
`parent-signature` under the primary account's key, and either one is accepted. The HMAC covers only
timestamp and token, not the event, so a captured post could be replayed with other event data: we
refuse timestamps outside the tolerance and tokens already used (see SeenTokens).

Mapping: opened -> EmailOpened, clicked -> EmailClicked, unsubscribed and complained -> Unsubscribed;
the rest (accepted, delivered, failed, ...) is acknowledged and not published. Mailgun's own bot
detection (`client-info.bot`: apple, gmail, generic) flags machine opens and clicks.
"""

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from services.ingest.machine import Verdict, judge_click, judge_open
from services.ingest.sources.fields import listed, mapping, text, unix_time
from shared.events import EmailClicked, EmailOpened, TouchData, Unsubscribed, content_id
from shared.web import InvalidBody, Unauthorized, parse_json, validation_errors

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")

CountryOf = Callable[[str | None], str | None]
Item = tuple[str, TouchData]


def _no_country(ip: str | None) -> str | None:
    return None


class Signature(BaseModel):
    model_config = ConfigDict(frozen=True, coerce_numbers_to_str=True, populate_by_name=True)

    timestamp: str = Field("", max_length=20)
    token: str = Field("", max_length=200)
    signature: str = Field("", max_length=200)
    parent_signature: str | None = Field(None, alias="parent-signature", max_length=200)


class Posted(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    signature: Signature = Signature()
    event_data: dict[str, Any] = Field(alias="event-data")


POSTED: TypeAdapter[Posted] = TypeAdapter(Posted)


def posted(body: bytes) -> Posted:
    return parse_json(POSTED, body)


@dataclass
class SeenTokens:
    """Tokens of accepted posts still inside the replay window, so a captured post cannot be replayed.

    Per process: a replay that reaches another replica inside the window gets through; it carries the
    same event id as the original, so consumers apply it once anyway. Bounded, oldest forgotten first.
    """

    max_tokens: int = 100_000
    _tokens: OrderedDict[str, float] = field(default_factory=OrderedDict)

    def seen(self, token: str) -> bool:
        return token in self._tokens

    def add(self, token: str, timestamp: float, *, now: float, tolerance_s: float) -> None:
        self._tokens[token] = timestamp
        self._tokens.move_to_end(token)
        while self._tokens and (len(self._tokens) > self.max_tokens or self._oldest() < now - tolerance_s):
            self._tokens.popitem(last=False)

    def _oldest(self) -> float:
        return next(iter(self._tokens.values()))


def signature_matches(signing_key: str, timestamp: str, token: str, signature: str) -> bool:
    expected = hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature.strip().lower())


def verify(signing_key: str, signed: Signature, *, now: float, tolerance_s: float, seen: SeenTokens) -> None:
    """Returns when Mailgun signed this post recently and its token is new; else Unauthorized naming the field."""
    if not (signed.timestamp and signed.token and signed.signature):
        raise Unauthorized(
            "the body needs signature.timestamp, signature.token and signature.signature",
            field="signature",
            rule="signature",
        )
    candidates = [s for s in (signed.signature, signed.parent_signature) if s]
    if not any(signature_matches(signing_key, signed.timestamp, signed.token, s) for s in candidates):
        raise Unauthorized(
            "signature.signature is not the HMAC of timestamp and token under the source's signing key",
            field="signature.signature",
            rule="signature",
        )
    if not signed.timestamp.isdigit() or abs(now - int(signed.timestamp)) > tolerance_s:
        raise Unauthorized(
            f"signature.timestamp is more than {tolerance_s:g} s away from now; a replayed post?",
            field="signature.timestamp",
            rule="replay-window",
        )
    if seen.seen(signed.token):
        raise Unauthorized("signature.token was already used; a replayed post?", field="signature.token", rule="replay")


def parse(event: Mapping[str, Any], *, source_id: str, country_of: CountryOf = _no_country) -> list[Item]:
    """(event id, touch) when the event is a touch, else nothing; the id is `event-data.id`, else derived."""
    try:
        touch = to_touch(event, country_of=country_of)
    except ValidationError as exc:
        raise InvalidBody(validation_errors(exc.errors(include_url=False), prefix="event-data.")) from None
    if touch is None:
        return []
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        event_id = content_id("mailgun", source_id, event)
    return [(event_id, touch)]


def to_touch(event: Mapping[str, Any], *, country_of: CountryOf = _no_country) -> TouchData | None:
    kind = event.get("event")
    common = _common(event, country_of)
    message_id = text(mapping(mapping(event.get("message")).get("headers")).get("message-id"), 500)
    if kind == "opened":
        return EmailOpened(**common, **_machine(event, kind), message_id=message_id)
    if kind == "clicked":
        url = text(event.get("url"), 4096)
        return EmailClicked(**common, **_machine(event, kind), message_id=message_id, url=url, link_url=url)
    if kind in ("unsubscribed", "complained"):
        mailing_list = mapping(event.get("mailing-list"))
        return Unsubscribed(**common, list_id=text(mailing_list.get("address"), 200), reason=str(kind))
    return None


def _common(event: Mapping[str, Any], country_of: CountryOf) -> dict[str, Any]:
    return {
        "identity": {"email": event.get("recipient")},
        "occurred_at": unix_time(event.get("timestamp")),
        "campaign": campaign_of(event),
        "channel": "email",
        "user_agent": text(mapping(event.get("client-info")).get("user-agent"), 1024),
        "country": _country(event, country_of),
    }


def _machine(event: Mapping[str, Any], kind: str) -> dict[str, Any]:
    client = mapping(event.get("client-info"))
    bot, user_agent = text(client.get("bot")), text(client.get("user-agent"))
    if bot:
        verdict = Verdict(True, f"bot:{bot} (provider)")
    else:
        verdict = judge_open(user_agent) if kind == "opened" else judge_click(user_agent)
    return {"machine_generated": verdict.machine, "machine_reason": verdict.reason}


def _country(event: Mapping[str, Any], country_of: CountryOf) -> str | None:
    """Mailgun's own IP geolocation when it has one, else ours from the IP (which is not kept)."""
    country = mapping(event.get("geolocation")).get("country")
    if isinstance(country, str) and len(country) == 2 and country.isalpha():
        return country.upper()
    return country_of(text(event.get("ip")))


def campaign_of(event: Mapping[str, Any]) -> dict[str, str] | None:
    """Campaign id and UTM tags from user variables (`v:` / X-Mailgun-Variables) and the clicked link."""
    variables = mapping(event.get("user-variables"))  # an empty list when there are none
    fields = {key: text(variables.get(key), 200) for key in UTM_KEYS}
    fields |= utm_of(text(event.get("url")))
    campaigns, tags = listed(event.get("campaigns")), listed(event.get("tags"))
    ids = [text(variables.get("campaign_id"), 200)]
    ids += [text(mapping(c).get("id"), 200) for c in campaigns[:1]] + [text(t, 200) for t in tags[:1]]
    fields["campaign_id"] = next((i for i in ids if i), None)
    present = {key: value for key, value in fields.items() if value}
    return present or None


def utm_of(url: str | None) -> dict[str, str]:
    if not url:
        return {}
    return {key: value[:200] for key, value in parse_qsl(urlsplit(url).query) if key in UTM_KEYS and value}
