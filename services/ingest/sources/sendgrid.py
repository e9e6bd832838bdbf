"""SendGrid Event Webhook: signed JSON batches of delivery and engagement events (pure).

Signature: ECDSA (P-256, SHA-256) over `timestamp + raw body`; the base64 DER signature is in
X-Twilio-Email-Event-Webhook-Signature, the Unix timestamp in X-Twilio-Email-Event-Webhook-Timestamp.
It is checked against the source's "Verification Key" (base64 DER as SendGrid shows it, or PEM).
SendGrid documents no replay window; we refuse timestamps further than the tolerance from now.

Mapping: open -> EmailOpened, click -> EmailClicked, unsubscribe / group_unsubscribe / spamreport ->
Unsubscribed. Delivery events (processed, delivered, deferred, bounce, dropped), group_resubscribe,
account events and Marketing Campaigns *test* sends are acknowledged but not published: no prospect
did anything.
"""

import base64
import binascii
import functools
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from services.ingest.machine import BURST_SECONDS, Verdict, judge_click, judge_open
from services.ingest.sources.fields import mapping, text, unix_time
from shared.events import EmailClicked, EmailOpened, TouchData, Unsubscribed, content_id
from shared.web import Invalid, InvalidBody, Unauthorized, validation_errors

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
UNSUBSCRIBES = frozenset({"unsubscribe", "group_unsubscribe", "spamreport"})
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
# Which field names the campaign, most specific first: the sender's own custom arg, then Marketing
# Campaigns (Single Send, legacy campaign, automation); a category is the last resort.
CAMPAIGN_KEYS = ("campaign_id", "singlesend_id", "marketing_campaign_id", "mc_auto_id")

CountryOf = Callable[[str | None], str | None]
Item = tuple[str, TouchData]


def _no_country(ip: str | None) -> str | None:
    return None


@functools.lru_cache(maxsize=256)
def load_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The Verification Key as SendGrid shows it (base64 DER SubjectPublicKeyInfo), or PEM."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not a public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an elliptic-curve public key")
    return key


def signature_matches(public_key: str, body: bytes, signature: str, timestamp: str) -> bool:
    """SendGrid's own check (sendgrid-python `EventWebhook.verify_signature`) on bytes."""
    try:
        decoded = base64.b64decode(signature, validate=True)
        load_public_key(public_key).verify(decoded, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def verify(
    public_key: str, body: bytes, signature: str | None, timestamp: str | None, *, now: float, tolerance_s: float
) -> None:
    """Returns when SendGrid signed exactly this body recently; else Unauthorized naming the header."""
    if not signature:
        raise Unauthorized(
            f"{SIGNATURE_HEADER} is missing; turn on Signed Event Webhook Requests in SendGrid",
            field=SIGNATURE_HEADER,
            rule="signature",
        )
    if not timestamp or not timestamp.strip().isdigit():
        raise Unauthorized(f"{TIMESTAMP_HEADER} must be Unix seconds", field=TIMESTAMP_HEADER, rule="timestamp")
    if not signature_matches(public_key, body, signature, timestamp):
        raise Unauthorized(
            "the signature does not match this body and timestamp for the source's verification key",
            field=SIGNATURE_HEADER,
            rule="signature",
        )
    if abs(now - int(timestamp)) > tolerance_s:
        raise Unauthorized(
            f"the timestamp is more than {tolerance_s:g} s away from now; a replayed request?",
            field=TIMESTAMP_HEADER,
            rule="replay-window",
        )


def parse(body: bytes, *, source_id: str, country_of: CountryOf = _no_country) -> list[Item]:
    """(event id, touch) for each event that is a touch; the id is `sg_event_id`, else derived."""
    batch = _events(body)
    bursts = links_in_bursts(batch)
    items: list[Item] = []
    errors: list[dict[str, Any]] = []
    for i, event in enumerate(batch):
        try:
            touch = to_touch(event, country_of=country_of, links_in_burst=bursts.get(i, 1))
        except ValidationError as exc:
            errors += validation_errors(exc.errors(include_url=False), prefix=f"[{i}].")
            continue
        if touch is not None:
            items.append((_event_id(event, source_id), touch))
    if errors:
        raise InvalidBody(errors)
    return items


def _events(body: bytes) -> list[dict[str, Any]]:
    try:
        batch = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"body is not JSON: {exc}", field="body", rule="json") from None
    if not isinstance(batch, list):
        raise Invalid("SendGrid posts a JSON array of events", field="body", rule="array")
    bad = [i for i, event in enumerate(batch) if not isinstance(event, dict)]
    if bad:
        raise Invalid("every event must be a JSON object", field=f"[{bad[0]}]", rule="object")
    return batch


