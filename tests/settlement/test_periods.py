"""Settlement periods and pay dates (services/settlement/periods.py): Tokyo cut-offs, the
twice-monthly halves, pay dates moved to the next bank business day, the grace period."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.settlement import calendar
from services.settlement.periods import GRACE, Cycle, last_readable, period_at, period_for, period_named

JST = timedelta(hours=9)


def test_a_month_runs_from_midnight_to_midnight_in_tokyo_and_is_paid_on_the_15th_after():
    october = period_for(Cycle.MONTHLY, date(2026, 10, 20))
    assert (october.first_day, october.last_day, october.label) == (date(2026, 10, 1), date(2026, 10, 31), "2026-10")
    assert october.start == datetime(2026, 9, 30, 15, tzinfo=UTC)
    assert october.end == datetime(2026, 10, 31, 15, tzinfo=UTC)
    assert october.pay_date == date(2026, 11, 16)  # the 15th is a Sunday
    assert period_for(Cycle.MONTHLY, date(2026, 8, 1)).pay_date == date(2026, 9, 15)


def test_the_twice_monthly_halves():
    first = period_for(Cycle.TWICE_MONTHLY, date(2026, 12, 15))
    second = period_for(Cycle.TWICE_MONTHLY, date(2026, 12, 16))
    assert (first.first_day, first.last_day, first.label) == (date(2026, 12, 1), date(2026, 12, 15), "2026-12-H1")
    assert first.pay_date == date(2027, 1, 4)  # month-end is the 31st: the banks reopen on the 4th
    assert (second.first_day, second.last_day, second.label) == (date(2026, 12, 16), date(2026, 12, 31), "2026-12-H2")
    assert second.pay_date == date(2027, 1, 15)
    assert first.end == second.start == datetime(2026, 12, 15, 15, tzinfo=UTC)
    assert period_for(Cycle.TWICE_MONTHLY, date(2026, 1, 20)).pay_date == date(2026, 2, 16)  # 15 Feb a Sunday
    assert period_for(Cycle.TWICE_MONTHLY, date(2026, 5, 3)).pay_date == date(2026, 6, 1)  # 31 May a Sunday
    leap = period_for(Cycle.TWICE_MONTHLY, date(2028, 2, 29))
    assert (leap.first_day, leap.last_day, leap.pay_date) == (date(2028, 2, 16), date(2028, 2, 29), date(2028, 3, 15))


def test_on_demand_is_a_day_paid_the_next_business_day():
    friday = period_for(Cycle.ON_DEMAND, date(2026, 5, 1))
    assert (friday.first_day, friday.last_day, friday.label) == (date(2026, 5, 1), date(2026, 5, 1), "2026-05-01")
    assert friday.pay_date == date(2026, 5, 7)  # the weekend and three Golden Week holidays
    assert period_for(Cycle.ON_DEMAND, date(2026, 10, 3)).pay_date == date(2026, 10, 5)  # asked on a Saturday


@pytest.mark.parametrize("cycle, last_second, first_second", [
    (Cycle.MONTHLY, "2026-10", "2026-11"),
    (Cycle.TWICE_MONTHLY, "2026-10-H2", "2026-11-H1"),
    (Cycle.ON_DEMAND, "2026-10-31", "2026-11-01"),
])
def test_23_59_59_and_00_00_00_in_tokyo_fall_on_either_side(cycle, last_second, first_second):
    midnight = datetime(2026, 11, 1) - JST  # 00:00:00 JST on 1 November, in UTC
    assert period_at(cycle, (midnight - timedelta(seconds=1)).replace(tzinfo=UTC)).label == last_second
    assert period_at(cycle, midnight.replace(tzinfo=UTC)).label == first_second
    assert period_at(Cycle.TWICE_MONTHLY, datetime(2026, 11, 15, 14, 59, 59, tzinfo=UTC)).label == "2026-11-H1"
    assert period_at(Cycle.TWICE_MONTHLY, datetime(2026, 11, 15, 15, 0, 0, tzinfo=UTC)).label == "2026-11-H2"


def test_the_last_day_of_march_closes_the_fiscal_year_at_midnight_in_tokyo():
    march = period_at(Cycle.MONTHLY, datetime(2027, 3, 31, 14, 59, 59, tzinfo=UTC))
    assert march.label == "2027-03" and march.end == datetime(2027, 3, 31, 15, tzinfo=UTC)
    assert period_at(Cycle.MONTHLY, march.end).label == "2027-04"


def test_a_period_is_readable_only_after_its_grace_period():
    october = period_for(Cycle.MONTHLY, date(2026, 10, 1))
    assert october.readable_at == october.end + GRACE
    assert last_readable(Cycle.MONTHLY, october.end + GRACE - timedelta(microseconds=1)).label == "2026-09"
    assert last_readable(Cycle.MONTHLY, october.end + GRACE) == october
    assert last_readable(Cycle.TWICE_MONTHLY, datetime(2026, 11, 20, tzinfo=UTC)).label == "2026-11-H1"


@pytest.mark.parametrize("label", ["2026-10", "2026-10-H1", "2026-10-H2", "2026-10-21", "2028-02-29"])
def test_a_label_names_its_period(label):
    assert period_named(label).label == label


@pytest.mark.parametrize("label", ["2026-13", "2026-02-30", "2026-10-H3", "2026-1", "26-10", "2026-10-1H", "",
                                   "1999-12", "2100-01-01", "0001-01"])
def test_a_label_that_names_no_period_is_refused(label):
    with pytest.raises(ValueError):
        period_named(label)


@given(st.sampled_from(list(Cycle)), st.dates(date(2000, 2, 1), date(2099, 11, 30)))
def test_periods_tile_time_and_are_paid_after_they_end_on_a_business_day(cycle, day):
    found = period_for(cycle, day)
    assert found.first_day <= day <= found.last_day
    assert found.start == calendar.cutoff(found.first_day) < found.end == calendar.cutoff(found.last_day + timedelta(days=1))
    following = period_for(cycle, found.last_day + timedelta(days=1))
    assert following.start == found.end  # no gap, no overlap
    assert period_for(cycle, found.first_day - timedelta(days=1)).end == found.start
    assert calendar.is_business_day(found.pay_date) and found.pay_date > found.last_day
    assert found.pay_date - found.last_day <= timedelta(days=31)
    assert period_named(found.label) == found
    assert period_at(cycle, found.start) == found == period_at(cycle, found.end - timedelta(microseconds=1))
