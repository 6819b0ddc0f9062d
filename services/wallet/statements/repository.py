"""The aggregate queries behind the city's KPI figures (statements/service.py `activity`): one
pass each over a period's payments, refunds and journals, grouped in the database, since a
region's fiscal year is millions of payments; each beside the same figures of the history
imported from a previous platform (services/wallet/history), so that reports cover the years
before the switch."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Row, case, distinct, func, literal, select, union, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.wallet.directory.models import Merchant
from services.wallet.grants.models import Grant
from services.wallet.history.models import MOVEMENTS, ImportedMovement, Record
from services.wallet.ledger.models import Account, AccountKind, Entry, Journal, JournalKind
from services.wallet.payments.models import Payment, Refund
from shared.db import tokyo_day
from shared.money import Unit

# A resident takes part (事業参加者) by topping up, paying, buying a premium set or receiving a
# grant; a refund, an expiry or a reward follows from something they already did.
_PARTICIPATION = [JournalKind.TOPUP.value, JournalKind.PAYMENT.value, JournalKind.PREMIUM.value, JournalKind.GRANT.value]
# A merchant takes part (連携地域事業者) by being paid or by paying or being paid by another merchant.
_TRADING = [JournalKind.PAYMENT.value, JournalKind.TRANSFER.value]
# The same on a previous platform's imported history, which has no premium sets nor transfers.
_IMPORTED_PARTICIPATION = [Record.TOPUP, Record.PAYMENT, Record.GRANT]


def _month(column: Any) -> Any:
    """The first day of a timestamp's Tokyo month."""
    return func.date_trunc("month", tokyo_day(column)).cast(Date).label("month")


def _imported(region_id: uuid.UUID, since: datetime, until: datetime, *records: Record) -> Any:
    """The region's imported movements of these kinds in [since, until) (services/wallet/history):
    what a previous platform recorded, one row per unit of each movement."""
    m = ImportedMovement
    return (m.region_id == region_id, m.record.in_([r.value for r in records]), m.occurred_at >= since,
            m.occurred_at < until)


async def payment_days(session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime) -> list[Row[Any]]:
    """Per Tokyo day and merchant sector: payments made, what residents paid (coin and points)
    and the fee charged; the payments made here and those imported from a previous platform
    (a day and sector may come twice, once for each)."""
    day = tokyo_day(Payment.created_at).label("day")
    native = (
        select(day, Merchant.sector, func.count(), func.sum(Payment.amount), func.sum(Payment.fee))
        .join(Merchant, Merchant.id == Payment.merchant_id)
        .where(Payment.region_id == region_id, Payment.created_at >= since, Payment.created_at < until)
        .group_by(day, Merchant.sector)
    )
    m = ImportedMovement
    old_day = tokyo_day(m.occurred_at).label("day")
    # A movement paid partly in coin and partly in points is two rows of one source key.
    old = (
        select(old_day, Merchant.sector, func.count(distinct(m.source_key)), func.sum(m.amount), func.sum(m.fee))
        .join(Merchant, Merchant.id == m.merchant_id)
        .where(*_imported(region_id, since, until, Record.PAYMENT))
        .group_by(old_day, Merchant.sector)
    )
    both = union_all(native, old).subquery()
    return list(await session.execute(select(both).order_by(*both.c)))


async def refund_days(session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime) -> list[Row[Any]]:
    """Per Tokyo day of the refund, day of the payment refunded and sector: refunds made, their
    yen and the fee they gave back, here and imported. A refund counts on its own date."""
    day = tokyo_day(Refund.created_at).label("day")
    paid_on = tokyo_day(Payment.created_at).label("paid_on")
    native = (
        select(day, paid_on, Merchant.sector, func.count(), func.sum(Refund.amount), func.sum(Refund.fee_returned))
        .join(Payment, Payment.id == Refund.payment_id)
        .join(Merchant, Merchant.id == Refund.merchant_id)
        .where(Refund.region_id == region_id, Refund.created_at >= since, Refund.created_at < until)
        .group_by(day, paid_on, Merchant.sector)
    )
    refund, payment = ImportedMovement, aliased(ImportedMovement)
    old_day, old_paid_on = tokyo_day(refund.occurred_at).label("day"), tokyo_day(payment.occurred_at).label("paid_on")
    # The refunded payment's row of the same unit: one payment row per refund row.
    old = (
        select(old_day, old_paid_on, Merchant.sector, func.count(distinct(refund.source_key)), func.sum(refund.amount),
               func.sum(refund.fee))
        .join(payment, (payment.region_id == refund.region_id) & (payment.record == Record.PAYMENT.value)
              & (payment.source_key == refund.payment_key) & (payment.unit == refund.unit))
        .join(Merchant, Merchant.id == refund.merchant_id)
        .where(*_imported(region_id, since, until, Record.REFUND))
        .group_by(old_day, old_paid_on, Merchant.sector)
    )
    both = union_all(native, old).subquery()
    return list(await session.execute(select(both).order_by(*both.c)))


