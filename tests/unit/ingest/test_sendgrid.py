import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from services.ingest.sources import sendgrid
from shared.events import EmailClicked, EmailOpened, Unsubscribed
from shared.web import Invalid, InvalidBody, Unauthorized

# The test vector of SendGrid's own SDK, verbatim: sendgrid/sendgrid-python test/unit/test_eventwebhook.py.
PUBLIC_KEY = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="  # noqa: E501
SIGNATURE = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
TIMESTAMP = "1600112502"
PAYLOAD = (
    json.dumps(
        [
            {
                "email": "hello@world.com",
                "event": "dropped",
                "reason": "Bounced Address",
                "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
                "sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
                "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
                "timestamp": 1600112492,
            }
        ],
        sort_keys=True,
        separators=(",", ":"),
    )
    + "\r\n"  # "Be sure to include the trailing carriage return and newline!"
).encode()
OTHER_KEY = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA=="  # noqa: E501
OTHER_SIGNATURE = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0="
SENT_AT = 1600112502.0

HUMAN_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 7_1_2 like Mac OS X) AppleWebKit/537.51.2 (KHTML, like Gecko) Mobile"


def event(kind: str, **fields: Any) -> dict[str, Any]:
    """An event shaped like the examples of SendGrid's Event Webhook reference."""
    return {
        "email": "alex@example.com",
        "timestamp": 1513299569,
        "event": kind,
        "category": "cat facts",
        "sg_event_id": f"{kind}-FOTFFO0ecsBE-zxFXfs6WA==",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        **fields,
    }


def parse(*events: dict[str, Any]) -> list[tuple[str, Any]]:
    return sendgrid.parse(json.dumps(list(events)).encode(), source_id="src_1")


def test_sendgrid_sdk_test_vector_verifies() -> None:
    assert sendgrid.signature_matches(PUBLIC_KEY, PAYLOAD, SIGNATURE, TIMESTAMP)
    sendgrid.verify(PUBLIC_KEY, PAYLOAD, SIGNATURE, TIMESTAMP, now=SENT_AT + 5, tolerance_s=300)


def test_sendgrid_sdk_test_vector_fails_with_another_key_payload_signature_or_timestamp() -> None:
    assert not sendgrid.signature_matches(OTHER_KEY, PAYLOAD, SIGNATURE, TIMESTAMP)
    assert not sendgrid.signature_matches(PUBLIC_KEY, b"payload", SIGNATURE, TIMESTAMP)
    assert not sendgrid.signature_matches(PUBLIC_KEY, PAYLOAD, OTHER_SIGNATURE, TIMESTAMP)
    assert not sendgrid.signature_matches(PUBLIC_KEY, PAYLOAD, SIGNATURE, "timestamp")
    assert not sendgrid.signature_matches(PUBLIC_KEY, PAYLOAD, "not base64!", TIMESTAMP)


def test_the_verification_key_may_also_be_pasted_as_pem() -> None:
    der = base64.b64decode(PUBLIC_KEY)
    pem = serialization.load_der_public_key(der).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert sendgrid.signature_matches(pem.decode(), PAYLOAD, SIGNATURE, TIMESTAMP)
    assert not sendgrid.signature_matches("not a key", PAYLOAD, SIGNATURE, TIMESTAMP)


def test_a_genuine_but_old_post_is_refused_as_a_replay() -> None:
    with pytest.raises(Unauthorized) as refused:
        sendgrid.verify(PUBLIC_KEY, PAYLOAD, SIGNATURE, TIMESTAMP, now=SENT_AT + 301, tolerance_s=300)
    assert refused.value.errors[0]["field"] == sendgrid.TIMESTAMP_HEADER
    assert refused.value.errors[0]["rule"] == "replay-window"


def test_a_bad_or_missing_signature_is_refused_naming_the_header() -> None:
    cases = [(OTHER_SIGNATURE, TIMESTAMP), (None, TIMESTAMP), (SIGNATURE, None)]
    fields = []
    for signature, timestamp in cases:
        with pytest.raises(Unauthorized) as refused:
            sendgrid.verify(PUBLIC_KEY, PAYLOAD, signature, timestamp, now=SENT_AT, tolerance_s=300)
        fields.append(refused.value.errors[0]["field"])
    assert fields == [sendgrid.SIGNATURE_HEADER, sendgrid.SIGNATURE_HEADER, sendgrid.TIMESTAMP_HEADER]


def test_the_test_vector_batch_holds_no_touch() -> None:
    assert sendgrid.parse(PAYLOAD, source_id="src_1") == []


def test_open_becomes_email_opened_with_the_sendgrid_event_id() -> None:
    [(event_id, touch)] = parse(event("open", sg_machine_open=False, useragent=HUMAN_UA, ip="255.255.255.255"))
    assert event_id == "open-FOTFFO0ecsBE-zxFXfs6WA=="
    assert isinstance(touch, EmailOpened)
    assert touch.identity.email == "alex@example.com"
    assert touch.occurred_at == datetime(2017, 12, 15, 0, 59, 29, tzinfo=UTC)
    assert touch.message_id == "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"
    assert touch.campaign is not None
    assert touch.campaign.campaign_id == "cat facts"
    assert (touch.channel, touch.user_agent, touch.machine_generated) == ("email", HUMAN_UA, False)


