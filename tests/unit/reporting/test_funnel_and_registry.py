"""Campaign resolution, cost proration, funnel entries and assignment lives as pure functions."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from services.reporting.campaigns import (
    Campaign,
    CampaignType,
    Cost,
    TouchCampaign,
    UtmMapping,
    cost_in,
    resolve_campaign,
    resolve_channel,
)
from services.reporting.facts import AssignmentFact, period_of
from services.reporting.funnel import days_in_stages, entries
from services.reporting.scorecards import assignments_of

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
REGISTRY = [
    Campaign("news", "Newsletter", "email", CampaignType.NURTURE, utm=(UtmMapping("nov", utm_source="newsletter"),)),
    Campaign("ads", "Ads", "paid_social", CampaignType.LEAD_GENERATION, utm=(UtmMapping("nov"),)),
]


def test_a_campaign_id_wins_then_the_first_utm_mapping_that_matches_case_insensitively() -> None:
    assert resolve_campaign(TouchCampaign("x", "newsletter", None, "nov"), REGISTRY) == "x"
    assert resolve_campaign(TouchCampaign(None, "NewsLetter", "email", "NOV"), REGISTRY) == "news"
    assert resolve_campaign(TouchCampaign(None, "linkedin", None, "nov"), REGISTRY) == "ads"
    assert resolve_campaign(TouchCampaign(None, None, None, "Spring"), REGISTRY) == "utm:spring"
    assert resolve_campaign(TouchCampaign(None, None, None, None), REGISTRY) == "(none)"


def test_the_channel_comes_from_the_touch_else_its_campaign_else_its_type() -> None:
    assert resolve_channel("sms", "web_visit", REGISTRY[0]) == "sms"
    assert resolve_channel(None, "web_visit", REGISTRY[0]) == "email"
    assert resolve_channel(None, "qr_scan", None) == "qr"


def test_a_cost_counts_for_the_days_of_its_period_inside_the_range() -> None:
    cost = Cost("ads", date(2026, 11, 1), date(2026, 11, 30), Decimal("300.00"), "EUR")

    assert cost_in(cost, None, None) == Decimal("300.00")
    assert cost_in(cost, date(2026, 11, 16), None) == Decimal("150.00")
    assert cost_in(cost, date(2026, 12, 1), None) == Decimal(0)


def test_a_skipped_stage_counts_as_entered_when_a_later_one_was() -> None:
    changes = [("lead", T0), ("sql", T0 + timedelta(days=3)), ("customer", T0 + timedelta(days=10))]

    entered = entries(changes)

    assert entered["mql"] == T0 + timedelta(days=3)
    assert set(entered) == {"subscriber", "lead", "mql", "sal", "sql", "opportunity", "customer"}
    assert days_in_stages(changes) == {"lead": 3.0, "sql": 7.0}


def test_a_reassignment_starts_a_new_life_and_the_rep_before_keeps_the_breach() -> None:
    def fact(kind: str, minutes: int, rep: str = "r1", detail: str | None = None) -> AssignmentFact:
        return AssignmentFact("L1", "a1", kind, T0 + timedelta(minutes=minutes), rep, "t1", detail)

    lives = assignments_of(
        [
            fact("assigned", 0),
            fact("sla_breached", 60, detail="accept"),
            fact("reassigned", 61, rep="r2"),
            fact("accepted", 70, rep="r2"),
            fact("disposition", 100, rep="r2", detail="contacted"),
        ]
    )

    assert [(a.rep_id, a.breaches, a.accepted_at is not None, a.first_contact_at is not None) for a in lives] == [
        ("r1", {"accept"}, False, False),
        ("r2", set(), True, True),
    ]


def test_periods_are_iso_named() -> None:
    assert [period_of(T0, p) for p in ("day", "week", "month", "quarter", "year", "all")] == [
        "2026-11-02",
        "2026-W45",
        "2026-11",
        "2026-Q4",
        "2026",
        "all",
    ]
