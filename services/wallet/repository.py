"""Every SQL query of the wallet service. Set-based, few round trips on the money path."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.ids import new_id
from services.wallet.models import (
    Account,
    AccountKind,
    ApiKey,
    BankEvent,
    Campaign,
    Entry,
    ExpiryRun,
    ISSUANCE_JOURNALS,
    ISSUANCE_KINDS,
    Journal,
    Lot,
    Merchant,
    Notice,
    Region,
    Resident,
)

# --- regions ----------------------------------------------------------------------------------


async def region_by_code(session: AsyncSession, code: str) -> Region | None:
    return (await session.execute(select(Region).where(Region.code == code))).scalar_one_or_none()


async def regions(session: AsyncSession) -> list[Region]:
    return list((await session.execute(select(Region).order_by(Region.code))).scalars())


async def region_by_id(session: AsyncSession, region_id: uuid.UUID) -> Region:
    region = await session.get(Region, region_id)
    assert region is not None, f"region {region_id} exists (foreign keys guarantee it)"
    return region


async def insert_region(session: AsyncSession, **values: Any) -> Region | None:
    """None if the code is taken: a concurrent insert of the same code waits for the first to
    commit or roll back, then finds the code taken or not."""
    query = pg_insert(Region).values(**values).on_conflict_do_nothing(index_elements=[Region.code]).returning(Region)
    return (await session.execute(query)).scalar_one_or_none()


async def regions_page(session: AsyncSession, *, after_id: uuid.UUID | None, limit: int) -> list[Region]:
    """Newest first; `after_id` is the cursor (ids are time-ordered)."""
    query = select(Region)
    if after_id is not None:
        query = query.where(Region.id < after_id)
    return list((await session.execute(query.order_by(Region.id.desc()).limit(limit))).scalars())


async def update_region(session: AsyncSession, region_id: uuid.UUID, **values: Any) -> Region:
    result = await session.execute(update(Region).where(Region.id == region_id).values(**values).returning(Region))
    return result.scalar_one()


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
    )
    return (await session.execute(query)).scalar_one()


async def system_accounts(session: AsyncSession, region_id: uuid.UUID) -> list[Account]:
    query = select(Account).where(
        Account.region_id == region_id, Account.resident_id.is_(None), Account.merchant_id.is_(None),
        Account.campaign_id.is_(None),
    )
    return list((await session.execute(query.order_by(Account.kind, Account.unit))).scalars())


async def update_account_status(session: AsyncSession, account_id: uuid.UUID, status: str) -> Account:
    result = await session.execute(
        update(Account).where(Account.id == account_id).values(status=status).returning(Account)
    )
    return result.scalar_one()


# --- residents --------------------------------------------------------------------------------


async def update_resident_household(session: AsyncSession, resident_id: uuid.UUID, household: str | None) -> Resident:
    result = await session.execute(
        update(Resident).where(Resident.id == resident_id).values(household=household).returning(Resident)
    )
    return result.scalar_one()


async def resident_wallet(
    session: AsyncSession, region_id: uuid.UUID, subject: str, unit: str
) -> tuple[Resident, Account] | None:
    query = (
        select(Resident, Account)
        .join(Account, and_(Account.resident_id == Resident.id, Account.unit == unit))
        .where(Resident.region_id == region_id, Resident.subject == subject)
    )
    row = (await session.execute(query)).first()
    return (row[0], row[1]) if row else None


async def resident_account(session: AsyncSession, resident_id: uuid.UUID, unit: str) -> Account:
    query = select(Account).where(Account.resident_id == resident_id, Account.unit == unit)
    return (await session.execute(query)).scalar_one()


async def resident_accounts(session: AsyncSession, resident_ids: Sequence[uuid.UUID], unit: str) -> dict[uuid.UUID, Account]:
    query = select(Account).where(Account.resident_id.in_(resident_ids), Account.unit == unit)
    return {a.resident_id: a for a in (await session.execute(query)).scalars() if a.resident_id is not None}


async def ensure_resident(session: AsyncSession, region_id: uuid.UUID, subject: str, now: datetime) -> uuid.UUID:
    """The resident's id, creating the row if this is their first call (race-safe)."""
    created = await session.execute(
        pg_insert(Resident)
        .values(id=new_id(), region_id=region_id, subject=subject, created_at=now)
        .on_conflict_do_nothing(index_elements=[Resident.region_id, Resident.subject])
        .returning(Resident.id)
    )
    resident_id = created.scalar_one_or_none()
    if resident_id is not None:
        return resident_id
    query = select(Resident.id).where(Resident.region_id == region_id, Resident.subject == subject)
    return (await session.execute(query)).scalar_one()


