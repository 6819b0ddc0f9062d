"""Every SQL query of the outbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.platform.outbox.models import UNFINISHED, EventStatus, OutboxEvent


async def insert_event(session: AsyncSession, **values: Any) -> None:
    await session.execute(insert(OutboxEvent).values(**values))


async def due_heads(session: AsyncSession, now: datetime, limit: int) -> list[uuid.UUID]:
    """The first unfinished event of each stream, where it is pending and due, oldest first. An
    event behind an unfinished one of its stream is never a head, so it waits its turn."""
    earlier = aliased(OutboxEvent)
    waiting = (
        select(earlier.id)
        .where(earlier.stream == OutboxEvent.stream, earlier.seq < OutboxEvent.seq, earlier.status.in_(UNFINISHED))
        .exists()
    )
    query = (
        select(OutboxEvent.id)
        .where(OutboxEvent.status == EventStatus.PENDING.value, OutboxEvent.next_attempt_at <= now, ~waiting)
        .order_by(OutboxEvent.seq)
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def lock_due(session: AsyncSession, event_id: uuid.UUID, now: datetime) -> OutboxEvent | None:
    """The event, locked for this delivery, if it is still pending and due and no other worker
    holds it. The lock re-reads the committed row: an event another worker delivered meanwhile
    is no longer pending, and is skipped."""
    query = (
        select(OutboxEvent)
        .where(OutboxEvent.id == event_id, OutboxEvent.status == EventStatus.PENDING.value,
               OutboxEvent.next_attempt_at <= now)
        .with_for_update(skip_locked=True)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def record_attempt(session: AsyncSession, event_id: uuid.UUID, **values: Any) -> None:
    await session.execute(update(OutboxEvent).where(OutboxEvent.id == event_id).values(**values))


async def event(session: AsyncSession, event_id: uuid.UUID, *, lock: bool = False) -> OutboxEvent | None:
    query = select(OutboxEvent).where(OutboxEvent.id == event_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def events(
    session: AsyncSession, region_id: uuid.UUID, *, status: str | None, stream: str | None,
    after_id: uuid.UUID | None, limit: int,
) -> list[OutboxEvent]:
    """Newest first (ids are time-ordered)."""
    query = select(OutboxEvent).where(OutboxEvent.region_id == region_id)
    if status is not None:
        query = query.where(OutboxEvent.status == status)
    if stream is not None:
        query = query.where(OutboxEvent.stream == stream)
    if after_id is not None:
        query = query.where(OutboxEvent.id < after_id)
    return list((await session.execute(query.order_by(OutboxEvent.id.desc()).limit(limit))).scalars())


async def stream_events(session: AsyncSession, stream: str) -> list[OutboxEvent]:
    """A stream's events in delivery order."""
    query = select(OutboxEvent).where(OutboxEvent.stream == stream).order_by(OutboxEvent.seq)
    return list((await session.execute(query)).scalars())
