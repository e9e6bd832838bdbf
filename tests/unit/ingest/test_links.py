import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from services.ingest import links
from services.ingest.links import BadToken, LinkClaims

KEY = links.links_key("unit-test-secret-key")
HUMAN_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0"
SENT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def make_claims(kind: links.LinkKind = "click", url: str | None = "https://acme.io/pricing") -> LinkClaims:
    return LinkClaims(kind, "src_1", "spring", "ada@example.com", "msg-1", int(SENT.timestamp()), url)


def test_a_signed_click_token_gives_back_its_claims() -> None:
    claims = make_claims()
    assert links.verify(links.sign(claims, KEY), KEY, "click") == claims


def test_an_open_token_carries_no_target() -> None:
    token = links.sign(make_claims("open", url=None), KEY)
    assert links.verify(token, KEY, "open").url is None


def test_a_token_with_a_changed_payload_is_rejected() -> None:
    token = links.sign(make_claims(), KEY)
    evil = links.sign(make_claims(url="https://evil.example/"), KEY)
    forged = evil.split(".")[0] + "." + token.split(".")[1]
    flipped = ("B" if token[5] == "A" else "A").join((token[:5], token[6:]))
    for bad in (forged, flipped):
        with pytest.raises(BadToken):
            links.verify(bad, KEY, "click")


@pytest.mark.parametrize("bad", ["", ".", "abc", "abc.def", "é.é", "x" * 500])
def test_garbage_is_not_a_token(bad: str) -> None:
    with pytest.raises(BadToken):
        links.verify(bad, KEY, "click")


def test_a_token_signed_with_another_secret_is_rejected() -> None:
    token = links.sign(make_claims(), links.links_key("another-secret-key-000"))
    with pytest.raises(BadToken):
        links.verify(token, KEY, "click")


def test_an_open_token_cannot_be_used_as_a_click() -> None:
    with pytest.raises(BadToken):
        links.verify(links.sign(make_claims("open", url=None), KEY), KEY, "click")


def test_minted_links_point_at_this_ingest_one_per_target() -> None:
    minted = links.email_links(
        "https://ingest.acme.io/",
        KEY,
        source_id="src_1",
        campaign_id="spring",
        email="ada@example.com",
        message_id="msg-1",
        sent_at=int(SENT.timestamp()),
        urls=["https://acme.io/a", "https://acme.io/b"],
    )
    assert minted.open_url.startswith("https://ingest.acme.io/o/")
    assert minted.open_url.endswith(".gif")
    assert list(minted.click_urls) == ["https://acme.io/a", "https://acme.io/b"]
    token = minted.click_urls["https://acme.io/b"].removeprefix("https://ingest.acme.io/c/")
    assert links.verify(token, KEY, "click").url == "https://acme.io/b"


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://acme.io/x?y=1", True),
        ("http://acme.io", True),
        ("javascript:alert(1)", False),
        ("data:text/html,hi", False),
        ("//acme.io/x", False),
        ("/relative", False),
        ("https://acme.io/a b", False),
    ],
)
def test_only_absolute_web_urls_are_link_targets(url: str, ok: bool) -> None:
    assert links.is_web_url(url) is ok


def test_a_person_clicking_an_hour_after_sending_is_human() -> None:
    click = links.clicked(
        make_claims(),
        user_agent=HUMAN_UA,
        country="GB",
        anonymous_id=None,
        at=SENT + timedelta(hours=1),
        links_in_burst=1,
    )
    assert not click.machine_generated
    assert (click.identity.email, click.link_url, click.message_id) == (
        "ada@example.com",
        "https://acme.io/pricing",
        "msg-1",
    )
    assert (click.campaign and click.campaign.campaign_id, click.channel, click.country) == ("spring", "email", "GB")


@pytest.mark.parametrize(
    ("user_agent", "after", "burst", "reason"),
    [
        ("Mozilla/5.0 (compatible; Proofpoint URL Defense)", timedelta(hours=1), 1, "scanner_agent"),
        (HUMAN_UA, timedelta(seconds=3), 1, "clicked_seconds_after_send"),
        (HUMAN_UA, timedelta(hours=1), 3, "many_links_at_once"),
    ],
)
def test_machine_clicks_are_flagged_with_the_reason(user_agent: str, after: timedelta, burst: int, reason: str) -> None:
    click = links.clicked(
        make_claims(), user_agent=user_agent, country=None, anonymous_id=None, at=SENT + after, links_in_burst=burst
    )
    assert (click.machine_generated, click.machine_reason) == (True, reason)


def test_a_click_from_a_tracked_browser_carries_both_ids() -> None:
    click = links.clicked(
        make_claims(), user_agent=HUMAN_UA, country=None, anonymous_id="anon-1234", at=SENT, links_in_burst=1
    )
    assert (click.identity.email, click.identity.anonymous_id) == ("ada@example.com", "anon-1234")


def test_a_privacy_proxy_open_is_flagged_and_a_person_opening_is_not() -> None:
    claims = make_claims("open", url=None)
    assert links.opened(claims, user_agent="Mozilla/5.0", country=None).machine_reason == "privacy_proxy"
    assert not links.opened(claims, user_agent=HUMAN_UA, country="GB").machine_generated


def test_bursts_are_counted_per_recipient_of_a_message() -> None:
    other = LinkClaims("click", "src_1", "spring", "bob@example.com", "msg-1", 0, "https://acme.io/")
    assert links.burst_key(make_claims()) != links.burst_key(other)


def test_every_fetch_of_a_link_is_a_touch_of_its_own() -> None:
    first = links.link_event_id("tok", HUMAN_UA, SENT)
    assert first == links.link_event_id("tok", HUMAN_UA, SENT)
    assert first != links.link_event_id("tok", HUMAN_UA, SENT + timedelta(milliseconds=1))
    assert first != links.link_event_id("tok", "Mozilla/5.0", SENT)


def test_a_scan_is_an_anonymous_qr_touch_of_the_campaign() -> None:
    scan = links.scanned(
        "abc123",
        campaign_id="fair",
        target_url="https://acme.io/",
        anonymous_id="anon-1234",
        user_agent=HUMAN_UA,
        country="GB",
    )
    assert (scan.code, scan.target_url, scan.channel, scan.identity.anonymous_id) == (
        "abc123",
        "https://acme.io/",
        "qr",
        "anon-1234",
    )
    assert scan.campaign is not None
    assert scan.campaign.campaign_id == "fair"


def test_qr_codes_are_short_lowercase_and_recognised() -> None:
    code = links.new_qr_code()
    assert len(code) == links.QR_CODE_LENGTH
    assert links.is_qr_code(code)
    assert not links.is_qr_code("ABC")
    assert not links.is_qr_code("a/b")
    assert not links.is_qr_code("")


def test_printable_codes_are_a_png_and_an_svg() -> None:
    assert links.qr_png("https://ingest.acme.io/q/abc", scale=2).startswith(b"\x89PNG\r\n\x1a\n")
    assert ET.fromstring(links.qr_svg("https://ingest.acme.io/q/abc")).tag == "{http://www.w3.org/2000/svg}svg"
