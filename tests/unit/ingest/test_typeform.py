import copy
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from services.ingest.sources import typeform
from shared.events import Campaign, identity_key
from shared.web import Invalid, Unauthorized

SECRET = "whsec_typeform_example"

# Shaped like Typeform's "Example webhook payload" (developer.typeform.com/webhooks/example-payload).
EXAMPLE: dict[str, Any] = {
    "event_id": "LtWXD3crgy",
    "event_type": "form_response",
    "form_response": {
        "form_id": "lT4Z3j",
        "token": "a3a12ec67a1365927098a606107fac15",
        "submitted_at": "2018-01-18T18:17:02Z",
        "landed_at": "2018-01-18T18:07:02Z",
        "calculated": {"score": 9},
        "hidden": {"user_id": "abc123456"},
        "definition": {
            "id": "lT4Z3j",
            "title": "Webhooks example",
            "fields": [
                {"id": "SMEUb7VJz92Q", "title": "Your email address?", "type": "email", "ref": "readable_ref_email"},
                {"id": "JwWggjAKtOkA", "title": "What is your first name?", "type": "short_text"},
            ],
        },
        "answers": [
            {
                "type": "text",
                "text": "It's cold right now! I live in an older medium-sized city with a university.",
                "field": {"id": "DlXFaesGBpoF", "type": "long_text", "ref": "readable_ref_long_text"},
            },
            {
                "type": "email",
                "email": "laura@example.com",
                "field": {"id": "SMEUb7VJz92Q", "type": "email", "ref": "readable_ref_email"},
            },
            {"type": "text", "text": "Laura", "field": {"id": "JwWggjAKtOkA", "type": "short_text"}},
            {
                "type": "date",
                "date": "2005-10-15",
                "field": {"id": "KoJxDM3c6x8h", "type": "date", "ref": "readable_ref_date"},
            },
            {
                "type": "choices",
                "choices": {"labels": ["London", "Sydney"]},
                "field": {"id": "PNe8ZKBK8C2Q", "type": "picture_choice", "ref": "readable_ref_picture_choice"},
            },
            {
                "type": "choice",
                "choice": {"label": "Barcelona"},
                "field": {"id": "k6TP9oLGgHjl", "type": "multiple_choice", "ref": "readable_ref_multiple_choice"},
            },
            {
                "type": "boolean",
                "boolean": True,
                "field": {"id": "RUqkXSeXBXSd", "type": "yes_no", "ref": "ref_yes_no"},
            },
            {"type": "number", "number": 5, "field": {"id": "NRsxU591jIW9", "type": "opinion_scale", "ref": "ref_nps"}},
        ],
    },
}


def body_of(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload)


def with_response(**changes: Any) -> dict[str, Any]:
    payload = copy.deepcopy(EXAMPLE)
    payload["form_response"].update(changes)
    return payload


def test_signature_is_the_base64_hmac_sha256_of_the_raw_body_prefixed_with_sha256() -> None:
    # Reference value from: printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$SECRET" -binary | base64
    body = b'{"event_id":"LtWXD3crgy","event_type":"form_response"}'
    assert typeform.signature(SECRET, body) == "sha256=DS/FnYgqySRIyRtah2JYTrCvIBJBd6G02364pMJ5GC4="


def test_the_signature_typeform_sends_is_accepted() -> None:
    body = body_of(EXAMPLE)
    typeform.verify(body, typeform.signature(SECRET, body), SECRET)


def test_a_changed_body_fails_the_check_naming_the_signature_header() -> None:
    signed = typeform.signature(SECRET, body_of(EXAMPLE))
    with pytest.raises(Unauthorized) as refused:
        typeform.verify(body_of(with_response(form_id="other")), signed, SECRET)
    assert refused.value.errors[0]["field"] == "Typeform-Signature"


def test_a_signature_made_with_another_secret_is_refused() -> None:
    body = body_of(EXAMPLE)
    with pytest.raises(Unauthorized):
        typeform.verify(body, typeform.signature("someone-elses-secret", body), SECRET)


