"""Every SQL query of the directory."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Text, and_, any_, bindparam, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.directory.models import ApiKey, Merchant, MerchantClass, Notice, Region, Resident
from services.wallet.ledger.models import Account, Status
from shared.ids import new_id

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


async def active_residents(
    session: AsyncSession, region_id: uuid.UUID, among: Sequence[str] | None
) -> list[tuple[uuid.UUID, str]]:
    """(id, subject) of the region's residents whose yen wallet is active, of `among` if given."""
    query = (
        select(Resident.id, Resident.subject)
        .join(Account, and_(Account.resident_id == Resident.id, Account.unit == "yen"))
        .where(Resident.region_id == region_id, Account.status == Status.ACTIVE.value)
    )
    if among is not None:
        query = query.where(Resident.subject == any_(bindparam("among", list(among), type_=ARRAY(Text))))
    return [(row[0], row[1]) for row in await session.execute(query.order_by(Resident.subject))]


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


async def insert_notices(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Many notices at once (a distribution to a segment): none tied to a lot."""
    if rows:
        await session.execute(insert(Notice), list(rows))


async def notices(
    session: AsyncSession, resident_id: uuid.UUID, *, after_id: uuid.UUID | None, limit: int
) -> list[Notice]:
    query = select(Notice).where(Notice.resident_id == resident_id)
    if after_id is not None:
        query = query.where(Notice.id < after_id)
    return list((await session.execute(query.order_by(Notice.id.desc()).limit(limit))).scalars())


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


async def merchant_classes(session: AsyncSession, region_id: uuid.UUID) -> list[MerchantClass]:
    query = select(MerchantClass).where(MerchantClass.region_id == region_id).order_by(MerchantClass.code)
    return list((await session.execute(query)).scalars())



async def insert_merchant_class(session: AsyncSession, **values: Any) -> MerchantClass | None:
    """None if the region already has a class with this code."""
    inserted = await session.execute(
        pg_insert(MerchantClass).values(**values).on_conflict_do_nothing().returning(MerchantClass)
    )
    return inserted.scalar_one_or_none()



async def merchant_class_of(session: AsyncSession, merchant_id: uuid.UUID) -> str:
    return (await session.execute(select(Merchant.merchant_class).where(Merchant.id == merchant_id))).scalar_one()

