"""Pure scoring: engagement with decay and caps, fit and grade, qualification. The clock is an argument."""

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fnmatch import translate
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from services.scoring.model import (
    REGEX_PREFIX,
    Conditions,
    EngagementRule,
    FitRule,
    FreeMail,
    InList,
    InRange,
    PersonaIn,
    ScoringModel,
    WithinDistance,
    short_type,
)
from services.scoring.profile import is_free_mail
from shared.events import Touch, WebVisited

EARTH_RADIUS_MILES = 3958.8
TimedTouch = tuple[datetime, Touch]


@dataclass(frozen=True, slots=True)
class Contribution:
    rule_id: str
    fired_at: datetime
    points: float
    points_now: float
    touch: Touch


@dataclass(frozen=True, slots=True)
class Engagement:
    total: float
    breakdown: tuple[Contribution, ...]


@dataclass(frozen=True, slots=True)
class FitMatch:
    rule_id: str
    points: float
    value: Any


@dataclass(frozen=True, slots=True)
class Fit:
    total: float
    grade: str
    breakdown: tuple[FitMatch, ...]


# --- engagement -------------------------------------------------------------------------------


def decayed(points: float, age: timedelta, half_life: timedelta) -> float:
    """Exponential decay: half the points are left after one half-life, a quarter after two."""
    return points * math.pow(0.5, age / half_life)


def engagement(touches: Sequence[TimedTouch], model: ScoringModel, now: datetime) -> Engagement:
    """Every rule a touch matches fires, in time order; touches after `now` do not exist yet.

    A rule with a `daily_cap` fires at most that many times per UTC calendar day (the earliest touches
    of the day count), whatever the sign of its points. Each firing decays from its touch's time to `now`.
    """
    fired: Counter[tuple[str, date]] = Counter()
    breakdown: list[Contribution] = []
    for at, touch in _one_per_page_view(sorted((t for t in touches if t[0] <= now), key=lambda t: t[0])):
        day = at.astimezone(UTC).date()
        for rule in model.engagement:
            if not _fires(rule, touch) or (rule.daily_cap is not None and fired[rule.id, day] >= rule.daily_cap):
                continue
            fired[rule.id, day] += 1
            half_life = timedelta(days=rule.half_life_days or model.half_life_days)
            breakdown.append(Contribution(rule.id, at, rule.points, decayed(rule.points, now - at, half_life), touch))
    return Engagement(total=math.fsum(c.points_now for c in breakdown), breakdown=tuple(breakdown))


def _one_per_page_view(touches: Iterable[TimedTouch]) -> list[TimedTouch]:
    """A page's load and its time-on-page reports share a page_view_id: keep the first, with the longest duration."""
    out: list[TimedTouch] = []
    position: dict[str, int] = {}
    for at, touch in touches:
        if not isinstance(touch, WebVisited) or touch.page_view_id is None:
            out.append((at, touch))
        elif touch.page_view_id not in position:
            position[touch.page_view_id] = len(out)
            out.append((at, touch))
        else:
            first_at, first = out[position[touch.page_view_id]]
            out[position[touch.page_view_id]] = (first_at, _longer_view(first, touch))
    return out


def _longer_view(kept: Touch, report: WebVisited) -> Touch:
    if isinstance(kept, WebVisited) and (report.duration_s or 0) > (kept.duration_s or 0):
        return kept.model_copy(update={"duration_s": report.duration_s})
    return kept


def _fires(rule: EngagementRule, touch: Touch) -> bool:
    if short_type(touch.type) != rule.touch:
        return False
    # Privacy-proxy opens and link-scanner clicks are no person's interest; a rule must opt in to count them.
    if touch.machine_generated and not rule.count_machine_generated:
        return False
    return _holds(rule.when, touch)


def _holds(when: Conditions, touch: Touch) -> bool:
    # Only the conditions given are read: looking up a field a touch type lacks costs an exception.
    if when.url is not None and not _pattern_holds(when.url, touch.url):
        return False
    if when.link_url is not None and not _pattern_holds(when.link_url, getattr(touch, "link_url", None)):
        return False
    if when.event is not None:
        name = getattr(touch, "event", None) or getattr(touch, "event_name", None)
        if not _pattern_holds(when.event, name):
            return False
    if when.campaign_id is not None and not _equal(
        when.campaign_id, touch.campaign.campaign_id if touch.campaign else None
    ):
        return False
    if when.channel is not None and not _equal(when.channel, touch.channel):
        return False
    if when.form_id is not None and not _equal(when.form_id, getattr(touch, "form_id", None)):
        return False
    return when.min_duration_s is None or (getattr(touch, "duration_s", None) or 0.0) >= when.min_duration_s


