"""Tables of imported history (migration 0019): what a previous platform recorded, kept as it was
(never journals), and which of its merchants and residents are whom here."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from services.wallet.ledger.models import SCHEMA
from shared.models import Base


class Record(StrEnum):
    """The kinds of row a history file holds."""

    MERCHANT = "merchant"
    RESIDENT = "resident"
    TOPUP = "topup"
    PAYMENT = "payment"
    REFUND = "refund"
    GRANT = "grant"


MOVEMENTS = (Record.TOPUP, Record.PAYMENT, Record.REFUND, Record.GRANT)


class ImportedMerchant(Base):
    """A merchant's code on the previous platform and the merchant it is here (found or onboarded)."""

    __tablename__ = "imported_merchants"
    __table_args__ = (UniqueConstraint("region_id", "code"), {"schema": SCHEMA})

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    code: Mapped[str]
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.merchants.id"))
    onboarded: Mapped[bool]  # made by the import, not found here
    batch_id: Mapped[uuid.UUID]  # the import that wrote it (settlement's job id, or the CLI's run)
    created_at: Mapped[datetime]


class ImportedResident(Base):
    """A resident's id on the previous platform, the resident here, the closing balance the file
    stated, and the opening journal that carried it over (none when it was zero)."""

    __tablename__ = "imported_residents"
    __table_args__ = (
        UniqueConstraint("region_id", "source_key"),
        UniqueConstraint("resident_id"),
        CheckConstraint("closing_yen >= 0 AND closing_points >= 0", "closing_not_negative"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    source_key: Mapped[str]
    resident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.residents.id"))
    closing_yen: Mapped[int]
    closing_points: Mapped[int]
    opening_journal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.journals.id"))
    batch_id: Mapped[uuid.UUID]
    created_at: Mapped[datetime]


class ImportedMovement(Base):
    """One unit's part of a movement on the previous platform, as it happened there: `amount` is
    its size (> 0), `fee` the merchant's fee on it (a refund's: returned). Its id is a UUIDv7 of
    `occurred_at`, so that a resident's history pages through native entries and imported rows in
    one order. Reports read it beside the ledger, marked imported; it never moved value here."""

    __tablename__ = "imported_movements"
    __table_args__ = (
        UniqueConstraint("region_id", "record", "source_key", "unit"),
        CheckConstraint("record IN ('topup', 'payment', 'refund', 'grant')", "record"),
        CheckConstraint("unit IN ('yen', 'point')", "unit"),
        CheckConstraint("amount > 0 AND fee >= 0 AND fee <= amount", "amounts"),
        CheckConstraint("(record IN ('payment', 'refund')) = (merchant_id IS NOT NULL)", "merchant_of_sales"),
        Index("ix_imported_movements_resident", "resident_id", "id"),
        Index("ix_imported_movements_merchant", "region_id", "merchant_id", "occurred_at",
              postgresql_where=text("merchant_id IS NOT NULL")),
        Index("ix_imported_movements_region_time", "region_id", "occurred_at"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    record: Mapped[str]
    source_key: Mapped[str]  # the previous platform's id of the movement
    unit: Mapped[str]
    occurred_at: Mapped[datetime]
    resident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.residents.id"))
    merchant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.merchants.id"))
    amount: Mapped[int]
    fee: Mapped[int]
    payment_key: Mapped[str | None]  # a refund's payment (its source key)
    memo: Mapped[str | None]
    line: Mapped[int] = mapped_column(Integer)  # of the file it came from, for the record
    batch_id: Mapped[uuid.UUID]
    created_at: Mapped[datetime]
