"""Every SQL query of imported history: what earlier imports wrote, the region's go-live, the rows
reports read beside the ledger, and the check that openings carry exactly what was imported."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.history.models import ImportedMerchant, ImportedMovement, ImportedResident
from services.wallet.ledger.models import Journal, JournalKind


async def lock_region(session: AsyncSession, region_id: uuid.UUID) -> None:
    """One import per region at a time: the second waits, then checks against what the first wrote."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended('history_import:' || CAST(:id AS text), 0))"),
        {"id": str(region_id)},
    )


async def go_live(session: AsyncSession, region_id: uuid.UUID) -> datetime | None:
    """The region's first journal of its own (openings carry history over; they are not its own)."""
    query = select(func.min(Journal.created_at)).where(
        Journal.region_id == region_id, Journal.kind != JournalKind.OPENING.value
    )
    return (await session.execute(query)).scalar_one()


async def imported_merchants(session: AsyncSession, region_id: uuid.UUID) -> dict[str, uuid.UUID]:
    query = select(ImportedMerchant.code, ImportedMerchant.merchant_id).where(ImportedMerchant.region_id == region_id)
    return {code: merchant_id for code, merchant_id in await session.execute(query)}


async def imported_residents(session: AsyncSession, region_id: uuid.UUID) -> dict[str, tuple[str, uuid.UUID]]:
    """source key → (subject, resident id) of every resident an earlier import carried over."""
    query = text(
        "SELECT i.source_key, r.subject, r.id FROM wallet.imported_residents i "
        "JOIN wallet.residents r ON r.id = i.resident_id WHERE i.region_id = :region_id"
    )
    return {key: (subject, rid) for key, subject, rid in await session.execute(query, {"region_id": region_id})}


async def imported_movement_keys(session: AsyncSession, region_id: uuid.UUID) -> set[tuple[str, str]]:
    query = select(ImportedMovement.record, ImportedMovement.source_key).where(ImportedMovement.region_id == region_id)
    return {(record, key) for record, key in await session.execute(query.distinct())}


async def insert_merchants(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(ImportedMerchant), list(rows))


async def insert_resident(session: AsyncSession, **values: Any) -> None:
    await session.execute(insert(ImportedResident).values(**values))


async def set_opening(session: AsyncSession, resident_id: uuid.UUID, journal_id: uuid.UUID) -> None:
    await session.execute(
        update(ImportedResident).where(ImportedResident.resident_id == resident_id).values(opening_journal_id=journal_id)
    )


async def insert_movements(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(ImportedMovement), list(rows))


# --- what reports read --------------------------------------------------------------------------


async def sales_lines(
    session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime, merchant_id: uuid.UUID | None
) -> AsyncIterator[ImportedMovement]:
    """Imported payments and refunds in [since, until), in (merchant, time, id) order."""
    query = select(ImportedMovement).where(
        ImportedMovement.region_id == region_id, ImportedMovement.merchant_id.is_not(None),
        ImportedMovement.occurred_at >= since, ImportedMovement.occurred_at < until,
    )
    if merchant_id is not None:
        query = query.where(ImportedMovement.merchant_id == merchant_id)
    order = (ImportedMovement.merchant_id, ImportedMovement.occurred_at, ImportedMovement.id)
    result = await session.stream_scalars(query.order_by(*order).execution_options(yield_per=1000))
    async for row in result:
        yield row


async def movements(
    session: AsyncSession, *, resident_id: uuid.UUID | None = None, merchant_id: uuid.UUID | None = None,
    after_id: uuid.UUID | None, limit: int, kind: str | None = None, since: datetime | None = None,
    until: datetime | None = None,
) -> list[ImportedMovement]:
    """A resident's or a merchant's imported movements, newest first (by id, which is their time)."""
    m = ImportedMovement
    query = select(m).where(m.resident_id == resident_id) if resident_id else select(m).where(m.merchant_id == merchant_id)
    if after_id is not None:
        query = query.where(m.id < after_id)
    if kind is not None:
        query = query.where(m.record == kind)
    if since is not None:
        query = query.where(m.occurred_at >= since)
    if until is not None:
        query = query.where(m.occurred_at < until)
    return list((await session.execute(query.order_by(m.id.desc()).limit(limit))).scalars())


# --- verification ---------------------------------------------------------------------------------

# A resident's movements, signed as their wallet saw them.
_SIGNED = "CASE m.record WHEN 'payment' THEN -m.amount ELSE m.amount END"

_OPENING_MISMATCH = f"""
WITH implied AS (
    SELECT m.resident_id, m.unit, sum({_SIGNED})::bigint AS total
      FROM wallet.imported_movements m GROUP BY m.resident_id, m.unit
), opened AS (
    SELECT a.resident_id, e.unit, e.amount::bigint AS total
      FROM wallet.imported_residents i
      JOIN wallet.entries e ON e.journal_id = i.opening_journal_id
      JOIN wallet.accounts a ON a.id = e.account_id AND a.kind = 'resident'
), stated AS (
    SELECT i.resident_id, i.region_id, u.unit, u.total
      FROM wallet.imported_residents i
     CROSS JOIN LATERAL (VALUES ('yen', i.closing_yen), ('point', i.closing_points)) AS u (unit, total)
)
SELECT s.resident_id, s.unit, s.total, coalesce(m.total, 0), coalesce(o.total, 0)
  FROM stated s
  LEFT JOIN implied m ON m.resident_id = s.resident_id AND m.unit = s.unit
  LEFT JOIN opened o ON o.resident_id = s.resident_id AND o.unit = s.unit
 WHERE (s.total <> coalesce(m.total, 0) OR s.total <> coalesce(o.total, 0)) {{region}}
"""


async def opening_mismatches(session: AsyncSession, region_id: uuid.UUID | None) -> Sequence[Any]:
    region = "AND s.region_id = :region_id" if region_id is not None else ""
    return (await session.execute(text(_OPENING_MISMATCH.format(region=region)), {"region_id": region_id})).all()
