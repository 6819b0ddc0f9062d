"""Settlement cycles and their periods: which trades a payout covers and the day it is paid.

A merchant is settled on one of three cycles (the operator sets which, `service.set_cycle`):

- **monthly**: the trades of a calendar month, paid on the 15th of the next month (月末締め
  翌月15日払い, the same day as a twice-monthly second half, so both leave on one file);
- **twice monthly**: the trades of the 1st–15th paid at the end of that month, those of the
  16th–end on the 15th of the next month;
- **on demand**: the merchant asks for its money; a request made on a day is settled with that
  day's trades and paid on the next business day, less the region's on-demand payout fee.

Each period is [start, end) between two Tokyo midnights (`calendar.cutoff`), and its pay date is
moved to the next bank business day when it falls on a closed one (a weekend, a holiday, 31 Dec
– 3 Jan): a first half of December is paid in January.

**The grace period.** A journal's time is stamped when its transaction starts, before it commits:
a payment stamped 23:59:59.9 may become visible at 00:00:00.4, in the next period's first
second. So a run may read a period only from `readable_at` = end + `GRACE`, when every
transaction that could still carry an earlier stamp has long committed or rolled back. And
because the grace is a bound, not a proof, a run must not count by time alone: it settles every
statement line (keyed by journal id, merchant and unit, `wallet.public.statement_lines`) that
is dated before the period's end and that no earlier run has settled. A line that still arrives
late, after its period was closed, is then settled by the merchant's next run, never missed, and
a line is never counted twice because a journal is settled once. The same rule makes a change of
cycle safe: the cycle in force at a period's end (`service.cycles_at`) decides whether the
merchant is in that period's run, and the run takes whatever of the merchant's is not yet settled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from services.settlement.calendar import business_day_on_or_after, cutoff, next_business_day
from shared.clock import tokyo_date

# How long after a period's end a run may read it: far beyond any payment's transaction (a
# payment commits in milliseconds; the pool waits for a connection seconds at most).
GRACE = timedelta(minutes=10)
MONTHLY_PAY_DAY = 15  # of the month after the trades
# The days periods are made for: the holiday data's safe range, and every pay date inside datetime's.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)
SECOND_HALF_PAY_DAY = 15  # twice monthly: the 16th–end are paid on the 15th of the next month


class Cycle(StrEnum):
    MONTHLY = "monthly"
    TWICE_MONTHLY = "twice_monthly"
    ON_DEMAND = "on_demand"


@dataclass(frozen=True)
class Period:
    """One settlement period of a cycle: the trades of `first_day` to `last_day` (Tokyo dates,
    inclusive), which are the instants [start, end) in UTC, paid on `pay_date` (a business day)."""

    cycle: Cycle
    first_day: date
    last_day: date
    start: datetime
    end: datetime
    pay_date: date
    label: str  # "2026-10" monthly, "2026-10-H1" / "2026-10-H2" twice monthly, "2026-10-21" a day

    @property
    def readable_at(self) -> datetime:
        """When a run may read the period: its end and the grace period."""
        return self.end + GRACE


def _month_after(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _period(cycle: Cycle, first_day: date, last_day: date, pay_on: date, label: str) -> Period:
    return Period(cycle, first_day, last_day, cutoff(first_day), cutoff(last_day + timedelta(days=1)), pay_on, label)


def period_for(cycle: Cycle, day: date) -> Period:
    """The period of `cycle` that the Tokyo date `day` is in. ValueError outside FIRST_DAY–LAST_DAY."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"{day} is outside the days settlement has periods for, {FIRST_DAY} to {LAST_DAY}")
    cycle = Cycle(cycle)
    first_of_month = day.replace(day=1)
    next_month = _month_after(day)
    month_end = next_month - timedelta(days=1)
    if cycle is Cycle.MONTHLY:
        return _period(cycle, first_of_month, month_end, pay_date(cycle, month_end), f"{day:%Y-%m}")
    if cycle is Cycle.TWICE_MONTHLY:
        if day.day <= 15:
            return _period(cycle, first_of_month, day.replace(day=15), pay_date(cycle, day.replace(day=15)),
                           f"{day:%Y-%m}-H1")
        return _period(cycle, day.replace(day=16), month_end, pay_date(cycle, month_end), f"{day:%Y-%m}-H2")
    return _period(cycle, day, day, pay_date(cycle, day), f"{day:%Y-%m-%d}")


def period_at(cycle: Cycle, at: datetime) -> Period:
    """The period of `cycle` that the instant `at` is in (its Tokyo date's)."""
    return period_for(cycle, tokyo_date(at))


def pay_date(cycle: Cycle, last_day: date) -> date:
    """The day a period ending on the Tokyo date `last_day` is paid, on a bank business day."""
    cycle = Cycle(cycle)
    if cycle is Cycle.ON_DEMAND:
        return next_business_day(last_day)
    if cycle is Cycle.TWICE_MONTHLY and last_day.day == 15:
        month_end = _month_after(last_day) - timedelta(days=1)
        return business_day_on_or_after(month_end)
    pay_day = MONTHLY_PAY_DAY if cycle is Cycle.MONTHLY else SECOND_HALF_PAY_DAY
    return business_day_on_or_after(_month_after(last_day).replace(day=pay_day))


def last_readable(cycle: Cycle, now: datetime) -> Period:
    """The latest period of `cycle` that a run may read at `now` (its grace period over)."""
    found = period_at(cycle, now - GRACE)
    return period_for(cycle, found.first_day - timedelta(days=1))


_LABEL = re.compile(r"^(\d{4})-(\d{2})(?:-(H1|H2)|-(\d{2}))?$")


def period_named(label: str) -> Period:
    """The period a label names (`Period.label`, as `chiikipay settle --period` takes it): the
    form says the cycle. ValueError for anything else, a month or day that does not exist included."""
    match = _LABEL.fullmatch(label)
    if match is None:
        raise ValueError(f"{label!r} is not a period: YYYY-MM, YYYY-MM-H1, YYYY-MM-H2 or YYYY-MM-DD")
    year, month, half, day = match.groups()
    if half is not None:
        return period_for(Cycle.TWICE_MONTHLY, date(int(year), int(month), 1 if half == "H1" else 16))
    if day is not None:
        return period_for(Cycle.ON_DEMAND, date(int(year), int(month), int(day)))
    return period_for(Cycle.MONTHLY, date(int(year), int(month), 1))
