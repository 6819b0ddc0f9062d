"""The outbox's table (schema `platform`, migration 0028).

A row is written in the same transaction as the change it announces (a checkout paid, a payment's
result for the data platform), so an event exists if and only if its change committed; the worker
delivers it afterwards. `stream` orders events: those of one stream (one checkout) reach their
destination one at a time, in the order of `seq`; different streams do not wait for each other."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Identity, Index, Integer, SmallInteger, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models import Base

SCHEMA = "platform"


class EventStatus(StrEnum):
    PENDING = "pending"  # to be sent at next_attempt_at (the first time, or again after a failure)
    DELIVERED = "delivered"  # the destination answered 2xx
    FAILED = "failed"  # every attempt failed; holds its stream back until the operator re-sends it
    WITHDRAWN = "withdrawn"  # the destination no longer wants it (e.g. a resident's revoked opt-in): never sent


# Events that hold their stream back: a later event of the stream waits for them.
UNFINISHED = (EventStatus.PENDING.value, EventStatus.FAILED.value)


class OutboxEvent(Base):
    __tablename__ = "outbox_events"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'failed', 'withdrawn')", "status"),
        CheckConstraint("(status = 'delivered') = (delivered_at IS NOT NULL)", "delivered"),
        # The heads of the streams (each stream's first unfinished event), found without reading
        # the delivered history.
        Index("ix_outbox_events_unfinished", "stream", "seq", postgresql_where=text("status IN ('pending', 'failed')")),
        Index("ix_outbox_events_region_id_id", "region_id", "id"),
        {"schema": SCHEMA},
    )

    # The event id: the receiver's deduplication key (the X-Chiikipay-Event-Id header).
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Commit order within a stream: its events are written one after another under the lock of
    # what they are about (a checkout's row), so a sequence, unlike the clocks of several
    # servers, cannot put them out of order.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    region_id: Mapped[uuid.UUID]
    event_type: Mapped[str]  # checkout.paid, checkout.refunded, …
    stream: Mapped[str]  # e.g. "checkout:<id>"
    destination_kind: Mapped[str]  # who signs and may withdraw it: "partner", "data_platform"
    destination_key: Mapped[str]  # which one of that kind (a partner service's id)
    url: Mapped[str]
    payload: Mapped[dict[str, Any]]
    status: Mapped[str]
    attempts: Mapped[int] = mapped_column(SmallInteger)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None]
    last_status: Mapped[int | None] = mapped_column(Integer)  # the destination's HTTP status, if it answered
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