async def ensure_resident_account(session: AsyncSession, **values: Any) -> None:
    await session.execute(
        pg_insert(Account)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[Account.resident_id, Account.unit], index_where=text("resident_id IS NOT NULL"))
    )


async def resident_wallets(
    session: AsyncSession, region_id: uuid.UUID, *, subject: str | None, after_id: uuid.UUID | None, limit: int
) -> list[tuple[Resident, Account]]:
    query = (
        select(Resident, Account)
        .join(Account, and_(Account.resident_id == Resident.id, Account.unit == "yen"))
        .where(Resident.region_id == region_id)
    )
    if subject is not None:
        query = query.where(Resident.subject == subject)
    if after_id is not None:
        query = query.where(Account.id < after_id)
    rows = await session.execute(query.order_by(Account.id.desc()).limit(limit))
    return [(r[0], r[1]) for r in rows]


async def wallet(session: AsyncSession, account_id: uuid.UUID) -> tuple[Resident, Account] | None:
    query = (
        select(Resident, Account)
        .join(Account, Account.resident_id == Resident.id)
        .where(Account.id == account_id, Account.unit == "yen")
    )
    row = (await session.execute(query)).first()
    return (row[0], row[1]) if row else None


# --- merchants --------------------------------------------------------------------------------


async def insert_merchant(session: AsyncSession, **values: Any) -> Merchant:
    return (await session.execute(insert(Merchant).values(**values).returning(Merchant))).scalar_one()


async def merchant(session: AsyncSession, merchant_id: uuid.UUID) -> Merchant | None:
    return await session.get(Merchant, merchant_id)


async def merchant_by_name(session: AsyncSession, region_id: uuid.UUID, name: str) -> Merchant | None:
    query = select(Merchant).where(Merchant.region_id == region_id, Merchant.name == name)
    return (await session.execute(query)).scalar_one_or_none()


async def merchants(
    session: AsyncSession, region_id: uuid.UUID, *, after_id: uuid.UUID | None, limit: int
) -> list[Merchant]:
    query = select(Merchant).where(Merchant.region_id == region_id)
    if after_id is not None:
        query = query.where(Merchant.id < after_id)
    return list((await session.execute(query.order_by(Merchant.id.desc()).limit(limit))).scalars())


async def update_merchant(session: AsyncSession, merchant_id: uuid.UUID, **values: Any) -> Merchant:
    result = await session.execute(
        update(Merchant).where(Merchant.id == merchant_id).values(**values).returning(Merchant)
    )
    return result.scalar_one()


async def merchant_accounts(session: AsyncSession, merchant_id: uuid.UUID) -> list[Account]:
    query = select(Account).where(Account.merchant_id == merchant_id).order_by(Account.unit.desc())  # yen, point
    return list((await session.execute(query)).scalars())


async def merchant_account(session: AsyncSession, merchant_id: uuid.UUID, unit: str) -> Account:
    query = select(Account).where(Account.merchant_id == merchant_id, Account.unit == unit)
    return (await session.execute(query)).scalar_one()


async def set_merchant_accounts_status(session: AsyncSession, merchant_id: uuid.UUID, status: str) -> None:
    await session.execute(update(Account).where(Account.merchant_id == merchant_id).values(status=status))


# --- notices ----------------------------------------------------------------------------------


