"""Leadflow's own links: signed email open/click links and QR codes (pure).

An email link token is `base64url(payload).base64url(mac)`, the MAC an HMAC-SHA256 (cut to 128 bits)
under a key derived from LEADFLOW_SECRET_KEY. The payload carries the source, campaign, recipient,
message, send time and, for a click, the target URL, so following a link reads no database and
Leadflow redirects only to URLs it signed: a changed token is not found, never an open redirect.
Tokens do not expire and cannot be revoked one by one; changing the secret key voids all of them.
"""

import base64
import binascii
import hashlib
import hmac
import io
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
import segno

from services.ingest.machine import judge_click, judge_open
from shared.events import Campaign, EmailClicked, EmailOpened, Identity, QrScanned, content_id

TOKEN_VERSION = 1
MAC_BYTES = 16
QR_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
QR_CODE_LENGTH = 10
LinkKind = Literal["open", "click"]
_KIND_CODES: dict[LinkKind, str] = {"open": "o", "click": "c"}


class BadToken(ValueError):
    """Not a token this Leadflow signed (tampered, truncated, another key, or the other kind of link)."""


@dataclass(frozen=True)
class LinkClaims:
    kind: LinkKind
    source_id: str
    campaign_id: str
    email: str
    message_id: str
    sent_at: int  # unix seconds: a click seconds after sending is a mail scanner
    url: str | None = None


def links_key(secret_key: str) -> bytes:
    """Separate from the key that seals provider secrets, though both come from LEADFLOW_SECRET_KEY."""
    return hashlib.sha256(b"leadflow-links:" + secret_key.encode()).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, body.encode(), hashlib.sha256).digest()[:MAC_BYTES])


def sign(claims: LinkClaims, key: bytes) -> str:
    c = claims
    fields = [TOKEN_VERSION, _KIND_CODES[c.kind], c.source_id, c.campaign_id, c.email, c.message_id, c.sent_at, c.url]
    body = _b64(orjson.dumps(fields))
    return f"{body}.{_mac(key, body)}"


def verify(token: str, key: bytes, kind: LinkKind) -> LinkClaims:
    body, _, mac = token.partition(".")
    if not body or not hmac.compare_digest(_mac(key, body).encode(), mac.encode()):
        raise BadToken("bad signature")
    try:
        fields = orjson.loads(_unb64(body))
    except (binascii.Error, ValueError):
        raise BadToken("bad payload") from None
    claims = _claims(fields)
    if claims.kind != kind:
        raise BadToken(f"an {claims.kind} token, not a {kind} token")
    return claims


def _claims(fields: Any) -> LinkClaims:
    match fields:
        case [1, "o" | "c" as code, str(source), str(campaign), str(email), str(message), int(sent), url]:
            if code == "c" and not isinstance(url, str):
                raise BadToken("a click token without its target")
            kind: LinkKind = "open" if code == "o" else "click"
            return LinkClaims(kind, source, campaign, email, message, sent, url if code == "c" else None)
    raise BadToken("unknown token layout")


def is_web_url(url: str) -> bool:
    """Only absolute http(s) targets: a javascript: or data: link is never signed."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not any(ch.isspace() for ch in url)


@dataclass(frozen=True)
class EmailLinks:
    open_url: str
    click_urls: dict[str, str]  # target URL -> click URL


def email_links(
    base_url: str,
    key: bytes,
    *,
    source_id: str,
    campaign_id: str,
    email: str,
    message_id: str,
    sent_at: int,
    urls: list[str],
) -> EmailLinks:
    """The open pixel URL and one click URL per target of one message to one recipient."""
    base = base_url.rstrip("/")
    opened = LinkClaims("open", source_id, campaign_id, email, message_id, sent_at)
    clicks = {
        url: sign(LinkClaims("click", source_id, campaign_id, email, message_id, sent_at, url), key) for url in urls
    }
    return EmailLinks(f"{base}/o/{sign(opened, key)}.gif", {url: f"{base}/c/{t}" for url, t in clicks.items()})


def opened(claims: LinkClaims, *, user_agent: str | None, country: str | None) -> EmailOpened:
    verdict = judge_open(user_agent)
    return EmailOpened(
        **_email_touch(claims, user_agent, country),
        identity=Identity(email=claims.email),
        machine_generated=verdict.machine,
        machine_reason=verdict.reason,
    )


def clicked(
    claims: LinkClaims,
    *,
    user_agent: str | None,
    country: str | None,
    anonymous_id: str | None,
    at: datetime,
    links_in_burst: int,
) -> EmailClicked:
    """With the browser's anonymous id when it has one: the click then links web history to the email."""
    verdict = judge_click(user_agent, seconds_since_send=at.timestamp() - claims.sent_at, links_in_burst=links_in_burst)
    return EmailClicked(
        **_email_touch(claims, user_agent, country),
        identity=Identity(email=claims.email, anonymous_id=anonymous_id),
        url=claims.url,
        link_url=claims.url,
        machine_generated=verdict.machine,
        machine_reason=verdict.reason,
    )


def _email_touch(claims: LinkClaims, user_agent: str | None, country: str | None) -> dict[str, Any]:
    return {
        "campaign": Campaign(campaign_id=claims.campaign_id),
        "channel": "email",
        "message_id": claims.message_id,
        "user_agent": user_agent,
        "country": country,
    }


def burst_key(claims: LinkClaims) -> str:
    """Bursts are per recipient: one message id may be a whole send."""
    return f"{claims.message_id}\n{claims.email}"


def link_event_id(token: str, user_agent: str | None, at: datetime) -> str:
    """Every fetch of a link is a touch of its own; a person's open and the proxy's prefetch differ."""
    return content_id("link", token, user_agent, at.isoformat())


def new_qr_code() -> str:
    return "".join(secrets.choice(QR_ALPHABET) for _ in range(QR_CODE_LENGTH))


def is_qr_code(code: str) -> bool:
    return 1 <= len(code) <= 32 and all(ch in QR_ALPHABET for ch in code)


def scanned(
    code: str,
    *,
    campaign_id: str,
    target_url: str,
    anonymous_id: str,
    user_agent: str | None,
    country: str | None,
) -> QrScanned:
    bot = judge_click(user_agent)  # link previewers fetch printed URLs too
    return QrScanned(
        identity=Identity(anonymous_id=anonymous_id),
        campaign=Campaign(campaign_id=campaign_id),
        channel="qr",
        code=code,
        target_url=target_url,
        user_agent=user_agent,
        country=country,
        machine_generated=bot.machine,
        machine_reason=bot.reason,
    )


def qr_png(url: str, *, scale: int = 10) -> bytes:
    out = io.BytesIO()
    segno.make(url, error="m", micro=False).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def qr_svg(url: str) -> bytes:
    out = io.BytesIO()
    segno.make(url, error="m", micro=False).save(out, kind="svg", scale=4, border=4)
    return out.getvalue()
