"""Reads of balances and movements, for residents, merchants, operators and auditors. Nothing here
changes state."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.campaigns import service as campaigns
from services.wallet.directory import service as directory
from services.wallet.directory.models import Merchant, Notice, Region
from services.wallet.history import service as imported
from services.wallet.history.models import ImportedMovement
from services.wallet.ledger import service as ledger
from services.wallet.ledger.models import Account, Entry, Journal, JournalKind, Lot
from services.wallet.statements import repository as repo
from shared.clock import Clock, tokyo_midnight
from shared.money import Unit

EXPIRING_SOON_DAYS = 30


@dataclass(frozen=True)
class LotView:
    lot: Lot
    campaign_name: str | None
    usable_now: bool


@dataclass(frozen=True)
class BalanceView:
    wallet: directory.Wallet
    lots: list[LotView]  # spending order
    usable: dict[str, int]  # per unit: what can pay now somewhere (not yet usable, expired excluded)
    expiring_soon: dict[str, int]  # per unit: what expires within EXPIRING_SOON_DAYS
    expiring_lots: list[LotView]


async def balance(session: AsyncSession, clock: Clock, wallet: directory.Wallet) -> BalanceView:
    """The wallet's balance lot by lot: what it is made of, where it may be spent, until when."""
    now = clock.now()
    soon = now + timedelta(days=EXPIRING_SOON_DAYS)
    names = await campaigns.campaign_names(session, wallet.region.id)
    views = []
    for lot in await ledger.live_lots(session, [wallet.account.id, wallet.points.id]):
        expired = lot.expires_at is not None and lot.expires_at <= now
        started = lot.usable_from is None or lot.usable_from <= now
        views.append(LotView(lot, names.get(lot.campaign_id) if lot.campaign_id else None, started and not expired))
    usable = {unit.value: 0 for unit in Unit}
    expiring = {unit.value: 0 for unit in Unit}
    expiring_lots = []
    for view in views:
        if view.usable_now:
            usable[view.lot.unit] += view.lot.remaining
            if view.lot.expires_at is not None and view.lot.expires_at <= soon:
                expiring[view.lot.unit] += view.lot.remaining
                expiring_lots.append(view)
    return BalanceView(wallet, views, usable, expiring, expiring_lots)


async def history(
    session: AsyncSession, accounts: Sequence[Account], *, after_id: uuid.UUID | None, limit: int, **filters: Any
) -> list[tuple[Entry, Journal]]:
    """The movements of a holder's accounts (coin and points), newest first, filtered by journal
    kind and period."""
    return await ledger.history(session, [a.id for a in accounts], after_id=after_id, limit=limit, **filters)


@dataclass(frozen=True)
class HistoryLine:
    """One movement of a wallet: an entry of the ledger, or a movement imported from a previous
    platform (`imported`: no journal here, no running balance; `reference` is its old id)."""

    id: uuid.UUID  # the entry's, or the imported row's: one order, newest first, for the cursor
    journal_id: uuid.UUID | None
    kind: str
    unit: str
    amount: int
    balance_after: int | None
    reference: str | None
    memo: str | None
    created_at: datetime
    imported: bool

    @classmethod
    def of_entry(cls, entry: Entry, journal: Journal) -> HistoryLine:
        return cls(entry.id, journal.id, journal.kind, entry.unit, entry.amount, entry.balance_after,
                   journal.reference, journal.memo, entry.created_at, False)


def _with_imported(lines: list[HistoryLine], rows: Sequence[ImportedMovement], amount: Callable[[ImportedMovement], int],
                   limit: int) -> list[HistoryLine]:
    """Entries here and imported rows (older than all of them) in one order by id, newest first."""
    lines = lines + [
        HistoryLine(r.id, None, r.record, r.unit, amount(r), None, r.source_key, r.memo, r.occurred_at, True)
        for r in rows
    ]
    return sorted(lines, key=lambda line: line.id, reverse=True)[:limit]


async def wallet_history(
    session: AsyncSession, wallet: directory.Wallet, *, after_id: uuid.UUID | None, limit: int, **filters: Any
) -> list[HistoryLine]:
    """The wallet's movements, newest first: its entries here and, older than all of them, what
    the resident did on a previous platform (imported), in one order by id."""
    entries = await history(session, [wallet.account, wallet.points], after_id=after_id, limit=limit, **filters)
    lines = [HistoryLine.of_entry(e, j) for e, j in entries]
    if len(lines) == limit:
        return lines
    rows = await imported.movements(session, resident_id=wallet.resident.id, after_id=after_id, limit=limit, **filters)
    return _with_imported(lines, rows, lambda r: imported.signed(r.record, r.amount), limit)


