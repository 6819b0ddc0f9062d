"""Bank business days and Tokyo cut-offs (services/settlement/calendar.py), against days known
from the Cabinet Office's holiday list and the banks' New Year closing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.settlement import calendar


@pytest.mark.parametrize("day, open_", [
    (date(2026, 10, 1), True),  # a Thursday
    (date(2026, 10, 3), False),  # Saturday
    (date(2026, 10, 4), False),  # Sunday
    (date(2026, 10, 12), False),  # スポーツの日, second Monday of October
    (date(2026, 5, 6), False),  # 振替休日: Constitution Day fell on a Sunday
    (date(2026, 9, 22), False),  # 国民の休日 between 敬老の日 and 秋分の日
    (date(2027, 3, 22), False),  # 振替休日 for the vernal equinox on a Sunday
    (date(2026, 12, 30), True),  # the last business day of the year
    (date(2026, 12, 31), False),  # a Thursday, but the banks close 31 Dec – 3 Jan
    (date(2027, 1, 1), False),
    (date(2027, 1, 2), False),
    (date(2027, 1, 3), False),
    (date(2027, 1, 4), True),  # the first business day of 2027
    (date(2025, 1, 3), False),  # a Friday in the closing
    (date(2026, 1, 12), False),  # 成人の日
])
def test_bank_business_days(day, open_):
    assert calendar.is_business_day(day) is open_


def test_holidays_come_from_the_maintained_library():
    assert calendar.is_holiday(date(2026, 11, 23)) and not calendar.is_holiday(date(2026, 12, 31))


@pytest.mark.parametrize("day, on_or_after, after", [
    (date(2026, 10, 1), date(2026, 10, 1), date(2026, 10, 2)),
    (date(2026, 5, 2), date(2026, 5, 7), date(2026, 5, 7)),  # Saturday, Sunday, three holidays
    (date(2026, 12, 31), date(2027, 1, 4), date(2027, 1, 4)),
    (date(2026, 12, 30), date(2026, 12, 30), date(2027, 1, 4)),
    (date(2026, 10, 9), date(2026, 10, 9), date(2026, 10, 13)),  # Friday before Sports Day
])
def test_moving_to_a_business_day(day, on_or_after, after):
    assert calendar.business_day_on_or_after(day) == on_or_after
    assert calendar.next_business_day(day) == after


def test_previous_business_day():
    assert calendar.previous_business_day(date(2027, 1, 4)) == date(2026, 12, 30)
    assert calendar.previous_business_day(date(2026, 10, 13)) == date(2026, 10, 9)


@given(st.dates(date(2000, 1, 1), date(2090, 12, 31)))
def test_the_day_moved_to_is_the_first_open_one(day):
    moved = calendar.business_day_on_or_after(day)
    assert moved >= day and calendar.is_business_day(moved)
    assert not any(calendar.is_business_day(day + timedelta(days=n)) for n in range((moved - day).days))
    assert moved - day <= timedelta(days=7)  # Golden Week at worst, never a run away
    assert calendar.next_business_day(day) > day


def test_a_cutoff_is_midnight_in_tokyo():
    assert calendar.cutoff(date(2026, 10, 1)) == datetime(2026, 9, 30, 15, 0, tzinfo=UTC)
    assert calendar.cutoff(date(2027, 1, 1)).tzinfo is UTC
