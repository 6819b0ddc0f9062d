"""Bank business days (銀行営業日) and the Tokyo cut-offs that settlement counts days by.

Banks in Japan do not move money on Saturdays, Sundays, national holidays (国民の祝日, their
substitute days and the "citizens' holidays" between two of them) nor over the New Year
closing, 31 December to 3 January. The holidays come from the maintained `holidays` package
(Japan's are set by law and change: a new holiday, a moved Sports Day, the 2019 enthronement
days), never from a list of our own; the New Year closing is the banks' own rule, added here.

A day is a Tokyo date; an instant becomes one through Asia/Tokyo (shared.clock), never UTC:
00:30 JST on the 1st is in the 1st, although it is still the last day of the month in UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import holidays

from shared.clock import TOKYO

# Japan's public holidays, worked out for a year the first time a day of it is asked about.
_HOLIDAYS = holidays.country_holidays("JP")

# The banks' New Year closing: (month, day) of each closed day.
_NEW_YEAR_CLOSING = frozenset({(12, 31), (1, 1), (1, 2), (1, 3)})


def is_holiday(day: date) -> bool:
    """A national holiday of Japan (its substitute days included)."""
    return day in _HOLIDAYS


def is_business_day(day: date) -> bool:
    """The banks are open: a weekday that is neither a holiday nor in the New Year closing."""
    return day.weekday() < 5 and (day.month, day.day) not in _NEW_YEAR_CLOSING and not is_holiday(day)


def business_day_on_or_after(day: date) -> date:
    """The day itself if the banks are open, else the next day they are (翌営業日扱い): where a
    pay date falls on a closed day, the money moves on this one."""
    while not is_business_day(day):
        day += timedelta(days=1)
    return day


def next_business_day(day: date) -> date:
    """The first business day after `day` (an on-demand payout asked for on `day` is paid then)."""
    return business_day_on_or_after(day + timedelta(days=1))


def previous_business_day(day: date) -> date:
    """The last business day before `day` (e.g. when a transfer file must be at the bank)."""
    day -= timedelta(days=1)
    while not is_business_day(day):
        day -= timedelta(days=1)
    return day


def cutoff(day: date) -> datetime:
    """The instant `day` begins in Tokyo (00:00 JST), in UTC as the database stores time: every
    settlement period starts and ends at one."""
    return datetime.combine(day, time(0), tzinfo=TOKYO).astimezone(UTC)