def test_a_request_without_signature_is_refused() -> None:
    with pytest.raises(Unauthorized) as refused:
        typeform.verify(body_of(EXAMPLE), None, SECRET)
    assert refused.value.errors[0]["rule"] == "signature"


def test_the_documented_example_becomes_one_form_fill_with_typeforms_event_id() -> None:
    [(event_id, fill)] = typeform.parse(body_of(EXAMPLE))
    assert event_id == "typeform:LtWXD3crgy"
    assert (fill.form_id, fill.form_name) == ("lT4Z3j", "Webhooks example")
    assert fill.occurred_at == datetime(2018, 1, 18, 18, 17, 2, tzinfo=UTC)
    assert identity_key(fill.identity) == "laura@example.com"
    assert fill.identity.user_id == "abc123456"
    assert fill.identity.recipient_id == "typeform:a3a12ec67a1365927098a606107fac15"


def test_answers_are_keyed_by_field_ref_else_by_question_title() -> None:
    [(_, fill)] = typeform.parse(body_of(EXAMPLE))
    assert fill.fields["readable_ref_email"] == "laura@example.com"
    assert fill.fields["What is your first name?"] == "Laura"
    assert fill.fields["readable_ref_date"] == "2005-10-15"
    assert fill.fields["readable_ref_picture_choice"] == ["London", "Sydney"]
    assert fill.fields["readable_ref_multiple_choice"] == "Barcelona"
    assert (fill.fields["ref_yes_no"], fill.fields["ref_nps"], fill.fields["score"]) == (True, 5, 9)


def test_hidden_fields_carry_campaign_anonymous_id_and_other_attributes() -> None:
    hidden = {"utm_source": "linkedin", "utm_medium": "paid_social", "utm_campaign": "q3-launch"}
    hidden |= {"anonymous_id": "c0ffee-42", "campaign_id": "cmp-7", "plan": "team"}
    [(_, fill)] = typeform.parse(body_of(with_response(hidden=hidden)))
    assert fill.campaign == Campaign(
        campaign_id="cmp-7", utm_source="linkedin", utm_medium="paid_social", utm_campaign="q3-launch"
    )
    assert fill.identity.anonymous_id == "c0ffee-42"
    assert fill.attributes == {"plan": "team"}


def test_a_hidden_email_identifies_a_form_without_an_email_question() -> None:
    answers = [a for a in EXAMPLE["form_response"]["answers"] if a["type"] != "email"]
    [(_, fill)] = typeform.parse(body_of(with_response(answers=answers, hidden={"email": " Laura@Example.com "})))
    assert fill.identity.email == "laura@example.com"


def test_a_response_with_no_email_or_anonymous_id_is_still_a_touch_of_its_respondent_token() -> None:
    answers = [{"type": "text", "text": "Hi", "field": {"id": "x1", "type": "short_text", "ref": "greeting"}}]
    [(_, fill)] = typeform.parse(body_of(with_response(answers=answers, hidden={})))
    assert identity_key(fill.identity) == "rcpt:typeform:a3a12ec67a1365927098a606107fac15"
    assert fill.campaign is None


def test_a_malformed_email_answer_does_not_become_the_identity() -> None:
    answers = [{"type": "email", "email": "not an email", "field": {"id": "e", "type": "email", "ref": "email"}}]
    [(_, fill)] = typeform.parse(body_of(with_response(answers=answers, hidden={})))
    assert fill.identity.email is None
    assert fill.fields["email"] == "not an email"


def test_a_partial_response_is_not_a_form_fill() -> None:
    assert typeform.parse(body_of({**EXAMPLE, "event_type": "form_response_partial"})) == []


def test_a_payload_without_form_response_is_invalid_naming_the_field() -> None:
    with pytest.raises(Invalid) as invalid:
        typeform.parse(b'{"event_id": "x", "event_type": "form_response"}')
    assert invalid.value.errors[0]["field"] == "form_response"
