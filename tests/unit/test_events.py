from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from shared.events import (
    TOUCH_ADAPTER,
    EventDecodeError,
    Identity,
    content_id,
    event_for,
    from_record,
    identity_key,
    to_record,
)

T0 = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)


def test_identity_key_prefers_the_normalised_email() -> None:
    assert identity_key(Identity(email="  Ada@Example.COM ", anonymous_id="a1")) == "ada@example.com"
    assert identity_key(Identity(anonymous_id="a1", user_id="u1")) == "anon:a1"
    assert identity_key(Identity(user_id="u1")) == "user:u1"
    assert identity_key(Identity(recipient_id="r1")) == "rcpt:r1"


def test_an_identity_without_any_id_has_no_key() -> None:
    with pytest.raises(ValueError, match="no email"):
        identity_key(Identity())


def test_a_malformed_email_is_refused() -> None:
    with pytest.raises(ValidationError, match="not an email"):
        Identity(email="ada at example")


def test_content_id_is_stable_and_order_insensitive_for_mappings() -> None:
    assert content_id("x", {"a": 1, "b": 2}) == content_id("x", {"b": 2, "a": 1})
    assert content_id("x", {"a": 1}) != content_id("y", {"a": 1})


def test_binary_mode_record_round_trips_and_carries_the_envelope_in_headers() -> None:
    touch = TOUCH_ADAPTER.validate_python(
        {"type": "leadflow.touch.web_visit.v1", "identity": {"anonymous_id": "a-1"}, "url": "https://x.io/pricing"}
    )
    event = event_for(touch, id="e-1", source="/leadflow/ingest/web/s1", received_at=T0)
    key, value, headers = to_record(event)
    assert key == b"anon:a-1"
    assert dict(headers)["ce_type"] == b"leadflow.touch.web_visit.v1"
    assert dict(headers)["ce_time"] == b"2026-11-01T09:30:00+00:00"
    decoded = from_record(value, headers)
    assert decoded.data == event.data
    assert (decoded.id, decoded.subject, decoded.time) == ("e-1", "anon:a-1", T0)


def test_a_record_whose_header_type_disagrees_with_its_data_is_not_an_event() -> None:
    touch = TOUCH_ADAPTER.validate_python({"type": "leadflow.touch.email_open.v1", "identity": {"email": "a@b.io"}})
    _, value, headers = to_record(event_for(touch, id="e", source="s", received_at=T0))
    tampered = [(k, b"leadflow.touch.email_click.v1" if k == "ce_type" else v) for k, v in headers]
    with pytest.raises(EventDecodeError):
        from_record(value, tampered)
    with pytest.raises(EventDecodeError):
        from_record(b"not json", headers)
