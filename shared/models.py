"""The declarative base shared by every service's tables, and the tables of `shared` itself
(schema `platform`: idempotency records and the audit trail)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, MetaData, SmallInteger, Text, text
from sqlalchemy.dialects.postgresql import JSON, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        uuid.UUID: UUID(as_uuid=True),
        datetime: DateTime(timezone=True),
        int: BigInteger,
        str: Text,
        dict[str, Any]: JSONB,
    }


class IdempotencyRecord(Base):
    """The first response to a (caller, Idempotency-Key), written in the same transaction as its
    effect, so that an effect never exists without its key nor a key without its effect."""

    __tablename__ = "idempotency_keys"
    __table_args__ = {"schema": "platform"}

    caller: Mapped[str] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(primary_key=True)
    request_hash: Mapped[str]
    status_code: Mapped[int] = mapped_column(SmallInteger, nullable=True)
    # json (not jsonb) keeps the first response exactly as sent, key order included. (A first-come
    # premium purchase, claimed and answered by its database function, stores the purchase's id:
    # the app shapes its replay from the purchase, as it shaped the first answer.)
    response: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime]


class AuditEvent(Base):
    """Append-only (a trigger refuses UPDATE and DELETE)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_region_id_id", "region_id", "id"),
        {"schema": "platform"},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID | None]
    actor_subject: Mapped[str]
    actor_role: Mapped[str]
    action: Mapped[str]
    target_type: Mapped[str]
    target_id: Mapped[str | None]
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    request_id: Mapped[str | None]
    source_address: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
