from services.ingest.machine import ClickBursts, judge_click, judge_open

HUMAN_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0"


def test_apple_privacy_proxy_open_is_flagged_not_dropped() -> None:
    assert judge_open("Mozilla/5.0").machine
    assert judge_open(HUMAN_UA, provider_says_machine=True).reason == "privacy_proxy (provider)"
    assert not judge_open(HUMAN_UA).machine


def test_security_scanner_clicks_are_flagged() -> None:
    assert judge_click("Mozilla/5.0 (compatible; Proofpoint URL Defense)").reason == "scanner_agent"
    assert judge_click("python-requests/2.31").machine
    assert not judge_click(HUMAN_UA, seconds_since_send=3600).machine


def test_a_click_seconds_after_sending_is_a_machine() -> None:
    assert judge_click(HUMAN_UA, seconds_since_send=2).reason == "clicked_seconds_after_send"


def test_many_links_of_one_message_at_once_is_a_machine() -> None:
    bursts = ClickBursts()
    counts = [bursts.record("m1", f"https://x.io/{i}", now=100.0 + i * 0.1) for i in range(3)]
    assert counts == [1, 2, 3]
    assert judge_click(HUMAN_UA, links_in_burst=counts[-1]).reason == "many_links_at_once"
    assert bursts.record("m1", "https://x.io/9", now=200.0) == 1
