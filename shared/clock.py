"""Time. Stored in UTC; days, months and cut-offs computed in Asia/Tokyo.

Every piece of code reads the time through a `Clock`, so tests move time instead of sleeping.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Protocol
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

TOKYO = ZoneInfo("Asia/Tokyo")


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that stands still until moved; for tests."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("a clock needs an aware datetime")
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def advance(self, by: timedelta) -> None:
        self._at += by

    def set(self, at: datetime) -> None:
        self._at = at.astimezone(UTC)


def tokyo_date(at: datetime) -> date:
    return at.astimezone(TOKYO).date()


def tokyo_midnight(day: date) -> datetime:
    """The instant a Tokyo calendar day begins: the bound of every period given in days."""
    return datetime.combine(day, time(), TOKYO)


def fiscal_year(at: datetime) -> int:
    """年度: the fiscal year starting 1 April (FY2024 = 2024-04-01 … 2025-03-31), in Tokyo."""
    day = tokyo_date(at)
    return day.year if day.month >= 4 else day.year - 1


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _iso_only(value: object) -> object:
    # Pydantic would read "0.5", "1700000000" or "-9.7e-40" as Unix time; the API documents ISO 8601 only.
    if isinstance(value, (int, float)) or isinstance(value, str) and _is_number(value):
        raise ValueError("expected an ISO 8601 date-time with its offset, e.g. 2026-04-01T09:00:00+09:00")
    return value


# A rule JSON Schema's date-time cannot state (the fuzz test knows it by this text).
UNSTORABLE = "a moment strictly between the first and the last of the years 1 to 9999 (UTC) is required"


def _storable(value: datetime) -> datetime:
    # asyncpg writes the first and the last instant a datetime holds (datetime.min and .max, in
    # UTC) as PostgreSQL's -infinity and infinity, and reads those back as naive datetimes; and an
    # instant whose UTC time falls outside the years 1–9999 has no datetime at all.
    try:
        utc = value.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise ValueError(UNSTORABLE) from None
    if utc in (datetime.min, datetime.max):
        raise ValueError(UNSTORABLE)
    return value


# A moment given by a client: ISO 8601 with an explicit offset (a bare local time is ambiguous),
# one the database stores as that moment.
Instant = Annotated[AwareDatetime, BeforeValidator(_iso_only), AfterValidator(_storable)]


def _iso_day(value: object) -> object:
    # Pydantic would read 0 or "0" as a Unix time's date; the API documents ISO 8601 dates only.
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        return value
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    raise ValueError("expected an ISO 8601 date, e.g. 2027-06-01")


Day = Annotated[date, BeforeValidator(_iso_day)]
