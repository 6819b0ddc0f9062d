"""Every SQL query of settlement's cycles, payout accounts and settings."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.ext.asyncio import AsyncSession

from services.settlement.models import MerchantCycle, PayoutAccount, PayoutSettings, SourceAccount

# --- cycles ---------------------------------------------------------------------------------------


async def insert_cycle(session: AsyncSession, **values: Any) -> MerchantCycle:
    return (await session.execute(insert(MerchantCycle).values(**values).returning(MerchantCycle))).scalar_one()


async def cycles_at(
    session: AsyncSession, region_id: uuid.UUID, merchant_ids: Sequence[uuid.UUID], at: datetime
) -> dict[uuid.UUID, MerchantCycle]:
    """Each merchant's row in force at `at` (the latest from before it); merchants without one are
    left out. A merchant's cycle changes rarely: its rows are few, the latest is taken here."""
    query = (
        select(MerchantCycle)
        .where(MerchantCycle.region_id == region_id, MerchantCycle.merchant_id.in_(list(merchant_ids)),
               MerchantCycle.effective_at <= at)
        .order_by(MerchantCycle.merchant_id, MerchantCycle.effective_at.desc(), MerchantCycle.id.desc())
    )
    found: dict[uuid.UUID, MerchantCycle] = {}
    for row in (await session.execute(query)).scalars():
        found.setdefault(row.merchant_id, row)
    return found


async def cycle_history(session: AsyncSession, region_id: uuid.UUID, merchant_id: uuid.UUID) -> list[MerchantCycle]:
    query = select(MerchantCycle).where(
        MerchantCycle.region_id == region_id, MerchantCycle.merchant_id == merchant_id
    ).order_by(MerchantCycle.effective_at.desc(), MerchantCycle.id.desc())
    return list((await session.execute(query)).scalars())


# --- payout accounts ----------------------------------------------------------------------------------


async def payout_account(session: AsyncSession, region_id: uuid.UUID, merchant_id: uuid.UUID) -> PayoutAccount | None:
    return await session.get(PayoutAccount, (region_id, merchant_id))


async def put_payout_account(session: AsyncSession, **values: Any) -> PayoutAccount:
    query = upsert(PayoutAccount).values(**values)
    query = query.on_conflict_do_update(
        index_elements=[PayoutAccount.region_id, PayoutAccount.merchant_id],
        set_={k: query.excluded[k] for k in values if k not in ("region_id", "merchant_id")},
    ).returning(PayoutAccount)
    return (await session.execute(query, execution_options={"populate_existing": True})).scalar_one()


async def payout_accounts(
    session: AsyncSession, region_id: uuid.UUID, merchant_ids: Sequence[uuid.UUID] | None = None, *,
    after_merchant_id: uuid.UUID | None = None, limit: int | None = None,
) -> list[PayoutAccount]:
    """The region's accounts (of `merchant_ids` if given), by merchant id, newest merchant first."""
    query = select(PayoutAccount).where(PayoutAccount.region_id == region_id)
    if merchant_ids is not None:
        query = query.where(PayoutAccount.merchant_id.in_(list(merchant_ids)))
    if after_merchant_id is not None:
        query = query.where(PayoutAccount.merchant_id < after_merchant_id)
    query = query.order_by(PayoutAccount.merchant_id.desc())
    if limit is not None:
        query = query.limit(limit)
    return list((await session.execute(query)).scalars())


# --- the region's source account and settings ---------------------------------------------------------


async def source_account(session: AsyncSession, region_id: uuid.UUID) -> SourceAccount | None:
    return await session.get(SourceAccount, region_id)


async def put_source_account(session: AsyncSession, **values: Any) -> SourceAccount:
    query = upsert(SourceAccount).values(**values)
    query = query.on_conflict_do_update(
        index_elements=[SourceAccount.region_id], set_={k: query.excluded[k] for k in values if k != "region_id"}
    ).returning(SourceAccount)
    return (await session.execute(query, execution_options={"populate_existing": True})).scalar_one()


async def payout_settings(session: AsyncSession, region_id: uuid.UUID) -> PayoutSettings | None:
    return await session.get(PayoutSettings, region_id)


async def put_payout_settings(session: AsyncSession, **values: Any) -> PayoutSettings:
    query = upsert(PayoutSettings).values(**values)
    query = query.on_conflict_do_update(
        index_elements=[PayoutSettings.region_id], set_={k: query.excluded[k] for k in values if k != "region_id"}
    ).returning(PayoutSettings)
    return (await session.execute(query, execution_options={"populate_existing": True})).scalar_one()
