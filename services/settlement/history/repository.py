"""Every SQL query of history imports: the jobs, their files, their problems."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.settlement.history.models import IN_PROGRESS, HistoryImport, HistoryImportError, HistoryImportFile


async def insert_import(session: AsyncSession, content: bytes, **values: Any) -> HistoryImport:
    found = (await session.execute(insert(HistoryImport).values(**values).returning(HistoryImport))).scalar_one()
    await session.execute(insert(HistoryImportFile).values(import_id=found.id, content=content))
    return found


async def history_import(session: AsyncSession | AsyncConnection, import_id: uuid.UUID) -> HistoryImport | None:
    if isinstance(session, AsyncSession):
        return await session.get(HistoryImport, import_id, populate_existing=True)
    row = (await session.execute(select(HistoryImport.__table__).where(HistoryImport.id == import_id))).first()
    return HistoryImport(**row._mapping) if row else None


async def content(session: AsyncSession, import_id: uuid.UUID) -> bytes:
    query = select(HistoryImportFile.content).where(HistoryImportFile.import_id == import_id)
    return (await session.execute(query)).scalar_one()


async def set_import(session: AsyncSession | AsyncConnection, import_id: uuid.UUID, **values: Any) -> None:
    await session.execute(update(HistoryImport).where(HistoryImport.id == import_id).values(**values))


async def insert_errors(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(HistoryImportError), list(rows))


async def errors(
    session: AsyncSession, import_id: uuid.UUID, *, after_id: uuid.UUID | None, limit: int
) -> list[HistoryImportError]:
    query = select(HistoryImportError).where(HistoryImportError.import_id == import_id)
    if after_id is not None:
        query = query.where(HistoryImportError.id > after_id)
    return list((await session.execute(query.order_by(HistoryImportError.id).limit(limit))).scalars())


async def unfinished(session: AsyncSession) -> list[uuid.UUID]:
    query = select(HistoryImport.id).where(HistoryImport.status.in_([s.value for s in IN_PROGRESS]))
    return list((await session.execute(query.order_by(HistoryImport.id))).scalars())