async def merchant_history(
    session: AsyncSession, merchant: Merchant, *, after_id: uuid.UUID | None, limit: int, **filters: Any,
) -> list[HistoryLine]:
    """The merchant's movements, newest first: its entries here, then the payments and refunds it
    had on a previous platform (imported), net of their fees."""
    accounts = await directory.merchant_accounts(session, merchant.id)
    lines = [HistoryLine.of_entry(e, j) for e, j in await history(session, accounts, after_id=after_id, limit=limit, **filters)]
    if len(lines) == limit:
        return lines
    rows = await imported.movements(session, merchant_id=merchant.id, after_id=after_id, limit=limit, **filters)
    return _with_imported(lines, rows, imported.merchant_signed, limit)


# --- system accounts and verification ---------------------------------------------------------


async def system_balances(session: AsyncSession, region: Region) -> list[tuple[Account, int]]:
    return [(a, await ledger.entries_sum(session, a.id)) for a in await ledger.system_accounts(session, region.id)]


async def notices(session: AsyncSession, wallet: directory.Wallet, *, after_id: uuid.UUID | None, limit: int) -> list[Notice]:
    return await directory.notices(session, wallet.resident.id, after_id=after_id, limit=limit)


# --- a region's activity, for the city's KPI report ----------------------------------------------


@dataclass(frozen=True)
class SalesDay:
    day: date  # Tokyo
    sector: str  # the merchants' sector
    payments: int
    amount: int  # what residents paid, coin and points
    fee: int  # the fee charged on it


@dataclass(frozen=True)
class RefundDay:
    day: date  # of the refund, Tokyo: a refund counts on its own date
    paid_on: date  # of the payment it gave back (whose fee and baseline rate it reverses)
    sector: str
    refunds: int
    amount: int
    fee_returned: int


@dataclass(frozen=True)
class MonthActivity:
    month: date  # its first day
    grants: int  # point grants made and their points
    granted: int
    transfers: int  # merchant-to-merchant transfers and their yen
    transferred: int
    payouts: int  # payouts to merchants' banks and their yen
    paid_out: int
    participants: int  # distinct residents who took part that month
    merchants: int  # distinct merchants that traded that month


@dataclass(frozen=True)
class Activity:
    sales: list[SalesDay]
    refunds: list[RefundDay]
    months: list[MonthActivity]  # every month of the period, in order, zeros included
    participants: int  # distinct over the whole period
    merchants: int
    imported_months: list[date]  # the months whose figures include imported history


def _months(since: date, until: date) -> list[date]:
    months, month = [], since.replace(day=1)
    while month < until:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return months


async def activity(session: AsyncSession, region_id: uuid.UUID, *, since: date, until: date) -> Activity:
    """The region's payments, refunds, grants, transfers, payouts, participants and trading
    merchants in the Tokyo days [since, until), grouped by the database: what happened here and
    what was imported from a previous platform, whose months are named."""
    start, end = tokyo_midnight(since), tokyo_midnight(until)
    sales = [SalesDay(*row) for row in await repo.payment_days(session, region_id, start, end)]
    refunds = [RefundDay(*row) for row in await repo.refund_days(session, region_id, start, end)]
    grants = {row[0]: (row[1], row[2]) for row in await repo.grant_months(session, region_id, start, end)}
    journals = {(row[0], row[1]): (row[2], row[3]) for row in await repo.journal_months(session, region_id, start, end)}
    residents, participants = await repo.participants(session, region_id, start, end)
    traders, merchants = await repo.trading_merchants(session, region_id, start, end)
    months = [
        MonthActivity(
            month, *grants.get(month, (0, 0)), *journals.get((month, JournalKind.TRANSFER.value), (0, 0)),
            *journals.get((month, JournalKind.PAYOUT.value), (0, 0)), residents.get(month, 0), traders.get(month, 0),
        )
        for month in _months(since, until)
    ]
    imported_months = await repo.imported_months(session, region_id, start, end)
    return Activity(sales, refunds, months, participants, merchants, imported_months)


# --- the unused balance at a base date ---------------------------------------------------------------


@dataclass(frozen=True)
class KindTotal:
    kind: str  # a journal kind (topup, payment, refund, premium, expiry, cashout …) or imported_<record>
    journals: int
    amount: int  # what those journals did to residents' yen (+ in, − out)


@dataclass(frozen=True)
class UnusedBalance:
    at: datetime  # the instant it is measured at (the end of the base date)
    amount: int  # residents' yen (paid-in value) not yet used; points (free value) are not in it
    wallets: int  # residents' wallets holding some of it
    movements: list[KindTotal]  # what it was computed from: they sum to `amount`


async def unused_balance(session: AsyncSession, region_id: uuid.UUID, at: datetime) -> UnusedBalance:
    """The region's unused paid-in balance (未使用残高) at the instant `at`, from the entries
    before it: a balance as it stood then, whatever moved since."""
    movements = [KindTotal(*row) for row in await repo.resident_yen_by_kind(session, region_id, at)]
    wallets = await repo.wallets_holding_yen(session, region_id, at)
    return UnusedBalance(at, sum(m.amount for m in movements), wallets, movements)