def _equal(wanted: str | None, value: str | None) -> bool:
    return wanted is None or (value is not None and wanted.casefold() == value.casefold())


def _pattern_holds(pattern: str | None, value: str | None) -> bool:
    if pattern is None:
        return True
    if value is None:
        return False
    matcher, on_path = _compiled(pattern)
    return matcher((urlsplit(value).path or "/") if on_path else value) is not None


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> tuple[Callable[[str], re.Match[str] | None], bool]:
    """(matcher, whether it reads the URL path): globs match whole values, regexes are searched."""
    if pattern.startswith(REGEX_PREFIX):
        return re.compile(pattern[len(REGEX_PREFIX) :], re.IGNORECASE).search, False
    return re.compile(translate(pattern), re.IGNORECASE).match, pattern.startswith("/")


# --- fit ----------------------------------------------------------------------------------------


def fit(profile: Mapping[str, Any], account: Mapping[str, Any] | None, persona: str | None, model: ScoringModel) -> Fit:
    """Every fit rule that holds adds its points; the total picks the grade."""
    matches = []
    for rule in model.fit:
        value = _fit_value(rule, profile, account or {}, persona)
        if value is not None:
            matches.append(FitMatch(rule.id, rule.points, value))
    total = math.fsum(m.points for m in matches)
    return Fit(total=total, grade=grade(total, model), breakdown=tuple(matches))


def grade(fit_total: float, model: ScoringModel) -> str:
    return next((band.grade for band in model.grades if fit_total >= band.min_fit), model.lowest_grade)


def _fit_value(rule: FitRule, profile: Mapping[str, Any], account: Mapping[str, Any], persona: str | None) -> Any:
    """The value that made the rule hold, or None when it does not."""
    match rule:
        case PersonaIn():
            return persona if _in(persona, rule.values) else None
        case FreeMail():
            return _free_mail_domain(rule, profile.get("email"))
        case InList():
            value = (profile if rule.on == "profile" else account).get(rule.attribute)
            return value if _in(value, rule.values) else None
        case InRange():
            number = _number((profile if rule.on == "profile" else account).get(rule.attribute))
            return number if number is not None and _within(number, rule.min, rule.max) else None
        case WithinDistance():
            return _distance(rule, profile if rule.on == "profile" else account)
    return None  # pragma: no cover - the union is exhausted above


def _in(value: Any, values: Sequence[str]) -> bool:
    return value is not None and str(value).casefold() in {v.casefold() for v in values}


def _within(number: float, low: float | None, high: float | None) -> bool:
    return (low is None or number >= low) and (high is None or number <= high)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _free_mail_domain(rule: FreeMail, email: Any) -> str | None:
    if not isinstance(email, str) or "@" not in email:
        return None
    domain = email.rpartition("@")[2].strip().casefold()
    free = is_free_mail(domain) if rule.domains is None else domain in {d.casefold() for d in rule.domains}
    return domain if free == rule.is_free else None


def _distance(rule: WithinDistance, attributes: Mapping[str, Any]) -> float | None:
    lat, lon = _number(attributes.get("latitude")), _number(attributes.get("longitude"))
    if lat is None or lon is None:
        return None
    miles = miles_between((lat, lon), (rule.latitude, rule.longitude))
    return miles if miles <= rule.within_miles else None


def miles_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle (haversine) distance between two (latitude, longitude) points in degrees."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_MILES * math.asin(min(1.0, math.sqrt(h)))


# --- qualification ------------------------------------------------------------------------------


def qualify(fit: Fit, engagement: Engagement, model: ScoringModel) -> bool:
    """MQL when engagement reaches the threshold of the fit grade; grades with no threshold never qualify."""
    threshold = model.qualification.min_engagement.get(fit.grade)
    return threshold is not None and engagement.total >= threshold


def should_recycle(engagement: Engagement, model: ScoringModel) -> bool:
    """For a lead that is an MQL: its engagement has decayed below the recycle threshold."""
    return engagement.total < model.qualification.recycle_below
