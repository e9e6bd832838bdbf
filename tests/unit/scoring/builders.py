"""Tiny builders for scoring unit tests: a touch at a time, a model with only the rules a test needs."""

from datetime import UTC, datetime, timedelta
from typing import Any

from services.scoring.model import ScoringModel, validate_model
from services.scoring.rules import TimedTouch
from shared.events import TOUCH_ADAPTER

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning


def days(n: float) -> timedelta:
    return timedelta(days=n)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def make_touch(type: str = "web_visit", *, at: datetime = T0, **fields: Any) -> TimedTouch:
    """`make_touch("form_fill", form_id="demo")`; `campaign="spring"` is short for a campaign id."""
    if "campaign" in fields and isinstance(fields["campaign"], str):
        fields["campaign"] = {"campaign_id": fields["campaign"]}
    data = {"type": f"leadflow.touch.{type}.v1", "identity": {"email": "ada@acme.com"}, **fields}
    if type == "web_visit":
        data.setdefault("url", "https://acme.com/pricing")
    return at, TOUCH_ADAPTER.validate_python(data)


def rule(rule_id: str, touch: str, points: float, **extra: Any) -> dict[str, Any]:
    return {"id": rule_id, "touch": touch, "points": points, **extra}


def make_model(
    *,
    engagement: list[dict[str, Any]] | None = None,
    fit: list[dict[str, Any]] | None = None,
    half_life: timedelta = days(30),
    mql: dict[str, float] | None = None,
    recycle_below: float = 10,
    **rule_points: float,
) -> ScoringModel:
    """`make_model(form_fill=40)` is one rule `form_fill` giving 40 points for any touch of that type.

    Grades are A >= 60, B >= 40, C >= 20, else D; MQL thresholds default to A 20, B 40, C 60.
    """
    rules = [rule(touch, touch, points) for touch, points in rule_points.items()] + (engagement or [])
    return validate_model(
        {
            "half_life_days": half_life / days(1),
            "engagement": rules,
            "fit": fit or [],
            "grades": [{"grade": "A", "min_fit": 60}, {"grade": "B", "min_fit": 40}, {"grade": "C", "min_fit": 20}],
            "lowest_grade": "D",
            "qualification": {"min_engagement": mql or {"A": 20, "B": 40, "C": 60}, "recycle_below": recycle_below},
        }
    )