async def insert_notice(
    session: AsyncSession, *, id: uuid.UUID, region_id: uuid.UUID, resident_id: uuid.UUID, kind: str,
    payload: dict[str, Any], created_at: datetime, lot_id: uuid.UUID | None = None,
) -> bool:
    """Record a notice for the resident's app; False if this lot already has a notice of this kind."""
    statement = (
        pg_insert(Notice)
        .values(id=id, region_id=region_id, resident_id=resident_id, kind=kind, lot_id=lot_id, payload=payload,
                created_at=created_at)
        .on_conflict_do_nothing(index_elements=["lot_id", "kind"], index_where=Notice.lot_id.is_not(None))
        .returning(Notice.id)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


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


async def campaign_names(session: AsyncSession, region_id: uuid.UUID) -> dict[uuid.UUID, str]:
    rows = await session.execute(select(Campaign.id, Campaign.name).where(Campaign.region_id == region_id))
    return {row.id: row.name for row in rows}


async def notices(
    session: AsyncSession, resident_id: uuid.UUID, *, after_id: uuid.UUID | None, limit: int
) -> list[Notice]:
    query = select(Notice).where(Notice.resident_id == resident_id)
    if after_id is not None:
        query = query.where(Notice.id < after_id)
    return list((await session.execute(query.order_by(Notice.id.desc()).limit(limit))).scalars())


# --- expiry runs ------------------------------------------------------------------------------


async def start_expiry_run(session: AsyncSession, **values: Any) -> None:
    await session.execute(pg_insert(ExpiryRun).values(**values).on_conflict_do_nothing())


async def lock_expiry_run(session: AsyncSession, region_id: uuid.UUID, as_of: date) -> ExpiryRun:
    query = (
        select(ExpiryRun)
        .where(ExpiryRun.region_id == region_id, ExpiryRun.as_of == as_of)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalar_one()


async def update_expiry_run(session: AsyncSession, region_id: uuid.UUID, as_of: date, **values: Any) -> ExpiryRun:
    query = (
        update(ExpiryRun)
        .where(ExpiryRun.region_id == region_id, ExpiryRun.as_of == as_of)
        .values(**values)
        .returning(ExpiryRun)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalar_one()


async def expiry_runs_on(session: AsyncSession, as_of: date) -> list[ExpiryRun]:
    return list((await session.execute(select(ExpiryRun).where(ExpiryRun.as_of == as_of))).scalars())


async def expiry_runs(session: AsyncSession, region_id: uuid.UUID, *, before: date | None, limit: int) -> list[ExpiryRun]:
    query = select(ExpiryRun).where(ExpiryRun.region_id == region_id)
    if before is not None:
        query = query.where(ExpiryRun.as_of < before)
    return list((await session.execute(query.order_by(ExpiryRun.as_of.desc()).limit(limit))).scalars())


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


async def insert_bank_event(session: AsyncSession, **values: Any) -> bool:
    """False when the event id was already processed (a replay)."""
    result = await session.execute(
        pg_insert(BankEvent).values(**values).on_conflict_do_nothing().returning(BankEvent.id)
    )
    return result.scalar_one_or_none() is not None


# --- API keys ---------------------------------------------------------------------------------


async def insert_api_key(session: AsyncSession, **values: Any) -> ApiKey:
    return (await session.execute(insert(ApiKey).values(**values).returning(ApiKey))).scalar_one()


async def api_keys(session: AsyncSession, merchant_id: uuid.UUID) -> list[ApiKey]:
    query = select(ApiKey).where(ApiKey.merchant_id == merchant_id).order_by(ApiKey.id.desc())
    return list((await session.execute(query)).scalars())


async def api_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def revoke_api_key(session: AsyncSession, key_id: uuid.UUID, at: datetime) -> ApiKey:
    result = await session.execute(
        update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=func.coalesce(ApiKey.revoked_at, at)).returning(ApiKey)
    )
    return result.scalar_one()


async def active_api_key(session: AsyncSession, secret_hash: str) -> tuple[ApiKey, str] | None:
    """The unrevoked key with this hash and its region's code."""
    query = (
        select(ApiKey, Region.code)
        .join(Region, Region.id == ApiKey.region_id)
        .where(ApiKey.secret_hash == secret_hash, ApiKey.revoked_at.is_(None))
    )
    row = (await session.execute(query)).first()
    return (row[0], row[1]) if row else None


# --- verification (invariants 1–4 over the whole ledger, or one region) ------------------------


@dataclass(frozen=True)
class Violation:
    invariant: int | str  # 1–4 (DESIGN.md), or "payments": a payment's record against its journals
    subject: str  # "journal <id>", "account <id>" or "payment <id>"
    detail: str


async def find_violations(session: AsyncSession, region_id: uuid.UUID | None = None) -> list[Violation]:
    params = {"region_id": region_id}
    region_filter = "AND {alias}.region_id = :region_id" if region_id is not None else ""
    found: list[Violation] = []

    async def rows(sql: str, alias: str) -> Sequence[Any]:
        return (await session.execute(text(sql.format(region=region_filter.format(alias=alias))), params)).all()

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

    found += await _payment_violations(rows)
    return found


# What a payment's row says it moved must be what its journals moved, and its refunds must follow
# the documented rules (services/wallet/payments/service.py: fee back pro rata on the running
# totals; campaigns/rewards.py: the refunded share of the reward taken back). Sums per journal and
# account class, so that one query checks every payment.
_PAYMENT_MOVES = """
    SELECT e.journal_id,
           sum(e.amount) FILTER (WHERE a.kind = 'resident')::bigint AS resident,
           sum(e.amount) FILTER (WHERE a.kind = 'resident' AND e.unit = 'point')::bigint AS resident_point,
           sum(e.amount) FILTER (WHERE a.kind = 'expired')::bigint AS expired,
           sum(e.amount) FILTER (WHERE a.kind = 'merchant')::bigint AS merchant,
           sum(e.amount) FILTER (WHERE a.kind = 'fee_income')::bigint AS fee,
           sum(e.amount) FILTER (WHERE a.kind = 'fee_income' AND e.unit = 'point')::bigint AS fee_point
    FROM wallet.entries e JOIN wallet.accounts a ON a.id = e.account_id
    WHERE e.journal_id IN (SELECT journal_id FROM wallet.payments UNION ALL SELECT journal_id FROM wallet.refunds)
    GROUP BY e.journal_id
"""


async def _payment_violations(rows: Any) -> list[Violation]:
    found: list[Violation] = []
    # The payment's journal: the resident paid `amount` (`point_amount` of it in points), the
    # merchant got it less the fee, fee income the fee (`fee_point` of it in points).
    for payment_id, amount, point_amount, fee, fee_point, *m in await rows(
        "SELECT p.id, p.amount, p.point_amount, p.fee, p.fee_point, m.* FROM wallet.payments p "
        f"JOIN ({_PAYMENT_MOVES}) m ON m.journal_id = p.journal_id WHERE true {{region}} "
        "AND (m.resident IS DISTINCT FROM -p.amount OR coalesce(m.resident_point, 0) <> -p.point_amount "
        "OR m.merchant IS DISTINCT FROM p.amount - p.fee OR coalesce(m.fee, 0) <> p.fee "
        "OR coalesce(m.fee_point, 0) <> p.fee_point)",
        "p",
    ):
        found.append(Violation(
            "payments", f"payment {payment_id}",
            f"its journal moved resident {m[1]} ({m[2]} in points), merchant {m[4]}, fee {m[5]} ({m[6]} in points); "
            f"the payment says {amount} ({point_amount} in points) with fee {fee} ({fee_point} in points)",
        ))
    # Each refund's journal: back to the wallet (or to expiry) `amount`, `fee_returned` from fee
    # income, the rest from the merchant.
    for refund_id, payment_id, amount, fee_returned, *m in await rows(
        "SELECT r.id, r.payment_id, r.amount, r.fee_returned, m.* FROM wallet.refunds r "
        f"JOIN ({_PAYMENT_MOVES}) m ON m.journal_id = r.journal_id WHERE true {{region}} "
        "AND (coalesce(m.resident, 0) + coalesce(m.expired, 0) <> r.amount "
        "OR coalesce(m.fee, 0) <> -r.fee_returned OR coalesce(m.fee_point, 0) <> -r.fee_returned_point "
        "OR coalesce(m.merchant, 0) <> -(r.amount - r.fee_returned))",
        "r",
    ):
        found.append(Violation(
            "payments", f"payment {payment_id}",
            f"refund {refund_id} of {amount} with fee {fee_returned} back: its journal moved resident {m[1]}, "
            f"expired {m[3]}, merchant {m[4]}, fee {m[5]}",
        ))
    # The running totals on the payment are the sums of its refunds.
    for payment_id, *totals in await rows(
        "SELECT p.id, p.refunded_amount, r.amount, p.fee_returned, r.fee_returned, p.refunded_point, r.point_amount,"
        " p.fee_returned_point, r.fee_returned_point FROM wallet.payments p "
        "JOIN (SELECT payment_id, sum(amount)::bigint AS amount, sum(fee_returned)::bigint AS fee_returned,"
        "      sum(point_amount)::bigint AS point_amount, sum(fee_returned_point)::bigint AS fee_returned_point"
        "      FROM wallet.refunds GROUP BY payment_id) r ON r.payment_id = p.id "
        "WHERE (p.refunded_amount, p.fee_returned, p.refunded_point, p.fee_returned_point)"
        " <> (r.amount, r.fee_returned, r.point_amount, r.fee_returned_point) {region}",
        "p",
    ):
        found.append(Violation(
            "payments", f"payment {payment_id}",
            "refunded/fee returned/points refunded/point fee returned are {0}/{2}/{4}/{6}, its refunds sum to "
            "{1}/{3}/{5}/{7}".format(*totals),
        ))
    # The fee returned so far is the fee's share of what was refunded, per unit, rounded down.
    for payment_id, returned_yen, due_yen, returned_point, due_point in await rows(
        "SELECT id, yen, due_yen, point, due_point FROM ("
        "  SELECT p.id, p.region_id, p.fee_returned - p.fee_returned_point AS yen,"
        "    CASE WHEN p.amount > p.point_amount THEN (p.fee - p.fee_point) * (p.refunded_amount - p.refunded_point)"
        "      / (p.amount - p.point_amount) ELSE 0 END AS due_yen,"
        "    p.fee_returned_point AS point,"
        "    CASE WHEN p.point_amount > 0 THEN p.fee_point * p.refunded_point / p.point_amount ELSE 0 END AS due_point"
        "  FROM wallet.payments p WHERE p.refunded_amount > 0) f "
        "WHERE (yen, point) <> (due_yen, due_point) {region}",
        "f",
    ):
        found.append(Violation(
            "payments", f"payment {payment_id}",
            f"fee returned {returned_yen} yen and {returned_point} points; the refunds so far make it "
            f"{due_yen} yen and {due_point} points",
        ))
    # Rewards: the payment's reward is what its campaigns paid less what refunds took back, and the
    # budget moved exactly that; never more taken back than the refunded share of the reward's base,
    # and all of that share when the reward's lot was never spent nor expired (it was there to take).
    # A base of the whole amount is refunded as the payment is; a coin base (less than the amount)
    # as its coin is, read from what the refunds gave back in points.
    for payment_id, campaign_id, points, clawed, due, budget_moved, spent, total in await rows(
        "SELECT p.id, r.campaign_id, r.points, r.clawed_back,"
        " r.points * CASE WHEN r.base = p.amount THEN p.refunded_amount"
        "   ELSE p.refunded_amount - p.refunded_point END / r.base,"
        " coalesce((SELECT sum(e.amount) FROM wallet.entries e JOIN wallet.journals j ON j.id = e.journal_id"
        "   JOIN wallet.accounts b ON b.id = e.account_id WHERE j.kind = 'reward' AND j.reference = p.id::text"
        "   AND b.campaign_id = r.campaign_id AND b.kind = 'campaign_budget'), 0)::bigint,"
        " EXISTS (SELECT 1 FROM wallet.payment_lots pl WHERE pl.lot_id = r.lot_id) OR l.expired > 0,"
        " (SELECT sum(points - clawed_back) FROM wallet.payment_rewards WHERE payment_id = p.id)::bigint <> p.reward_points"
        " FROM wallet.payment_rewards r JOIN wallet.payments p ON p.id = r.payment_id"
        " JOIN wallet.lots l ON l.id = r.lot_id WHERE true {region}",
        "p",
    ):
        if total:
            found.append(Violation("payments", f"payment {payment_id}", "its reward_points differ from its rewards"))
        if budget_moved != -(points - clawed):
            found.append(Violation(
                "payments", f"payment {payment_id}",
                f"campaign {campaign_id} rewarded {points} and took back {clawed}, but its budget moved {budget_moved}",
            ))
        if clawed > due or (clawed < due and not spent):
            found.append(Violation(
                "payments", f"payment {payment_id}",
                f"campaign {campaign_id}: {clawed} of the reward taken back; the refunded share is {due}",
            ))
    return found


async def ledger_totals(session: AsyncSession, region_id: uuid.UUID | None = None) -> tuple[int, int]:
    journals = select(func.count()).select_from(Journal)
    accounts = select(func.count()).select_from(Account)
    if region_id is not None:
        journals = journals.where(Journal.region_id == region_id)
        accounts = accounts.where(Account.region_id == region_id)
    return int((await session.execute(journals)).scalar_one()), int((await session.execute(accounts)).scalar_one())

