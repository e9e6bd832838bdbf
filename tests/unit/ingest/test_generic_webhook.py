from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from services.ingest.sources import generic, native
from shared.events import DealWon, EmailOpened
from shared.web import Invalid, Unauthorized

SECRET = "whsec_generic_example"
NOW = datetime(2026, 1, 1, tzinfo=UTC)  # 1767225600
WINDOW = timedelta(minutes=5)
TOUCH = {"type": "leadflow.touch.email_open.v1", "identity": {"email": "ada@example.com"}}
DEAL = {"type": "leadflow.deal.closed_won.v1", "deal_id": "crm-42", "amount": "900.00", "currency": "EUR"}


def check(body: bytes, headers: dict[str, str], *, now: datetime = NOW) -> None:
    generic.verify(
        body,
        timestamp=headers.get(generic.TIMESTAMP_HEADER),
        received=headers.get(generic.SIGNATURE_HEADER),
        secret=SECRET,
        now=now,
        tolerance=WINDOW,
    )


def field_of(refused: pytest.ExceptionInfo[Unauthorized]) -> Any:
    return refused.value.errors[0]["field"]


def test_signature_is_the_hex_hmac_sha256_of_timestamp_dot_body() -> None:
    # Reference value from: printf '%s' "1767225600.$BODY" | openssl dgst -sha256 -hmac "$SECRET" -hex
    body = b'{"type":"leadflow.touch.email_open.v1","identity":{"email":"ada@example.com"}}'
    assert generic.signature(SECRET, "1767225600", body) == (
        "e96b75dfd49b385e0280d02fb10954f0752d1bd52ae6d116749cd601b03969f6"
    )
    assert generic.signed_headers(SECRET, body, NOW) == {
        "X-Leadflow-Timestamp": "1767225600",
        "X-Leadflow-Signature": "v1=e96b75dfd49b385e0280d02fb10954f0752d1bd52ae6d116749cd601b03969f6",
    }


def test_a_request_signed_a_few_minutes_ago_is_accepted() -> None:
    body = orjson.dumps(TOUCH)
    check(body, generic.signed_headers(SECRET, body, NOW - timedelta(minutes=4)))


def test_a_request_signed_outside_the_window_is_refused_naming_the_timestamp_header() -> None:
    body = orjson.dumps(TOUCH)
    for signed_at in (NOW - timedelta(minutes=6), NOW + timedelta(minutes=6)):
        with pytest.raises(Unauthorized) as refused:
            check(body, generic.signed_headers(SECRET, body, signed_at))
        assert field_of(refused) == "X-Leadflow-Timestamp"


def test_a_changed_body_or_another_secret_is_refused_naming_the_signature_header() -> None:
    body = orjson.dumps(TOUCH)
    with pytest.raises(Unauthorized) as refused:
        check(orjson.dumps(DEAL), generic.signed_headers(SECRET, body, NOW))
    assert field_of(refused) == "X-Leadflow-Signature"
    with pytest.raises(Unauthorized):
        check(body, generic.signed_headers("another-secret", body, NOW))


def test_the_timestamp_is_part_of_what_is_signed() -> None:
    body = orjson.dumps(TOUCH)
    headers = generic.signed_headers(SECRET, body, NOW)
    with pytest.raises(Unauthorized) as refused:
        check(body, {**headers, generic.TIMESTAMP_HEADER: "1767225601"})
    assert field_of(refused) == "X-Leadflow-Signature"


def test_missing_or_malformed_headers_are_refused() -> None:
    body = orjson.dumps(TOUCH)
    signature = generic.signed_headers(SECRET, body, NOW)[generic.SIGNATURE_HEADER]
    cases = [
        ({generic.SIGNATURE_HEADER: signature}, "X-Leadflow-Timestamp"),
        (
            {generic.TIMESTAMP_HEADER: "2026-01-01T00:00:00Z", generic.SIGNATURE_HEADER: signature},
            "X-Leadflow-Timestamp",
        ),
        ({generic.TIMESTAMP_HEADER: "1767225600"}, "X-Leadflow-Signature"),
        ({generic.TIMESTAMP_HEADER: "1767225600", generic.SIGNATURE_HEADER: "v0=abc"}, "X-Leadflow-Signature"),
    ]
    for headers, field in cases:
        with pytest.raises(Unauthorized) as refused:
            check(body, headers)
        assert field_of(refused) == field


def test_one_matching_value_among_several_is_enough_while_rotating_secrets() -> None:
    body = orjson.dumps(TOUCH)
    good = generic.signed_headers(SECRET, body, NOW)
    old = generic.signed_headers("old-secret", body, NOW)[generic.SIGNATURE_HEADER]
    check(body, {**good, generic.SIGNATURE_HEADER: f"{old}, {good[generic.SIGNATURE_HEADER]}"})


def test_touches_and_deals_are_parsed_by_their_type_in_one_batch() -> None:
    [(_, touch), (_, deal)] = generic.parse(orjson.dumps([TOUCH, DEAL]), source_id="src_1")
    assert isinstance(touch, EmailOpened)
    assert isinstance(deal, DealWon)


def test_event_ids_are_the_content_ids_the_native_api_derives() -> None:
    body = orjson.dumps(TOUCH)
    [(generic_id, _)] = generic.parse(body, source_id="src_1")
    [(native_id, _)] = native.parse_touches(body, source_id="src_1", idempotency_key=None)
    assert generic_id == native_id


def test_one_invalid_item_rejects_the_batch_naming_its_field() -> None:
    bad = {**DEAL, "currency": "euro"}
    with pytest.raises(Invalid) as invalid:
        generic.parse(orjson.dumps([TOUCH, bad]), source_id="src_1")
    assert any(e["field"].startswith("[1].") and "currency" in e["field"] for e in invalid.value.errors)
