"""The follow-up clock: deadlines counted in business hours of the rep's time zone (pure).

Arithmetic is done in UTC between the local opening and closing instants, so a day on which the
clocks change counts its real length.
"""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from services.routing.model import WorkingHours

MAX_DAYS = 3660  # a deadline further than ten years out is a configuration error, not a plan


def _window(day: date, hours: WorkingHours, zone: ZoneInfo) -> tuple[datetime, datetime]:
    opens = datetime.combine(day, hours.start, zone).astimezone(UTC)
    closes = datetime.combine(day, hours.end, zone).astimezone(UTC)
    return opens, closes


def business_deadline(start: datetime, minutes: float, hours: WorkingHours, zone_name: str) -> datetime:
    """The instant when `minutes` of working time have passed since `start` (UTC)."""
    zone = ZoneInfo(zone_name)
    remaining = timedelta(minutes=minutes)
    cursor = start.astimezone(UTC)
    day = start.astimezone(zone).date()
    for _ in range(MAX_DAYS):
        if day.weekday() in hours.days:
            opens, closes = _window(day, hours, zone)
            begin = max(cursor, opens)
            if begin < closes:
                if remaining <= closes - begin:
                    return begin + remaining
                remaining -= closes - begin
        day += timedelta(days=1)
    raise ValueError("no working time within ten years")


def business_minutes_between(start: datetime, end: datetime, hours: WorkingHours, zone_name: str) -> float:
    """Working minutes in [start, end); 0 when end is not after start."""
    zone = ZoneInfo(zone_name)
    total = timedelta()
    day = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    while day <= last:
        if day.weekday() in hours.days:
            opens, closes = _window(day, hours, zone)
            overlap = min(closes, end) - max(opens, start)
            total += max(overlap, timedelta())
        day += timedelta(days=1)
    return total / timedelta(minutes=1)


def at_work(now: datetime, hours: WorkingHours, zone_name: str) -> bool:
    zone = ZoneInfo(zone_name)
    local = now.astimezone(zone)
    return local.weekday() in hours.days and hours.start <= local.time() < hours.end
