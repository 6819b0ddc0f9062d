"""Transit's public surface: what settlement and the KPI reports read of it, in the caller's session.

`counts(session, region=, since=, until=) -> TransitCounts` covers the Tokyo days [since, until):
- per day and fare product: tickets sold (bought by residents' coin payments: a ticket granted in
  a bundle is no sale) and their fares, activations (first rides) and rides of every ticket,
  granted ones included (offline conflicts included: they happened) and conflicts;
- per day and bus operator: the coin payments at its stores that bought no ticket (on the
  on-demand bus, the fare paid by QR at the bus's own store counts as a transit payment), from
  the wallet's statement lines, refunds not netted (a count of payments, not of money);
- `monthly_digital_payments()`: the KPI 交通チケットのデジタル決済数, ticket purchases plus those
  coin payments, per month. The KPI's average over the months of a period is the reader's.
`rides(session, region=, since=, until=, residents=) -> list[Ride]`: the rides (validated
scans, offline conflicts included) these residents took in the instants [since, until), in time
order; for the rides a bundle created (bundles/public.py). A fare paid by QR on the bus names no
rider to transit, so it is a transit payment but not a ride here.
Statement lines fall at their journal's time, stamped before commit: read a day only after the
wallet's grace period for late commits (services/wallet/public.py).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy.ext.asyncio import AsyncSession

from services.coupons.transit import repository as repo
from services.coupons.transit.repository import ProductDay
from services.wallet import public as wallet
from shared.clock import TOKYO

__all__ = ["OperatorPaymentDay", "ProductDay", "Ride", "TransitCounts", "counts", "rides"]


@dataclass(frozen=True)
class OperatorPaymentDay:
    day: date
    merchant_id: uuid.UUID  # the bus operator
    payments: int  # coin payments at its stores that bought no ticket
    amount: int  # their yen and points, before refunds


@dataclass(frozen=True)
class TransitCounts:
    products: list[ProductDay]
    payments: list[OperatorPaymentDay]

    def monthly_digital_payments(self) -> dict[tuple[int, int], int]:
        """(year, month) -> ticket purchases + other coin payments at bus operators' stores."""
        months: dict[tuple[int, int], int] = defaultdict(int)
        for day in self.products:
            months[(day.day.year, day.day.month)] += day.tickets_sold
        for paid in self.payments:
            months[(paid.day.year, paid.day.month)] += paid.payments
        return dict(sorted(months.items()))


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(), TOKYO)


async def counts(session: AsyncSession, *, region: str, since: date, until: date) -> TransitCounts:
    region_id = await wallet.region_id(session, region=region)
    start, end = _start_of(since), _start_of(until)
    products = await repo.product_days(session, region_id, start, end)
    payments: list[OperatorPaymentDay] = []
    for operator in await repo.operators(session, region_id):
        per_payment: dict[uuid.UUID, tuple[date, int]] = {}
        async for line in wallet.statement_lines(
            session, region=region, since=start, until=end, merchant_id=operator.merchant_id
        ):
            if line.kind is wallet.LineKind.PAYMENT and line.payment_id is not None:
                day, amount = per_payment.get(line.payment_id, (line.occurred_at.astimezone(TOKYO).date(), 0))
                per_payment[line.payment_id] = (day, amount + line.amount)
        tickets = await repo.ticket_payment_ids(session, region_id, list(per_payment))
        days: dict[date, list[int]] = defaultdict(lambda: [0, 0])
        for payment_id, (day, amount) in per_payment.items():
            if payment_id not in tickets:
                days[day][0] += 1
                days[day][1] += amount
        payments += [OperatorPaymentDay(day, operator.merchant_id, n, amount) for day, (n, amount) in sorted(days.items())]
    return TransitCounts(products, payments)


@dataclass(frozen=True)
class Ride:
    subject: str  # the rider, as their token names them
    at: datetime


async def rides(
    session: AsyncSession, *, region: str, since: datetime, until: datetime, residents: Collection[str]
) -> list[Ride]:
    region_id = await wallet.region_id(session, region=region)
    return [Ride(subject, at) for subject, at in await repo.rides_of(session, region_id, since, until, sorted(residents))]
