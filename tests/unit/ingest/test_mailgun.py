import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from services.ingest.sources import mailgun
from services.ingest.sources.mailgun import SeenTokens, Signature
from shared.events import EmailClicked, EmailOpened, Unsubscribed
from shared.web import InvalidBody, Unauthorized

# The test vector of Mailgun's own SDK, verbatim: mailgun/mailgun-php tests/Api/WebhookTest.php.
SDK_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
SDK_TIMESTAMP = "1403645220"
SDK_TOKEN = "5egbgr1vjgqxtrnp65xfznchgdccwh5d6i09vijqi3whgowmn6"
SDK_OTHER_TOKEN = "owyldpe6nxhmrn78epljl6bj0orrki1u3d2v5e6cnlmmuox8jr"
SDK_SIGNATURE = "9cfc5c41582e51246e73c88d34db3af0a3a2692a76fbab81492842f000256d33"

KEY = "0123456789abcdef0123456789abcdef-1a2b3c4d-5e6f7a8b"
NOW = 1529006854.0
TOKEN = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
HUMAN_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0"


def signed(key: str = KEY, timestamp: str = "1529006854", token: str = TOKEN) -> Signature:
    digest = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return Signature(timestamp=timestamp, token=token, signature=digest)


def event_data(kind: str, **fields: Any) -> dict[str, Any]:
    """Shaped like the examples of Mailgun's webhook payload documentation."""
    return {
        "event": kind,
        "id": f"{kind}-DACSsAdVSeGpLid7TN03WA",
        "timestamp": 1529006854.329574,
        "recipient": "alice@example.com",
        "recipient-domain": "example.com",
        "tags": ["my_tag_1", "my_tag_2"],
        "campaigns": [],
        "user-variables": {"my_var_1": "Mailgun Variable #1", "my-var-2": "awesome"},
        "log-level": "info",
        "geolocation": {"country": "US", "region": "CA", "city": "San Francisco"},
        "ip": "50.56.129.169",
        "client-info": {
            "client-type": "browser",
            "client-os": "Linux",
            "device-type": "desktop",
            "client-name": "Chrome",
            "user-agent": HUMAN_UA,
        },
        "message": {"headers": {"message-id": "20130503182626.18666.16540@example.com"}},
        **fields,
    }


def verify(signature: Signature, *, now: float = NOW, seen: SeenTokens | None = None) -> None:
    mailgun.verify(KEY, signature, now=now, tolerance_s=300, seen=seen or SeenTokens())


def refused_field(signature: Signature, **kwargs: Any) -> str:
    with pytest.raises(Unauthorized) as refused:
        verify(signature, **kwargs)
    field: str = refused.value.errors[0]["field"]
    return field


def test_mailgun_sdk_test_vector_verifies_and_another_token_does_not() -> None:
    assert mailgun.signature_matches(SDK_KEY, SDK_TIMESTAMP, SDK_TOKEN, SDK_SIGNATURE)
    assert not mailgun.signature_matches(SDK_KEY, SDK_TIMESTAMP, SDK_OTHER_TOKEN, SDK_SIGNATURE)
    assert not mailgun.signature_matches(SDK_KEY, "0", "", "")


def test_a_fresh_post_signed_with_the_signing_key_is_accepted() -> None:
    verify(signed())


def test_a_wrong_key_a_stale_timestamp_and_a_reused_token_are_refused_each_naming_its_field() -> None:
    assert refused_field(signed(key="another-signing-key")) == "signature.signature"
    assert refused_field(signed(), now=NOW + 301) == "signature.timestamp"
    assert refused_field(signed(), now=NOW - 301) == "signature.timestamp"
    assert refused_field(Signature(timestamp="1529006854", token="t")) == "signature"
    seen = SeenTokens()
    seen.add(signed().token, NOW, now=NOW, tolerance_s=300)
    assert refused_field(signed(), seen=seen) == "signature.token"


def test_a_subaccount_post_verifies_with_the_parent_signature() -> None:
    child = signed(key="subaccount-key")
    parent = signed()
    verify(child.model_copy(update={"parent_signature": parent.signature}))


def test_seen_tokens_forget_what_is_outside_the_window_and_stay_bounded() -> None:
    seen = SeenTokens(max_tokens=2)
    seen.add("a", 1000, now=1000, tolerance_s=300)
    seen.add("b", 1001, now=1001, tolerance_s=300)
    seen.add("c", 1002, now=1002, tolerance_s=300)
    assert [seen.seen(t) for t in "abc"] == [False, True, True]
    seen.add("d", 1400, now=1400, tolerance_s=300)
    assert [seen.seen(t) for t in "bcd"] == [False, False, True]


