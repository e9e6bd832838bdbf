from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.routing.model import WorkingHours
from services.routing.sla import at_work, business_deadline, business_minutes_between

NINE_TO_FIVE = WorkingHours()


def test_a_lead_arriving_friday_evening_is_due_monday_morning_in_the_reps_zone() -> None:
    friday_evening_berlin = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)  # 18:30 in Berlin
    due = business_deadline(friday_evening_berlin, 60, NINE_TO_FIVE, "Europe/Berlin")
    assert due == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # Monday 10:00 Berlin


def test_the_clock_runs_only_inside_working_hours() -> None:
    start = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York
    due = business_deadline(start, 8 * 60, NINE_TO_FIVE, "America/New_York")
    assert due == datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def test_a_day_with_a_clock_change_counts_its_real_hours() -> None:
    hours = WorkingHours(days=(0, 1, 2, 3, 4, 5, 6), start=datetime.min.time(), end=datetime.max.time())
    before = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # Berlin leaves summer time on 25 October
    assert business_deadline(before, 24 * 60, hours, "Europe/Berlin") == before + timedelta(hours=24)  # 23:00 local


def test_at_work_is_local() -> None:
    assert at_work(datetime(2026, 11, 23, 8, 30, tzinfo=UTC), NINE_TO_FIVE, "Europe/Berlin")
    assert not at_work(datetime(2026, 11, 23, 8, 30, tzinfo=UTC), NINE_TO_FIVE, "America/Los_Angeles")


@given(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
    st.integers(1, 10_000),
    st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney"]),
)
def test_the_deadline_is_exactly_that_many_business_minutes_later(start: datetime, minutes: int, zone: str) -> None:
    due = business_deadline(start, minutes, NINE_TO_FIVE, zone)
    assert due > start
    assert abs(business_minutes_between(start, due, NINE_TO_FIVE, zone) - minutes) < 1e-6
