"""Every SQL query of top-ups."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.topups.models import BankEvent


async def insert_bank_event(session: AsyncSession, **values: Any) -> bool:
    """False when the event id was already processed (a replay)."""
    result = await session.execute(
        pg_insert(BankEvent).values(**values).on_conflict_do_nothing().returning(BankEvent.id)
    )
    return result.scalar_one_or_none() is not None
