"""Every SQL query of campaigns and merchant classes."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.models import Account, Campaign, MerchantClass


async def merchant_classes(session: AsyncSession, region_id: uuid.UUID) -> list[MerchantClass]:
    query = select(MerchantClass).where(MerchantClass.region_id == region_id).order_by(MerchantClass.code)
    return list((await session.execute(query)).scalars())


async def insert_merchant_class(session: AsyncSession, **values: Any) -> MerchantClass | None:
    """None if the region already has a class with this code."""
    inserted = await session.execute(
        pg_insert(MerchantClass).values(**values).on_conflict_do_nothing().returning(MerchantClass)
    )
    return inserted.scalar_one_or_none()


async def insert_campaign(session: AsyncSession, **values: Any) -> Campaign:
    return (await session.execute(insert(Campaign).values(**values).returning(Campaign))).scalar_one()


async def campaign(session: AsyncSession, campaign_id: uuid.UUID) -> Campaign | None:
    return await session.get(Campaign, campaign_id)


async def campaign_by_name(session: AsyncSession, region_id: uuid.UUID, name: str) -> Campaign | None:
    query = select(Campaign).where(Campaign.region_id == region_id, Campaign.name == name)
    return (await session.execute(query)).scalar_one_or_none()


async def campaigns(session: AsyncSession, region_id: uuid.UUID, *, after_id: uuid.UUID | None, limit: int) -> list[Campaign]:
    query = select(Campaign).where(Campaign.region_id == region_id)
    if after_id is not None:
        query = query.where(Campaign.id < after_id)
    return list((await session.execute(query.order_by(Campaign.id.desc()).limit(limit))).scalars())


async def set_campaign_status(session: AsyncSession, campaign_id: uuid.UUID, status: str) -> Campaign:
    updated = await session.execute(
        update(Campaign).where(Campaign.id == campaign_id).values(status=status).returning(Campaign)
    )
    return updated.scalar_one()


async def budget_account(session: AsyncSession, campaign_id: uuid.UUID) -> Account:
    query = select(Account).where(Account.campaign_id == campaign_id, Account.unit == "point")
    return (await session.execute(query)).scalar_one()
