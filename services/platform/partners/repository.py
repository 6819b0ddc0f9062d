"""Every SQL query of partner services."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.platform.partners.models import PartnerKey, PartnerService, PartnerStatus


async def insert_partner(session: AsyncSession, **values: Any) -> PartnerService | None:
    """None if the region has a partner service of that name."""
    query = insert(PartnerService).values(**values).on_conflict_do_nothing().returning(PartnerService)
    return (await session.execute(query)).scalar_one_or_none()


async def partner(session: AsyncSession, partner_id: uuid.UUID, *, lock: bool = False) -> PartnerService | None:
    query = select(PartnerService).where(PartnerService.id == partner_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def partners(session: AsyncSession, region_id: uuid.UUID, *, after_id: uuid.UUID | None, limit: int) -> list[PartnerService]:
    query = select(PartnerService).where(PartnerService.region_id == region_id)
    if after_id is not None:
        query = query.where(PartnerService.id < after_id)
    return list((await session.execute(query.order_by(PartnerService.id.desc()).limit(limit))).scalars())


async def update_partner(session: AsyncSession, partner_id: uuid.UUID, **values: Any) -> PartnerService:
    query = update(PartnerService).where(PartnerService.id == partner_id).values(**values).returning(PartnerService)
    return (await session.execute(query)).scalar_one()


async def insert_key(session: AsyncSession, **values: Any) -> None:
    await session.execute(insert(PartnerKey).values(**values))


async def revoke_keys(session: AsyncSession, partner_id: uuid.UUID, at: datetime) -> None:
    await session.execute(
        update(PartnerKey).where(PartnerKey.partner_id == partner_id, PartnerKey.revoked_at.is_(None)).values(revoked_at=at)
    )


async def active_key(session: AsyncSession, secret_hash: str) -> tuple[PartnerKey, PartnerService] | None:
    """The unrevoked key of an active partner service with this hash."""
    query = (
        select(PartnerKey, PartnerService)
        .join(PartnerService, PartnerService.id == PartnerKey.partner_id)
        .where(PartnerKey.secret_hash == secret_hash, PartnerKey.revoked_at.is_(None),
               PartnerService.status == PartnerStatus.ACTIVE.value)
    )
    found = (await session.execute(query)).one_or_none()
    return (found[0], found[1]) if found is not None else None
