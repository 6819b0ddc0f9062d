"""Every SQL query of checkouts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.platform.checkouts.models import Checkout, CheckoutStatus


async def insert_checkout(session: AsyncSession, **values: Any) -> Checkout:
    return (await session.execute(insert(Checkout).values(**values).returning(Checkout))).scalar_one()


async def checkout(session: AsyncSession, checkout_id: uuid.UUID, *, lock: bool = False) -> Checkout | None:
    """With `lock`, the row is held until the transaction ends: approvals, declines, cancels and
    refunds of one checkout take turns, so only one of two approvals at once can pay it."""
    query = select(Checkout).where(Checkout.id == checkout_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def checkout_of_payment(session: AsyncSession, payment_id: uuid.UUID) -> Checkout | None:
    """The checkout the payment paid, locked (the refund's turn on it)."""
    query = select(Checkout).where(Checkout.payment_id == payment_id).with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def checkouts(
    session: AsyncSession, partner_id: uuid.UUID, *, status: str | None, after_id: uuid.UUID | None, limit: int
) -> list[Checkout]:
    query = select(Checkout).where(Checkout.partner_id == partner_id)
    if status is not None:
        query = query.where(Checkout.status == status)
    if after_id is not None:
        query = query.where(Checkout.id < after_id)
    return list((await session.execute(query.order_by(Checkout.id.desc()).limit(limit))).scalars())


async def update_checkout(session: AsyncSession, checkout_id: uuid.UUID, **values: Any) -> Checkout:
    query = update(Checkout).where(Checkout.id == checkout_id).values(**values).returning(Checkout)
    return (await session.execute(query)).scalar_one()


async def expire_due(session: AsyncSession, now: datetime, limit: int) -> list[Checkout]:
    """Open checkouts past their expiry, marked expired. Rows another transaction holds (one being
    approved right now) are skipped: the next sweep sees how that ended."""
    due = (
        select(Checkout.id)
        .where(Checkout.status == CheckoutStatus.OPEN.value, Checkout.expires_at <= now)
        .order_by(Checkout.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    query = (
        update(Checkout)
        .where(Checkout.id.in_(due.scalar_subquery()))
        .values(status=CheckoutStatus.EXPIRED.value, decided_at=now)
        .returning(Checkout)
    )
    return list((await session.execute(query)).scalars())
