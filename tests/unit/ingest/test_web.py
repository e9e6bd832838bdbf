from importlib import resources
from typing import Any

import orjson
import pytest

from services.ingest.sources import web
from shared.events import CustomTracked, Identified, WebVisited
from shared.web import Problem

HUMAN_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0"
ANON = "0b6f6a8e-7c1d-4c55-9a55-3f2d1f0c9e11"


def make_call(**fields: Any) -> bytes:
    call = {"writeKey": "wk_x", "anonymousId": ANON, "url": "https://acme.io/pricing", "visit": 1, **fields}
    return orjson.dumps(call)


def touch(body: bytes, user_agent: str | None = HUMAN_UA) -> Any:
    return web.touch_of(web.parse_collected(body), user_agent=user_agent, country="GB")


def test_a_page_view_becomes_a_web_visit_of_the_anonymous_visitor() -> None:
    visit = touch(make_call(title="Pricing", referrer="https://google.com/", pageViewId="pv1"))
    assert isinstance(visit, WebVisited)
    assert visit.identity.anonymous_id == ANON
    assert (visit.url, visit.title, visit.referrer, visit.page_view_id) == (
        "https://acme.io/pricing",
        "Pricing",
        "https://google.com/",
        "pv1",
    )
    assert (visit.channel, visit.country, visit.user_agent, visit.duration_s) == ("web", "GB", HUMAN_UA, None)
    assert not visit.return_visit
    assert not visit.machine_generated


def test_a_second_visit_is_a_return_visit() -> None:
    visit = touch(make_call(visit=3))
    assert (visit.return_visit, visit.visit_number) == (True, 3)


def test_time_on_page_is_reported_with_the_page_view_it_belongs_to() -> None:
    left = touch(make_call(type="leave", durationS=42.5, pageViewId="pv1"))
    assert (left.duration_s, left.page_view_id) == (42.5, "pv1")


def test_a_tab_left_open_for_days_counts_one_day_on_the_page() -> None:
    assert touch(make_call(type="leave", durationS=500_000)).duration_s == 86400


def test_utm_parameters_kept_for_the_visit_make_the_campaign_and_utm_id_is_the_campaign_id() -> None:
    visit = touch(make_call(utm={"utm_source": "newsletter", "utm_medium": "email", "utm_id": "cmp-7", "other": "x"}))
    assert visit.campaign.model_dump(exclude_none=True) == {
        "campaign_id": "cmp-7",
        "utm_source": "newsletter",
        "utm_medium": "email",
    }


def test_utm_parameters_in_the_url_are_used_when_the_script_sent_none() -> None:
    visit = touch(make_call(url="https://acme.io/?utm_source=print&utm_campaign=fair"))
    assert (visit.campaign.utm_source, visit.campaign.utm_campaign) == ("print", "fair")
    assert touch(make_call()).campaign is None


def test_identify_links_the_anonymous_id_to_the_email_with_the_traits() -> None:
    identified = touch(make_call(type="identify", email=" Ada@Example.COM ", traits={"plan": "pro"}))
    assert isinstance(identified, Identified)
    assert (identified.identity.email, identified.identity.anonymous_id) == ("ada@example.com", ANON)
    assert identified.attributes == {"plan": "pro"}


def test_track_keeps_the_event_name_and_properties() -> None:
    tracked = touch(make_call(type="track", event="Demo Requested", properties={"size": "L"}))
    assert isinstance(tracked, CustomTracked)
    assert (tracked.event, tracked.properties) == ("Demo Requested", {"size": "L"})


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"type": "identify"}, "email"),
        ({"type": "identify", "email": "not-an-email"}, "email"),
        ({"type": "track"}, "event"),
        ({"type": "leave"}, "durationS"),
        ({"anonymousId": "short"}, "anonymousId"),
        ({"writeKey": ""}, "writeKey"),
        ({"type": "unknown"}, "type"),
    ],
)
def test_a_call_missing_what_its_type_needs_is_refused_naming_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(Problem) as refused:
        web.parse_collected(make_call(**fields))
    assert refused.value.status == 422
    assert refused.value.errors[0]["field"] == field


def test_a_body_that_is_not_one_json_object_is_refused() -> None:
    for body in (b"not json", b"[1, 2]"):
        with pytest.raises(Problem) as refused:
            web.parse_collected(body)
        assert refused.value.errors[0]["field"] == "body"


def test_over_long_page_fields_are_cut_and_unknown_keys_ignored() -> None:
    visit = touch(make_call(title="t" * 5000, referrer="", somethingNew=1))
    assert len(visit.title) == 1000
    assert visit.referrer is None


def test_a_headless_browser_running_the_script_is_flagged_not_dropped() -> None:
    visit = touch(make_call(), user_agent="Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0.0.0 Safari/537.36")
    assert visit.machine_generated


def test_the_same_call_sent_again_keeps_its_event_id() -> None:
    first = web.parse_collected(make_call(messageId="m1"))
    again = web.parse_collected(make_call(messageId="m1"))
    other = web.parse_collected(make_call(messageId="m2"))
    assert web.event_id_of("src_1", first) == web.event_id_of("src_1", again) != web.event_id_of("src_1", other)
    assert web.event_id_of("src_1", first) != web.event_id_of("src_1", first, nonce="2026-01-01T00:00:00")


def test_pixel_parameters_become_a_page_view_or_a_leave() -> None:
    params = {"k": "wk_x", "u": "https://acme.io/a?utm_source=qr", "t": "A", "v": "2", "p": "pv9"}
    page = web.collected_from_query(params, anonymous_id=ANON, page_url=None)
    assert (page.type, page.write_key, page.url, page.title, page.visit) == ("page", "wk_x", params["u"], "A", 2)
    left = web.collected_from_query({**params, "d": "12.5"}, anonymous_id=ANON, page_url=None)
    assert (left.type, left.duration_s) == ("leave", 12.5)
    from_referer = web.collected_from_query(
        {"k": "wk_x", "utm_source": "x"}, anonymous_id=ANON, page_url="https://a.io/"
    )
    assert (from_referer.url, from_referer.utm) == ("https://a.io/", {"utm_source": "x"})


def test_the_first_well_formed_anonymous_id_wins_else_a_fresh_one_is_needed() -> None:
    assert web.anonymous_id_of("bad id!", None, ANON) == ANON
    assert web.anonymous_id_of(None, "") is None
    assert web.anonymous_id_of(web.new_anonymous_id()) is not None


def test_the_tracking_script_stays_under_three_kilobytes_and_posts_to_collect() -> None:
    script = resources.files("services.ingest").joinpath("static/t.js").read_text()
    assert len(script.encode()) < 3 * 1024
    for needed in ("/v1/collect", "data-key", "sendBeacon", "visibilitychange", "pagehide", "identify", "track"):
        assert needed in script
