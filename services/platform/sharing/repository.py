"""Every SQL query of data sharing."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.platform.sharing.models import AggregateDay, SharedPayment, SharingChoice


async def choice(
    session: AsyncSession, region_id: uuid.UUID, subject: str, *, lock: bool = False
) -> SharingChoice | None:
    query = select(SharingChoice).where(SharingChoice.region_id == region_id, SharingChoice.subject == subject)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def save_choice(session: AsyncSession, values: dict[str, Any]) -> SharingChoice:
    statement = pg_insert(SharingChoice).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[SharingChoice.region_id, SharingChoice.subject],
        set_={k: statement.excluded[k] for k in values if k not in ("region_id", "subject")},
    ).returning(SharingChoice)
    return (await session.execute(statement, execution_options={"populate_existing": True})).scalar_one()


async def sharer_by_account(session: AsyncSession, wallet_account_id: uuid.UUID) -> SharingChoice | None:
    """The choice of the resident paying from this account, if they share (the partial index)."""
    query = select(SharingChoice).where(SharingChoice.wallet_account_id == wallet_account_id, SharingChoice.opted_in)
    return (await session.execute(query)).scalar_one_or_none()


async def shares(session: AsyncSession, region_id: uuid.UUID, pseudonym: str) -> bool:
    """Whether the resident of this pseudonym shares now, as committed (read at delivery)."""
    query = select(SharingChoice.opted_in).where(
        SharingChoice.region_id == region_id, SharingChoice.pseudonym == pseudonym
    )
    return bool((await session.execute(query)).scalar_one_or_none())


async def record_shared_payment(session: AsyncSession, **values: Any) -> None:
    await session.execute(insert(SharedPayment).values(**values))


async def shared_payment(session: AsyncSession, payment_id: uuid.UUID) -> SharedPayment | None:
    return await session.get(SharedPayment, payment_id)


async def claim_aggregate_day(session: AsyncSession, *, region_id: uuid.UUID, day: date, now: datetime) -> bool:
    """Mark the day's aggregate as written; False if it was already (another run wrote it)."""
    statement = (
        pg_insert(AggregateDay).values(region_id=region_id, day=day, created_at=now)
        .on_conflict_do_nothing().returning(AggregateDay.day)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None