async def grant_months(session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime) -> list[Row[Any]]:
    """Per Tokyo month: point grants made (for health, environment, volunteering …) and their points."""
    month = _month(Grant.created_at)
    native = (
        select(month, func.count().label("grants"), func.sum(Grant.amount).label("points"))
        .where(Grant.region_id == region_id, Grant.created_at >= since, Grant.created_at < until)
        .group_by(month)
    )
    m = ImportedMovement
    old_month = _month(m.occurred_at)
    old = (
        select(old_month, func.count(distinct(m.source_key)), func.sum(m.amount))
        .where(*_imported(region_id, since, until, Record.GRANT)).group_by(old_month)
    )
    both = union_all(native, old).subquery()
    query = select(both.c.month, func.sum(both.c.grants), func.sum(both.c.points)).group_by(both.c.month)
    return list(await session.execute(query.order_by(both.c.month)))


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
    owner: Any, account_kind: AccountKind, imported_records: list[Record], imported_owner: Any,
) -> tuple[dict[date, int], int]:
    """How many distinct owners of `account_kind` accounts an entry of a journal of `kinds`
    touched, or an imported movement of `imported_records` names, per Tokyo month and over the
    whole period."""
    month = _month(Journal.created_at)
    native = (
        select(month, owner.label("owner"))
        .select_from(Journal)
        .join(Entry, Entry.journal_id == Journal.id)
        .join(Account, Account.id == Entry.account_id)
        .where(
            Journal.region_id == region_id, Journal.created_at >= since, Journal.created_at < until,
            Journal.kind.in_(kinds), Account.kind == account_kind.value,
        )
    )
    m = ImportedMovement
    old = select(_month(m.occurred_at), imported_owner.label("owner")).where(
        *_imported(region_id, since, until, *imported_records))
    # UNION: each (month, owner) once. One statement reads the entries once for both counts
    # (the CTE, named twice, is computed once); the whole period's is the row without a month.
    touched = union(native, old).cte("touched")
    per_month = select(touched.c.month, func.count()).group_by(touched.c.month)
    total = select(literal(None, Date), func.count(distinct(touched.c.owner)))
    months: dict[date, int] = {}
    whole = 0
    for month, count in await session.execute(union_all(per_month, total)):
        if month is None:
            whole = count
        else:
            months[month] = count
    return months, whole


async def participants(
    session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime
) -> tuple[dict[date, int], int]:
    """Residents who took part (a top-up, payment, premium set or grant), per month and in all."""
    return await _holders(session, region_id, since, until, kinds=_PARTICIPATION, owner=Account.resident_id,
                          account_kind=AccountKind.RESIDENT, imported_records=_IMPORTED_PARTICIPATION,
                          imported_owner=ImportedMovement.resident_id)


async def trading_merchants(
    session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime
) -> tuple[dict[date, int], int]:
    """Merchants that took a payment or sent or received a transfer, per month and in all."""
    return await _holders(session, region_id, since, until, kinds=_TRADING, owner=Account.merchant_id,
                          account_kind=AccountKind.MERCHANT, imported_records=[Record.PAYMENT],
                          imported_owner=ImportedMovement.merchant_id)


async def imported_months(session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime) -> list[date]:
    """The Tokyo months in [since, until) holding movements imported from a previous platform."""
    m = ImportedMovement
    month = _month(m.occurred_at)
    query = select(month).where(*_imported(region_id, since, until, *MOVEMENTS)).group_by(month).order_by(month)
    return list((await session.execute(query)).scalars())


# The unused balance at an instant, whether before a history import or after it: the ledger's
# movements of residents' yen without the openings, plus the imported movements they carried over
# (an opening is the sum of its resident's imported movements, and every imported movement comes
# before the region's own first journal: see services/wallet/history).


def _native_yen(region_id: uuid.UUID, until: datetime) -> Any:
    return (
        select(Entry).join(Account, Account.id == Entry.account_id).join(Journal, Journal.id == Entry.journal_id)
        .where(Entry.region_id == region_id, Entry.created_at < until, Account.kind == AccountKind.RESIDENT.value,
               Account.unit == Unit.YEN.value, Journal.kind != JournalKind.OPENING.value)
    )


def _imported_yen(region_id: uuid.UUID, until: datetime) -> tuple[Any, Any]:
    """The conditions on imported movements of residents' yen before `until`, and each one's
    signed amount (what it did to its resident's wallet)."""
    m = ImportedMovement
    signed = case((m.record == Record.PAYMENT.value, -m.amount), else_=m.amount)
    return (m.region_id == region_id, m.unit == Unit.YEN.value, m.occurred_at < until), signed


async def resident_yen_by_kind(session: AsyncSession, region_id: uuid.UUID, until: datetime) -> list[Row[Any]]:
    """What journals of each kind, and imported movements of each kind (`imported_<record>`), did
    to residents' yen (paid-in value) before `until`, summed: the movements whose total is the
    unused balance then."""
    native = (
        _native_yen(region_id, until).with_only_columns(Journal.kind, func.count(distinct(Journal.id)),
                                                        func.sum(Entry.amount))
        .group_by(Journal.kind)
    )
    m = ImportedMovement
    where, signed = _imported_yen(region_id, until)
    kind = literal("imported_") + m.record
    old = select(kind, func.count(distinct(m.source_key)), func.sum(signed)).where(*where).group_by(m.record)
    both = union_all(native, old).subquery()
    return list(await session.execute(select(both).order_by(both.c[0])))


async def wallets_holding_yen(session: AsyncSession, region_id: uuid.UUID, until: datetime) -> int:
    """Residents whose yen movements before `until`, here and imported, sum to more than zero."""
    native = _native_yen(region_id, until).with_only_columns(Account.resident_id.label("resident"),
                                                             Entry.amount.label("amount"))
    where, signed = _imported_yen(region_id, until)
    old = select(ImportedMovement.resident_id, signed).where(*where)
    moved = union_all(native, old).subquery()
    held = select(moved.c.resident).group_by(moved.c.resident).having(func.sum(moved.c.amount) > 0).subquery()
    return (await session.execute(select(func.count()).select_from(held))).scalar_one()
