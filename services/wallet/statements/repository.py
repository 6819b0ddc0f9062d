"""The aggregate queries behind the city's KPI figures (statements/service.py `activity`): one
pass each over a period's payments, refunds and journals, grouped in the database, since a
region's fiscal year is millions of payments."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Row, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.directory.models import Merchant
from services.wallet.grants.models import Grant
from services.wallet.ledger.models import Account, AccountKind, Entry, Journal, JournalKind
from services.wallet.payments.models import Payment, Refund
from shared.db import tokyo_day
from shared.money import Unit

# A resident takes part (事業参加者) by topping up, paying, buying a premium set or receiving a
# grant; a refund, an expiry or a reward follows from something they already did.
_PARTICIPATION = [JournalKind.TOPUP.value, JournalKind.PAYMENT.value, JournalKind.PREMIUM.value, JournalKind.GRANT.value]
# A merchant takes part (連携地域事業者) by being paid or by paying or being paid by another merchant.
_TRADING = [JournalKind.PAYMENT.value, JournalKind.TRANSFER.value]


def _month(column: Any) -> Any:
    """The first day of a timestamp's Tokyo month."""
    return func.date_trunc("month", tokyo_day(column)).cast(Date).label("month")


async def payment_days(session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime) -> list[Row[Any]]:
    """Per Tokyo day and merchant sector: payments made, what residents paid (coin and points)
    and the fee charged."""
    day = tokyo_day(Payment.created_at).label("day")
    query = (
        select(day, Merchant.sector, func.count(), func.sum(Payment.amount), func.sum(Payment.fee))
        .join(Merchant, Merchant.id == Payment.merchant_id)
        .where(Payment.region_id == region_id, Payment.created_at >= since, Payment.created_at < until)
        .group_by(day, Merchant.sector)
        .order_by(day, Merchant.sector)
    )
    return list(await session.execute(query))


async def refund_days(session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime) -> list[Row[Any]]:
    """Per Tokyo day of the refund, day of the payment refunded and sector: refunds made, their
    yen and the fee they gave back. A refund counts on its own date."""
    day = tokyo_day(Refund.created_at).label("day")
    paid_on = tokyo_day(Payment.created_at).label("paid_on")
    query = (
        select(day, paid_on, Merchant.sector, func.count(), func.sum(Refund.amount), func.sum(Refund.fee_returned))
        .join(Payment, Payment.id == Refund.payment_id)
        .join(Merchant, Merchant.id == Refund.merchant_id)
        .where(Refund.region_id == region_id, Refund.created_at >= since, Refund.created_at < until)
        .group_by(day, paid_on, Merchant.sector)
        .order_by(day, paid_on, Merchant.sector)
    )
    return list(await session.execute(query))


async def grant_months(session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime) -> list[Row[Any]]:
    """Per Tokyo month: point grants made (for health, environment, volunteering …) and their points."""
    month = _month(Grant.created_at)
    query = (
        select(month, func.count(), func.sum(Grant.amount))
        .where(Grant.region_id == region_id, Grant.created_at >= since, Grant.created_at < until)
        .group_by(month).order_by(month)
    )
    return list(await session.execute(query))


async def journal_months(session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime) -> list[Row[Any]]:
    """Per Tokyo month: merchant-to-merchant transfers and payouts to banks, count and yen (a
    journal's credited leg, so each is counted once)."""
    month = _month(Journal.created_at)
    query = (
        select(month, Journal.kind, func.count(distinct(Journal.id)), func.sum(Entry.amount))
        .join(Entry, Entry.journal_id == Journal.id)
        .where(
            Journal.region_id == region_id, Journal.created_at >= since, Journal.created_at < until,
            Journal.kind.in_([JournalKind.TRANSFER.value, JournalKind.PAYOUT.value]), Entry.amount > 0,
        )
        .group_by(month, Journal.kind).order_by(month, Journal.kind)
    )
    return list(await session.execute(query))


async def _holders(
    session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime, *, kinds: list[str],
    owner: Any, account_kind: AccountKind,
) -> tuple[dict[date, int], int]:
    """How many distinct owners of `account_kind` accounts an entry of a journal of `kinds`
    touched, per Tokyo month and over the whole period."""
    month = _month(Journal.created_at)
    touched = (
        select(month, owner.label("owner"))
        .select_from(Journal)
        .join(Entry, Entry.journal_id == Journal.id)
        .join(Account, Account.id == Entry.account_id)
        .where(
            Journal.region_id == region_id, Journal.created_at >= since, Journal.created_at < until,
            Journal.kind.in_(kinds), Account.kind == account_kind.value,
        )
        .distinct()
    ).cte("touched")
    per_month = select(touched.c.month, func.count()).group_by(touched.c.month)
    months = {row[0]: row[1] for row in await session.execute(per_month)}
    total = (await session.execute(select(func.count(distinct(touched.c.owner))))).scalar_one()
    return months, total


async def participants(
    session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime
) -> tuple[dict[date, int], int]:
    """Residents who took part (a top-up, payment, premium set or grant), per month and in all."""
    return await _holders(session, region_id, since, until, kinds=_PARTICIPATION, owner=Account.resident_id,
                          account_kind=AccountKind.RESIDENT)


async def trading_merchants(
    session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime
) -> tuple[dict[date, int], int]:
    """Merchants that took a payment or sent or received a transfer, per month and in all."""
    return await _holders(session, region_id, since, until, kinds=_TRADING, owner=Account.merchant_id,
                          account_kind=AccountKind.MERCHANT)


async def resident_yen_by_kind(session: AsyncSession, region_id: uuid.UUID, until: datetime) -> list[Row[Any]]:
    """What journals of each kind did to residents' yen (paid-in value) before `until`, summed:
    the movements whose total is the unused balance then."""
    query = (
        select(Journal.kind, func.count(distinct(Journal.id)), func.sum(Entry.amount))
        .select_from(Entry)
        .join(Account, Account.id == Entry.account_id)
        .join(Journal, Journal.id == Entry.journal_id)
        .where(Entry.region_id == region_id, Entry.created_at < until, Account.kind == AccountKind.RESIDENT.value,
               Account.unit == Unit.YEN.value)
        .group_by(Journal.kind).order_by(Journal.kind)
    )
    return list(await session.execute(query))


async def wallets_holding_yen(session: AsyncSession, region_id: uuid.UUID, until: datetime) -> int:
    """Residents' yen accounts whose entries before `until` sum to more than zero."""
    held = (
        select(Entry.account_id)
        .join(Account, Account.id == Entry.account_id)
        .where(Entry.region_id == region_id, Entry.created_at < until, Account.kind == AccountKind.RESIDENT.value,
               Account.unit == Unit.YEN.value)
        .group_by(Entry.account_id)
        .having(func.sum(Entry.amount) > 0)
    ).subquery()
    return (await session.execute(select(func.count()).select_from(held))).scalar_one()