def test_the_posted_body_is_read_with_mailgun_field_names() -> None:
    body = {"signature": {"timestamp": "1529006854", "token": "tok", "signature": "ab"}, "event-data": {"id": "x"}}
    posted = mailgun.posted(json.dumps(body).encode())
    assert (posted.signature.timestamp, posted.event_data) == ("1529006854", {"id": "x"})
    with pytest.raises(InvalidBody) as invalid:
        mailgun.posted(json.dumps({"signature": body["signature"]}).encode())
    assert invalid.value.errors[0]["field"] == "event-data"


def test_opened_becomes_email_opened_with_the_mailgun_event_id() -> None:
    [(event_id, touch)] = mailgun.parse(event_data("opened"), source_id="src_1")
    assert event_id == "opened-DACSsAdVSeGpLid7TN03WA"
    assert isinstance(touch, EmailOpened)
    assert touch.identity.email == "alice@example.com"
    assert touch.occurred_at == datetime.fromtimestamp(1529006854.329574, UTC)
    assert touch.message_id == "20130503182626.18666.16540@example.com"
    assert (touch.country, touch.user_agent, touch.machine_generated) == ("US", HUMAN_UA, False)
    assert touch.campaign is not None
    assert touch.campaign.campaign_id == "my_tag_1"


def test_mailgun_bot_detection_flags_opens_and_clicks() -> None:
    apple = {"client-name": "unknown", "user-agent": "Mozilla/5.0", "bot": "apple"}
    [(_, opened)] = mailgun.parse(event_data("opened", **{"client-info": apple}), source_id="src_1")
    assert (opened.machine_generated, opened.machine_reason) == (True, "bot:apple (provider)")
    scanner = {"user-agent": HUMAN_UA, "bot": "generic"}
    [(_, clicked)] = mailgun.parse(event_data("clicked", url="https://x.io", **{"client-info": scanner}), source_id="s")
    assert clicked.machine_reason == "bot:generic (provider)"
    no_bot = {"user-agent": "Mozilla/5.0 (compatible; Proofpoint URL Defense)", "bot": ""}
    [(_, agent)] = mailgun.parse(event_data("clicked", url="https://x.io", **{"client-info": no_bot}), source_id="s")
    assert agent.machine_reason == "scanner_agent"


def test_clicked_carries_the_link_the_user_variables_campaign_and_utm_tags() -> None:
    url = "https://example.com/pricing?utm_source=mailgun&utm_medium=email"
    variables = {"campaign_id": "spring-launch", "utm_campaign": "spring"}
    [(_, touch)] = mailgun.parse(event_data("clicked", url=url, **{"user-variables": variables}), source_id="s")
    assert isinstance(touch, EmailClicked)
    assert (touch.url, touch.link_url) == (url, url)
    assert touch.campaign is not None
    assert touch.campaign.model_dump(exclude_none=True) == {
        "campaign_id": "spring-launch",
        "utm_source": "mailgun",
        "utm_medium": "email",
        "utm_campaign": "spring",
    }


def test_unsubscribed_and_complained_become_unsubscribed() -> None:
    mailing_list = {"address": "news@lists.example.com", "list-id": "news", "sid": "1"}
    [(_, unsubscribed)] = mailgun.parse(event_data("unsubscribed", **{"mailing-list": mailing_list}), source_id="s")
    [(_, complained)] = mailgun.parse(event_data("complained", **{"user-variables": []}), source_id="s")
    assert isinstance(unsubscribed, Unsubscribed)
    assert isinstance(complained, Unsubscribed)
    assert (unsubscribed.reason, unsubscribed.list_id) == ("unsubscribed", "news@lists.example.com")
    assert (complained.reason, complained.list_id) == ("complained", None)


def test_delivery_events_are_acknowledged_but_not_touches() -> None:
    for kind in ("accepted", "delivered", "failed", "rejected", "stored"):
        assert mailgun.parse(event_data(kind), source_id="s") == []


def test_an_event_without_id_gets_the_same_derived_id_each_time() -> None:
    bare = event_data("opened")
    del bare["id"]
    assert mailgun.parse(bare, source_id="s")[0][0] == mailgun.parse(dict(bare), source_id="s")[0][0]


def test_the_country_falls_back_to_our_lookup_of_the_ip() -> None:
    unknown = event_data("opened", geolocation={"country": "Unknown"}, ip="81.2.69.160")
    [(_, touch)] = mailgun.parse(unknown, source_id="s", country_of=lambda ip: "GB" if ip else None)
    assert touch.country == "GB"


def test_a_bad_recipient_names_the_field() -> None:
    with pytest.raises(InvalidBody) as invalid:
        mailgun.parse(event_data("opened", recipient="nobody"), source_id="s")
    assert invalid.value.errors[0]["field"] == "event-data.identity.email"