def test_apple_privacy_open_flagged_by_sendgrid_is_machine_generated() -> None:
    [(_, touch)] = parse(event("open", sg_machine_open=True, useragent="Mozilla/5.0"))
    assert touch.machine_generated
    assert touch.machine_reason == "privacy_proxy (provider)"


def test_click_carries_the_link_and_its_utm_tags() -> None:
    url = "https://example.com/pricing?utm_source=newsletter&utm_medium=email&utm_content=hero"
    clicked = event("click", url=url, url_offset={"index": 0, "type": "html"}, useragent=HUMAN_UA, utm_campaign="q4")
    [(_, touch)] = parse(clicked)
    assert isinstance(touch, EmailClicked)
    assert (touch.url, touch.link_url, touch.machine_generated) == (url, url, False)
    assert touch.campaign is not None
    assert touch.campaign.model_dump(exclude_none=True) == {
        "campaign_id": "cat facts",
        "utm_source": "newsletter",
        "utm_medium": "email",
        "utm_campaign": "q4",
        "utm_content": "hero",
    }


def test_scanner_clicks_are_flagged_by_agent_by_speed_and_by_burst() -> None:
    [(_, by_agent)] = parse(event("click", url="https://x.io/a", useragent="Proofpoint URL Defense"))
    assert by_agent.machine_reason == "scanner_agent"
    fast = event("click", url="https://x.io/a", useragent=HUMAN_UA, send_at="1513299566")
    assert parse(fast)[0][1].machine_reason == "clicked_seconds_after_send"
    burst = [
        event("click", url=f"https://x.io/{i}", useragent=HUMAN_UA, sg_event_id=f"c{i}", timestamp=1513299569 + i)
        for i in range(3)
    ]
    assert [touch.machine_reason for _, touch in parse(*burst)] == ["many_links_at_once"] * 3
    assert not parse(burst[0])[0][1].machine_generated


def test_unsubscribes_and_spam_reports_become_unsubscribed() -> None:
    touches = [
        touch
        for _, touch in parse(
            event("unsubscribe"),
            event("group_unsubscribe", asm_group_id=10, useragent=HUMAN_UA, url="http://www.example.com/"),
            event("spamreport"),
        )
    ]
    assert all(isinstance(t, Unsubscribed) for t in touches)
    assert [(t.reason, t.list_id) for t in touches] == [
        ("unsubscribe", None),
        ("group_unsubscribe", "10"),
        ("spamreport", None),
    ]


def test_delivery_events_and_resubscribes_are_acknowledged_but_not_touches() -> None:
    kinds = ["processed", "delivered", "deferred", "bounce", "dropped", "group_resubscribe"]
    assert parse(*[event(kind) for kind in kinds]) == []
    assert parse({"event": "account_status_change", "sg_event_id": "x", "type": "compliance_suspend"}) == []


def test_single_send_names_the_campaign_and_its_test_sends_are_skipped() -> None:
    single_send = event(
        "open",
        category=[],
        mc_stats="singlesend",
        phase_id="send",
        send_at="1591726752372",
        singlesend_id="a890067f-1c2f-11ea-83c1-a2107c0f88d5",
        singlesend_name="Example Single Send",
        template_id="d-850bd1f51d8e4c758ecb75b67e83a367",
        timestamp=1591726752372,
    )
    [(_, touch)] = parse(single_send)
    assert touch.campaign.campaign_id == "a890067f-1c2f-11ea-83c1-a2107c0f88d5"
    assert touch.occurred_at == datetime(2020, 6, 9, 18, 19, 12, 372000, tzinfo=UTC)
    assert parse({**single_send, "phase_id": "test"}) == []


def test_a_custom_campaign_arg_wins_over_marketing_fields_and_category() -> None:
    [(_, touch)] = parse(event("open", campaign_id="spring-launch", marketing_campaign_id=12345))
    assert touch.campaign.campaign_id == "spring-launch"
    [(_, legacy)] = parse(event("open", marketing_campaign_id=12345, category=["newsletter", "b2b"]))
    assert legacy.campaign.campaign_id == "12345"


def test_an_event_without_sendgrid_id_gets_the_same_derived_id_each_time() -> None:
    bare = event("open")
    del bare["sg_event_id"]
    [(first, _)] = parse(bare)
    [(second, _)] = parse(bare)
    assert first == second
    assert sendgrid.parse(json.dumps([bare]).encode(), source_id="src_2")[0][0] != first


def test_the_ip_gives_the_country_and_is_not_kept() -> None:
    [(_, touch)] = sendgrid.parse(
        json.dumps([event("open", ip="81.2.69.160")]).encode(),
        source_id="src_1",
        country_of=lambda ip: "GB" if ip == "81.2.69.160" else None,
    )
    assert touch.country == "GB"
    assert "81.2.69.160" not in touch.model_dump_json()


def test_a_batch_with_a_bad_address_names_the_event_and_field() -> None:
    with pytest.raises(InvalidBody) as invalid:
        parse(event("open"), event("click", email="not-an-address"))
    assert invalid.value.errors[0]["field"] == "[1].identity.email"


def test_a_body_that_is_not_a_json_array_of_objects_is_invalid() -> None:
    for body, field in [(b"{", "body"), (b'{"event": "open"}', "body"), (b'[{"event": "open"}, 3]', "[1]")]:
        with pytest.raises(Invalid) as invalid:
            sendgrid.parse(body, source_id="src_1")
        assert invalid.value.errors[0]["field"] == field
