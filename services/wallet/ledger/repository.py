"""Every SQL query of the ledger: accounts, journals and entries, lots, and the checks of the
ledger's invariants. Set-based, few round trips on the money path."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.ledger.models import (
    ISSUANCE_JOURNALS,
    ISSUANCE_KINDS,
    JOURNAL_LEGS,
    REDEMPTION_LEGS,
    Account,
    AccountKind,
    Entry,
    Journal,
    JournalKind,
    Lot,
)

# --- accounts ---------------------------------------------------------------------------------


async def insert_account(session: AsyncSession, **values: Any) -> Account:
    return (await session.execute(insert(Account).values(**values).returning(Account))).scalar_one()


async def account(session: AsyncSession, account_id: uuid.UUID) -> Account | None:
    return await session.get(Account, account_id)


async def accounts(session: AsyncSession, account_ids: Sequence[uuid.UUID]) -> list[Account]:
    query = select(Account).where(Account.id.in_(account_ids)).order_by(Account.id)
    return list((await session.execute(query.execution_options(populate_existing=True))).scalars())


async def system_account(session: AsyncSession, region_id: uuid.UUID, kind: AccountKind, unit: str) -> Account:
    query = select(Account).where(
        Account.region_id == region_id,
        Account.kind == kind.value,
        Account.unit == unit,
        Account.resident_id.is_(None),
        Account.merchant_id.is_(None),
        Account.campaign_id.is_(None),
        Account.sponsor_id.is_(None),
    )
    return (await session.execute(query)).scalar_one()


async def system_accounts(session: AsyncSession, region_id: uuid.UUID) -> list[Account]:
    query = select(Account).where(
        Account.region_id == region_id, Account.resident_id.is_(None), Account.merchant_id.is_(None),
        Account.campaign_id.is_(None), Account.sponsor_id.is_(None),
    )
    return list((await session.execute(query.order_by(Account.kind, Account.unit))).scalars())


async def update_account_status(session: AsyncSession, account_id: uuid.UUID, status: str) -> Account:
    result = await session.execute(
        update(Account).where(Account.id == account_id).values(status=status).returning(Account)
    )
    return result.scalar_one()


# --- lots -------------------------------------------------------------------------------------


async def insert_lot(session: AsyncSession, **values: Any) -> Lot:
    return (await session.execute(insert(Lot).values(**values).returning(Lot))).scalar_one()


def _usable(now: datetime) -> list[Any]:
    return [
        Lot.remaining > 0,
        or_(Lot.usable_from.is_(None), Lot.usable_from <= now),
        or_(Lot.expires_at.is_(None), Lot.expires_at > now),
    ]


# The spending order, as wallet.pay sorts too: wallet.spending_key (services/wallet/ledger/sql/spending_key.sql).
SPENDING_ORDER = func.wallet.spending_key(Lot.__table__.table_valued())


async def usable_lots(
    session: AsyncSession, account_ids: Sequence[uuid.UUID], *, now: datetime, merchant_class: str | None,
    unrestricted_only: bool = False,
) -> list[Lot]:
    """Lots that may be spent now, in spending order: at a merchant of `merchant_class`, or with
    no merchant (None: restrictions do not apply; `unrestricted_only` keeps only free lots)."""
    conditions = [Lot.account_id.in_(account_ids), *_usable(now)]
    if merchant_class is not None:
        conditions.append(or_(Lot.restriction.is_(None), Lot.restriction.any(merchant_class)))
    if unrestricted_only:
        conditions.append(Lot.restriction.is_(None))
    return list((await session.execute(select(Lot).where(*conditions).order_by(SPENDING_ORDER))).scalars())


async def live_lots(session: AsyncSession, account_ids: Sequence[uuid.UUID]) -> list[Lot]:
    """Every lot with something left, usable or not, in spending order."""
    query = select(Lot).where(Lot.account_id.in_(account_ids), Lot.remaining > 0).order_by(SPENDING_ORDER)
    return list((await session.execute(query)).scalars())


async def change_lot_remaining(session: AsyncSession, lot_id: uuid.UUID, delta: int, expired: int = 0) -> None:
    await session.execute(
        update(Lot).where(Lot.id == lot_id).values(remaining=Lot.remaining + delta, expired=Lot.expired + expired)
    )


async def expired_lots(session: AsyncSession, region_id: uuid.UUID, cutoff: datetime, limit: int) -> list[Lot]:
    """Lots of the region that have expired by `cutoff` and still hold something, a batch at a time."""
    query = (
        select(Lot)
        .where(Lot.region_id == region_id, Lot.remaining > 0, Lot.expires_at <= cutoff)
        .order_by(Lot.account_id, Lot.id)
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(query)).scalars())


async def lots_expiring_between(
    session: AsyncSession, region_id: uuid.UUID, after: datetime, until: datetime
) -> list[tuple[Lot, uuid.UUID]]:
    """Lots with something left that expire in (after, until], with their resident."""
    query = (
        select(Lot, Account.resident_id)
        .join(Account, Account.id == Lot.account_id)
        .where(Lot.region_id == region_id, Lot.remaining > 0, Lot.expires_at > after, Lot.expires_at <= until)
        .order_by(Lot.expires_at, Lot.id)
    )
    return [(row[0], row[1]) for row in await session.execute(query)]


async def lot(session: AsyncSession, lot_id: uuid.UUID) -> Lot | None:
    return await session.get(Lot, lot_id, populate_existing=True)


# --- the ledger -------------------------------------------------------------------------------


async def apply_to_tracked(
    session: AsyncSession, account_id: uuid.UUID, delta: int, ceiling: int | None, *, even_if_inactive: bool = False
) -> int | None:
    """Atomic check-and-apply on a balance-tracking account; None if it would overdraw the
    account, pass the ceiling, or the account is not active (unless `even_if_inactive`). The row
    lock lasts to commit."""
    conditions = [Account.id == account_id]
    if not even_if_inactive:
        conditions.append(Account.status == "active")
    if delta < 0:
        conditions.append(or_(Account.may_go_negative, Account.balance + delta >= 0))
    if ceiling is not None and delta > 0:
        conditions.append(Account.balance + delta <= ceiling)
    result = await session.execute(
        update(Account).where(*conditions).values(balance=Account.balance + delta).returning(Account.balance)
    )
    return result.scalar_one_or_none()


async def lock_accounts(session: AsyncSession, account_ids: Sequence[uuid.UUID]) -> None:
    """Lock balance-tracking accounts in id order, the order every posting locks in."""
    await session.execute(select(Account.id).where(Account.id.in_(account_ids)).order_by(Account.id).with_for_update())


async def lock_available(session: AsyncSession, account: Account) -> int:
    """Lock an account against other debits and return what it holds."""
    if account.tracks_balance:
        query = select(Account.balance).where(Account.id == account.id).with_for_update()
        return (await session.execute(query)).scalar_one()
    return await lock_and_sum(session, account.id)


async def lock_and_sum(session: AsyncSession, account_id: uuid.UUID) -> int:
    """Lock an untracked account against other debits and return its balance (sum of entries).
    Credits take no lock, so they may land meanwhile; they only raise the balance."""
    await session.execute(select(Account.id).where(Account.id == account_id).with_for_update())
    return await entries_sum(session, account_id)


async def entries_sum(session: AsyncSession, account_id: uuid.UUID) -> int:
    query = select(func.coalesce(func.sum(Entry.amount), 0)).where(Entry.account_id == account_id)
    return int((await session.execute(query)).scalar_one())


async def insert_journal(session: AsyncSession, journal: dict[str, Any], entries: Sequence[dict[str, Any]]) -> None:
    await session.execute(insert(Journal).values(**journal))
    await session.execute(insert(Entry).values(list(entries)))


async def history(
    session: AsyncSession,
    account_ids: Sequence[uuid.UUID],
    *,
    after_id: uuid.UUID | None,
    limit: int,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[tuple[Entry, Journal]]:
    query = select(Entry, Journal).join(Journal, Journal.id == Entry.journal_id).where(Entry.account_id.in_(account_ids))
    if after_id is not None:
        query = query.where(Entry.id < after_id)
    if kind is not None:
        query = query.where(Journal.kind == kind)
    if since is not None:
        query = query.where(Entry.created_at >= since)
    if until is not None:
        query = query.where(Entry.created_at < until)
    rows = await session.execute(query.order_by(Entry.id.desc()).limit(limit))
    return [(r[0], r[1]) for r in rows]


# --- verification (invariants 1–4 over the whole ledger, or one region) ------------------------


@dataclass(frozen=True)
class Violation:
    invariant: int | str  # 1–4 (DESIGN.md), or "payments": a payment's record against its journals
    subject: str  # "journal <id>", "account <id>" or "payment <id>"
    detail: str


Rows = Callable[[str, str], Awaitable[Sequence[Any]]]


def violation_rows(session: AsyncSession, region_id: uuid.UUID | None) -> Rows:
    """Runs a check's query, its `{region}` replaced by a filter on the table `alias` (nothing for
    the whole ledger)."""
    params = {"region_id": region_id}
    region_filter = "AND {alias}.region_id = :region_id" if region_id is not None else ""

    async def rows(sql: str, alias: str) -> Sequence[Any]:
        return (await session.execute(text(sql.format(region=region_filter.format(alias=alias))), params)).all()

    return rows


async def find_violations(session: AsyncSession, region_id: uuid.UUID | None = None) -> list[Violation]:
    """The ledger's own invariants (1–4). What other modules record against the ledger they
    check themselves (services/wallet/verify.py puts them together)."""
    rows = violation_rows(session, region_id)
    found: list[Violation] = []

    # 1. Double entry: every journal has two or more entries summing to zero per unit, and every
    #    entry's unit and region are those of its account.
    for journal_id, unit, total in await rows(
        "SELECT e.journal_id, e.unit, sum(e.amount)::bigint FROM wallet.entries e WHERE true {region} "
        "GROUP BY e.journal_id, e.unit HAVING sum(e.amount) <> 0",
        "e",
    ):
        found.append(Violation(1, f"journal {journal_id}", f"{unit} entries sum to {total}, not 0"))
    for journal_id, count in await rows(
        "SELECT j.id, count(e.id) FROM wallet.journals j LEFT JOIN wallet.entries e ON e.journal_id = j.id "
        "WHERE true {region} GROUP BY j.id HAVING count(e.id) < 2",
        "j",
    ):
        found.append(Violation(1, f"journal {journal_id}", f"has {count} entries; a transfer needs two or more"))
    for entry_id, journal_id, account_id in await rows(
        "SELECT e.id, e.journal_id, e.account_id FROM wallet.entries e JOIN wallet.accounts a ON a.id = e.account_id "
        "WHERE (e.unit <> a.unit OR e.region_id <> a.region_id) {region}",
        "e",
    ):
        found.append(
            Violation(1, f"journal {journal_id}", f"entry {entry_id} differs in unit or region from account {account_id}")
        )

    # 2. An account's balance equals the sum of its entries; the history's running balance too.
    for account_id, balance, total in await rows(
        "SELECT a.id, a.balance, coalesce(s.total, 0) FROM wallet.accounts a "
        "LEFT JOIN (SELECT account_id, sum(amount)::bigint AS total FROM wallet.entries GROUP BY account_id) s "
        "ON s.account_id = a.id WHERE a.tracks_balance AND a.balance <> coalesce(s.total, 0) {region}",
        "a",
    ):
        found.append(Violation(2, f"account {account_id}", f"balance {balance} but entries sum to {total}"))
    for account_id, entry_id, recorded, running in await rows(
        "SELECT account_id, id, balance_after, running FROM ("
        "  SELECT e.account_id, e.id, e.balance_after,"
        "         (sum(e.amount) OVER (PARTITION BY e.account_id ORDER BY e.seq))::bigint AS running"
        "  FROM wallet.entries e JOIN wallet.accounts a ON a.id = e.account_id"
        "  WHERE a.tracks_balance {region}) r "
        "WHERE balance_after IS DISTINCT FROM running",
        "a",
    ):
        found.append(
            Violation(2, f"account {account_id}", f"entry {entry_id} records balance {recorded}, entries give {running}")
        )

    # 2. A wallet account's balance is the sum of what is left in its lots.
    for account_id, balance, total in await rows(
        "SELECT a.id, a.balance, coalesce(l.total, 0) FROM wallet.accounts a "
        "LEFT JOIN (SELECT account_id, sum(remaining)::bigint AS total FROM wallet.lots GROUP BY account_id) l "
        "ON l.account_id = a.id WHERE a.kind = 'resident' AND a.balance <> coalesce(l.total, 0) {region}",
        "a",
    ):
        found.append(Violation(2, f"account {account_id}", f"balance {balance} but its lots hold {total}"))

    # 3. No account that may not go negative is below zero.
    for account_id, kind, total in await rows(
        "SELECT a.id, a.kind, coalesce(sum(e.amount), 0)::bigint FROM wallet.accounts a "
        "LEFT JOIN wallet.entries e ON e.account_id = a.id WHERE NOT a.may_go_negative {region} "
        "GROUP BY a.id, a.kind HAVING coalesce(sum(e.amount), 0) < 0",
        "a",
    ):
        found.append(Violation(3, f"account {account_id}", f"{kind} account is at {total}, below zero"))

    # 4. Value enters or leaves circulation only through issuance journals on issuance accounts.
    issuance_kinds = ", ".join(f"'{k.value}'" for k in ISSUANCE_KINDS)
    issuance_journals = ", ".join(f"'{k.value}'" for k in ISSUANCE_JOURNALS)
    for journal_id, kind, account_id, account_kind in await rows(
        "SELECT j.id, j.kind, a.id, a.kind FROM wallet.journals j "
        "JOIN wallet.entries e ON e.journal_id = j.id JOIN wallet.accounts a ON a.id = e.account_id "
        f"WHERE a.kind IN ({issuance_kinds}) AND j.kind NOT IN ({issuance_journals}) {{region}}",
        "j",
    ):
        found.append(
            Violation(4, f"journal {journal_id}", f"a {kind} journal touches {account_kind} account {account_id}")
        )
    for journal_id, kind in await rows(
        "SELECT j.id, j.kind FROM wallet.journals j WHERE j.kind IN "
        f"({issuance_journals}) {{region}} AND NOT EXISTS (SELECT 1 FROM wallet.entries e "
        f"JOIN wallet.accounts a ON a.id = e.account_id WHERE e.journal_id = j.id AND a.kind IN ({issuance_kinds}))",
        "j",
    ):
        found.append(Violation(4, f"journal {journal_id}", f"a {kind} journal touches no issuance account"))

    # 4. A payout takes a merchant's yen to bank clearing; a sponsor's credit (or its reversal)
    #    moves yen between a sponsor budget and a merchant: one entry from each, nothing else.
    for kind, (giver, gainer) in JOURNAL_LEGS.items():
        for journal_id, shape in await rows(
            "SELECT j.id, string_agg(a.kind || CASE WHEN e.amount > 0 THEN ' +' ELSE ' -' END || e.unit, ', '"
            " ORDER BY e.amount) FROM wallet.journals j JOIN wallet.entries e ON e.journal_id = j.id"
            " JOIN wallet.accounts a ON a.id = e.account_id"
            f" WHERE j.kind = '{kind.value}' {{region}} GROUP BY j.id"
            f" HAVING string_agg(a.kind || CASE WHEN e.amount > 0 THEN ' +' ELSE ' -' END || e.unit, ', '"
            f" ORDER BY e.amount) <> '{giver.value} -yen, {gainer.value} +yen'",
            "j",
        ):
            found.append(Violation(4, f"journal {journal_id}", f"a {kind} journal moves {shape}, not {giver} to {gainer} in yen"))

    # 4. A point redemption retires one merchant's N points to the campaign fund and the fund pays
    #    it N yen: four entries, one per account kind, unit and sign, all of one amount.
    expected = ", ".join(f"{k.value} {'+' if sign > 0 else '-'}{u.value}"
                         for k, u, sign in sorted(REDEMPTION_LEGS, key=lambda leg: (leg[0].value, leg[1].value)))
    for journal_id, shape, amounts, merchants in await rows(
        "SELECT j.id, string_agg(a.kind || CASE WHEN e.amount > 0 THEN ' +' ELSE ' -' END || e.unit, ', '"
        " ORDER BY a.kind, e.unit), count(DISTINCT abs(e.amount)), count(DISTINCT a.merchant_id)"
        " FROM wallet.journals j JOIN wallet.entries e ON e.journal_id = j.id"
        " JOIN wallet.accounts a ON a.id = e.account_id"
        f" WHERE j.kind = '{JournalKind.POINT_REDEMPTION.value}' {{region}} GROUP BY j.id"
        " HAVING string_agg(a.kind || CASE WHEN e.amount > 0 THEN ' +' ELSE ' -' END || e.unit, ', '"
        f" ORDER BY a.kind, e.unit) <> '{expected}' OR count(DISTINCT abs(e.amount)) <> 1"
        " OR count(DISTINCT a.merchant_id) <> 1",
        "j",
    ):
        found.append(Violation(4, f"journal {journal_id}", f"a point redemption moves {shape} ({amounts} amounts, "
                                                          f"{merchants} merchants), not {expected} of one amount"))

    return found


async def ledger_totals(session: AsyncSession, region_id: uuid.UUID | None = None) -> tuple[int, int]:
    journals = select(func.count()).select_from(Journal)
    accounts = select(func.count()).select_from(Account)
    if region_id is not None:
        journals = journals.where(Journal.region_id == region_id)
        accounts = accounts.where(Account.region_id == region_id)
    return int((await session.execute(journals)).scalar_one()), int((await session.execute(accounts)).scalar_one())
