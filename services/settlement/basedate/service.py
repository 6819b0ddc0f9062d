"""The base-date report (基準日): at the end of 31 March and of 30 September, each region's unused
balance of paid-in value (未使用残高: residents' coin; free points are not in it), and the
security deposit the issuer must lodge (発行保証金): half of that balance, when it exceeds
¥10,000,000 (資金決済法 第14条; DOMAIN.md). "Half or more" is met by rounding up to the yen.

The balance is as it stood at the base date's end, from the entries before that instant, so a
report made later shows the same figures; it comes with the totals per journal kind it was
summed from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.settlement.basedate.errors import BaseDateNotPassed, InvalidBaseDate
from services.wallet import public as wallet
from shared.clock import Clock, tokyo_date, tokyo_midnight

BASE_DATES = ((3, 31), (9, 30))
DEPOSIT_THRESHOLD = 10_000_000


@dataclass(frozen=True)
class BaseDateReport:
    region: str
    base_date: date
    unused: wallet.UnusedBalance
    threshold: int
    deposit_required: int  # yen; 0 at or below the threshold


def deposit_for(unused: int) -> int:
    return -(-unused // 2) if unused > DEPOSIT_THRESHOLD else 0


def check_base_date(base_date: date, clock: Clock) -> None:
    if (base_date.month, base_date.day) not in BASE_DATES:
        raise InvalidBaseDate(f"{base_date.isoformat()} is not a base date; they are 31 March and 30 September.",
                              base_date=base_date.isoformat())
    if tokyo_date(clock.now()) <= base_date:
        raise BaseDateNotPassed(f"{base_date.isoformat()} has not ended yet (Asia/Tokyo).",
                                base_date=base_date.isoformat())


async def report(session: AsyncSession, clock: Clock, *, region: str, base_date: date) -> BaseDateReport:
    check_base_date(base_date, clock)
    unused = await wallet.unused_balance(session, region=region, at=tokyo_midnight(base_date + timedelta(days=1)))
    return BaseDateReport(region, base_date, unused, DEPOSIT_THRESHOLD, deposit_for(unused.amount))
