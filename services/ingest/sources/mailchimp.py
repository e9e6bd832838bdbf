"""Mailchimp audience webhooks: form-encoded posts authenticated by a secret in the URL (pure).

Mailchimp signs nothing; the webhook URL carries `?secret=...`, of which only the hash is stored.
When the webhook is created Mailchimp GETs the URL once and expects a 200.

Body: `type=subscribe&fired_at=2009-03-26 21:35:57&data[email]=...&data[merges][FNAME]=...`, PHP-style
bracket keys. Mapping: subscribe and profile -> Identified (merge fields as attributes), upemail ->
Identified with the old address as `previous_id`, unsubscribe -> Unsubscribed, cleaned (address removed
after hard bounces or an abuse report) -> Unsubscribed with reason `cleaned: ...`; campaign (a send's
status) is acknowledged and not published. Mailchimp has no event id: the id is derived from the form
fields, so a re-posted event gets the id it had the first time.
"""

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError

from services.ingest.auth import same_secret
from services.ingest.sources.fields import mapping, text
from shared.events import Identified, TouchData, Unsubscribed, content_id, normalise_email
from shared.web import Invalid, InvalidBody, Unauthorized, validation_errors

# Mailchimp's default merge tags under the names the rest of Leadflow uses; other tags are lower-cased.
MERGE_NAMES = {
    "FNAME": "first_name",
    "LNAME": "last_name",
    "PHONE": "phone",
    "COMPANY": "company",
    "ADDRESS": "address",
    "BIRTHDAY": "birthday",
}
_BRACKETS = re.compile(r"\[([^\[\]]*)\]")

CountryOf = Callable[[str | None], str | None]
Item = tuple[str, TouchData]


def _no_country(ip: str | None) -> str | None:
    return None


def check_secret(secret: str | None, url_secret_hash: str | None) -> None:
    if not secret:
        raise Unauthorized("the webhook URL needs ?secret=<url_secret>", field="secret", rule="url-secret")
    if not same_secret(secret, url_secret_hash):
        raise Unauthorized("the secret in the URL is not this source's", field="secret", rule="url-secret")


def form_fields(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=2000)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Invalid(f"body is not a UTF-8 form: {exc}", field="body", rule="form") from None


def nested(fields: list[tuple[str, str]]) -> dict[str, Any]:
    """`data[merges][FNAME]=Ada` -> {"data": {"merges": {"FNAME": "Ada"}}}; a later key wins."""
    out: dict[str, Any] = {}
    for key, value in fields:
        head, _, _ = key.partition("[")
        path = [head, *_BRACKETS.findall(key[len(head) :])]
        node = out
        for part in path[:-1]:
            child = node.get(part)
            node[part] = child = child if isinstance(child, dict) else {}
            node = child
        node[path[-1]] = value
    return out


def parse(body: bytes, *, source_id: str, country_of: CountryOf = _no_country) -> list[Item]:
    """(event id, touch) when the post is a touch, else nothing."""
    fields = form_fields(body)
    post = nested(fields)
    try:
        touch = to_touch(post, country_of=country_of)
    except ValidationError as exc:
        raise InvalidBody(validation_errors(exc.errors(include_url=False))) from None
    if touch is None:
        return []
    return [(content_id("mailchimp", source_id, sorted(fields)), touch)]


def to_touch(post: Mapping[str, Any], *, country_of: CountryOf = _no_country) -> TouchData | None:
    kind = post.get("type")
    data = mapping(post.get("data"))
    occurred_at = fired_at(post.get("fired_at"))
    if kind in ("subscribe", "profile"):
        return _identified(data, occurred_at, country_of)
    if kind == "upemail":
        return _email_changed(data, occurred_at)
    if kind in ("unsubscribe", "cleaned"):
        return _unsubscribed(str(kind), data, occurred_at)
    return None


def _identified(data: Mapping[str, Any], occurred_at: datetime | None, country_of: CountryOf) -> Identified:
    attributes = {"mailchimp_list_id": data.get("list_id"), **attributes_of(mapping(data.get("merges")))}
    return Identified(
        identity={"email": data.get("email"), "recipient_id": text(data.get("id"))},
        occurred_at=occurred_at,
        channel="email",
        country=country_of(text(data.get("ip_opt")) or text(data.get("ip_signup"))),
        attributes={key: value for key, value in attributes.items() if value not in (None, "")},
    )


def _email_changed(data: Mapping[str, Any], occurred_at: datetime | None) -> Identified:
    old = text(data.get("old_email"))
    return Identified(
        identity={"email": data.get("new_email"), "recipient_id": text(data.get("new_id"))},
        occurred_at=occurred_at,
        channel="email",
        previous_id=normalise_email(old) if old else None,  # the old address is the old lead's identity key
        attributes={"mailchimp_list_id": data["list_id"]} if data.get("list_id") else {},
    )


def _unsubscribed(kind: str, data: Mapping[str, Any], occurred_at: datetime | None) -> Unsubscribed:
    reason = text(data.get("reason"))
    if kind == "cleaned":
        reason = f"cleaned: {reason or 'unknown'}"  # hard bounces or an abuse report; the address is gone
    elif data.get("action") == "delete":
        reason = f"deleted: {reason or 'unknown'}"
    campaign_id = text(data.get("campaign_id"), 200)
    return Unsubscribed(
        identity={"email": data.get("email"), "recipient_id": text(data.get("id"))},
        occurred_at=occurred_at,
        channel="email",
        campaign={"campaign_id": campaign_id} if campaign_id else None,
        list_id=text(data.get("list_id"), 200),
        reason=reason or "unsubscribed",
    )


def attributes_of(merges: Mapping[str, Any]) -> dict[str, Any]:
    """Merge fields as contact attributes; EMAIL is the identity already."""
    return {MERGE_NAMES.get(tag, tag.lower()): value for tag, value in merges.items() if tag != "EMAIL"}


def fired_at(value: Any) -> datetime | None:
    """`2009-03-26 21:35:57`: Mailchimp sends no zone; we read it as UTC."""
    try:
        return datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
