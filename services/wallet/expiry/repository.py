"""Every SQL query of expiry runs."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.expiry.models import ExpiryRun

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