def _event_id(event: Mapping[str, Any], source_id: str) -> str:
    sg_event_id = event.get("sg_event_id")
    if isinstance(sg_event_id, str) and sg_event_id:
        return sg_event_id
    return content_id("sendgrid", source_id, event)


def to_touch(
    event: Mapping[str, Any], *, country_of: CountryOf = _no_country, links_in_burst: int = 1
) -> TouchData | None:
    """The touch one SendGrid event stands for, or None when it is not a prospect's action."""
    kind = event.get("event")
    if event.get("phase_id") == "test":
        return None  # a Marketing Campaigns test send goes to the marketer, not to a prospect
    common = _common(event, country_of)
    message_id = text(event.get("sg_message_id"))
    if kind == "open":
        verdict = judge_open(common["user_agent"], provider_says_machine=event.get("sg_machine_open") is True)
        return EmailOpened(**common, **_machine(verdict), message_id=message_id)
    if kind == "click":
        verdict = judge_click(
            common["user_agent"], seconds_since_send=_seconds_since_send(event), links_in_burst=links_in_burst
        )
        url = text(event.get("url"), 4096)
        return EmailClicked(**common, **_machine(verdict), message_id=message_id, url=url, link_url=url)
    if kind in UNSUBSCRIBES:
        return Unsubscribed(**common, list_id=text(event.get("asm_group_id")), reason=str(kind))
    return None


def _common(event: Mapping[str, Any], country_of: CountryOf) -> dict[str, Any]:
    return {
        "identity": {"email": event.get("email")},
        "occurred_at": unix_time(event.get("timestamp")),
        "campaign": campaign_of(event),
        "channel": "email",
        "user_agent": text(event.get("useragent"), 1024),
        "country": country_of(text(event.get("ip"))),
    }


def _machine(verdict: Verdict) -> dict[str, Any]:
    return {"machine_generated": verdict.machine, "machine_reason": verdict.reason}


def campaign_of(event: Mapping[str, Any]) -> dict[str, str] | None:
    """Campaign id and UTM tags from custom args (top level or nested) and the clicked link's query."""
    args = {**mapping(event.get("unique_args")), **mapping(event.get("custom_args")), **event}
    fields = {key: text(args.get(key), 200) for key in UTM_KEYS}
    fields |= utm_of(text(event.get("url")))  # the link's own tags say which link it was
    ids = [text(args.get(key), 200) for key in CAMPAIGN_KEYS] + [_first_category(event.get("category"))]
    fields["campaign_id"] = next((i for i in ids if i), None)
    present = {key: value for key, value in fields.items() if value}
    return present or None


def utm_of(url: str | None) -> dict[str, str]:
    if not url:
        return {}
    query = parse_qsl(urlsplit(url).query)
    return {key: value[:200] for key, value in query if key in UTM_KEYS and value}


def links_in_bursts(batch: Sequence[Mapping[str, Any]]) -> dict[int, int]:
    """For each click: distinct links of the same message clicked within BURST_SECONDS of it, in this batch.

    A mail scanner follows every link of a message at once; SendGrid batches for up to 30 s, so such a
    burst usually arrives in one post.
    """
    clicks: defaultdict[str, list[tuple[int, float, str]]] = defaultdict(list)
    for i, event in enumerate(batch):
        at = unix_time(event.get("timestamp"))
        if event.get("event") == "click" and event.get("sg_message_id") and at is not None:
            clicks[str(event["sg_message_id"])].append((i, at.timestamp(), str(event.get("url"))))
    counts: dict[int, int] = {}
    for message_clicks in clicks.values():
        for i, when, _ in message_clicks:
            counts[i] = len({url for _, t, url in message_clicks if abs(t - when) <= BURST_SECONDS})
    return counts


def _seconds_since_send(event: Mapping[str, Any]) -> float | None:
    sent, at = unix_time(event.get("send_at")), unix_time(event.get("timestamp"))
    return (at - sent).total_seconds() if sent and at else None


def _first_category(category: Any) -> str | None:
    if isinstance(category, list):
        category = category[0] if category else None
    return text(category, 200)
