"""Every SQL query of campaigns and merchant classes."""


from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.campaigns.models import Campaign, PaymentReward, RewardMonth, RewardRate
from services.wallet.ledger.models import Account


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
    return (await session.execute(query.execution_options(populate_existing=True))).scalar_one()


# --- rewards ----------------------------------------------------------------------------------


async def active_reward_campaigns(session: AsyncSession, region_id: uuid.UUID, now: datetime) -> list[Campaign]:
    query = select(Campaign).where(
        Campaign.region_id == region_id, Campaign.kind == "reward", Campaign.status == "active",
        or_(Campaign.reward_from.is_(None), Campaign.reward_from <= now),
        or_(Campaign.reward_until.is_(None), Campaign.reward_until > now),
    )
    return list((await session.execute(query.order_by(Campaign.id))).scalars())


async def reward_rates_for(
    session: AsyncSession, campaign_ids: list[uuid.UUID], merchant_class: str
) -> list[tuple[Campaign, int]]:
    query = (
        select(Campaign, RewardRate.rate_bp)
        .join(RewardRate, RewardRate.campaign_id == Campaign.id)
        .where(Campaign.id.in_(campaign_ids), RewardRate.merchant_class == merchant_class, RewardRate.rate_bp > 0)
        .order_by(Campaign.id)
    )
    return [(row[0], row[1]) for row in await session.execute(query)]


async def reward_rates(session: AsyncSession, campaign_id: uuid.UUID) -> dict[str, int]:
    rows = await session.execute(select(RewardRate).where(RewardRate.campaign_id == campaign_id))
    return {rate.merchant_class: rate.rate_bp for rate in rows.scalars()}


async def insert_reward_rates(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(RewardRate).values(rows))


async def lock_reward_month(session: AsyncSession, campaign_id: uuid.UUID, resident_id: uuid.UUID, month: date) -> int:
    """The points this resident earned from the campaign this month, the row locked."""
    await session.execute(
        pg_insert(RewardMonth).values(campaign_id=campaign_id, resident_id=resident_id, month=month, points=0)
        .on_conflict_do_nothing()
    )
    query = select(RewardMonth.points).where(
        RewardMonth.campaign_id == campaign_id, RewardMonth.resident_id == resident_id, RewardMonth.month == month
    ).with_for_update()
    return (await session.execute(query)).scalar_one()


async def add_to_reward_month(
    session: AsyncSession, campaign_id: uuid.UUID, resident_id: uuid.UUID, month: date, points: int
) -> None:
    """Count `points` (negative: taken back) against the resident's month; its row exists from the reward on."""
    if points > 0:
        await session.execute(
            pg_insert(RewardMonth).values(campaign_id=campaign_id, resident_id=resident_id, month=month, points=points)
            .on_conflict_do_update(
                index_elements=["campaign_id", "resident_id", "month"], set_={"points": RewardMonth.points + points}
            )
        )
    else:
        await session.execute(
            update(RewardMonth)
            .where(RewardMonth.campaign_id == campaign_id, RewardMonth.resident_id == resident_id, RewardMonth.month == month)
            .values(points=RewardMonth.points + points)
        )


async def insert_payment_reward(session: AsyncSession, **values: Any) -> None:
    await session.execute(insert(PaymentReward).values(**values))


async def payment_rewards(session: AsyncSession, payment_id: uuid.UUID) -> list[PaymentReward]:
    query = select(PaymentReward).where(PaymentReward.payment_id == payment_id).order_by(PaymentReward.campaign_id)
    return list((await session.execute(query.execution_options(populate_existing=True))).scalars())


async def add_clawed_back(session: AsyncSession, payment_id: uuid.UUID, campaign_id: uuid.UUID, points: int) -> None:
    await session.execute(
        update(PaymentReward)
        .where(PaymentReward.payment_id == payment_id, PaymentReward.campaign_id == campaign_id)
        .values(clawed_back=PaymentReward.clawed_back + points)
    )


async def campaign_names(session: AsyncSession, region_id: uuid.UUID) -> dict[uuid.UUID, str]:
    rows = await session.execute(select(Campaign.id, Campaign.name).where(Campaign.region_id == region_id))
    return {row.id: row.name for row in rows}
