"""Tables of the directory: regions, residents, merchants, merchant classes, API keys, notices."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, ForeignKeyConstraint, Index, SmallInteger, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from services.wallet.ledger.models import SCHEMA
from shared.models import Base


class Sector(StrEnum):
    """Business sectors, as counted by the city's 適用分野数 KPI."""

    RETAIL = "retail"
    FOOD_SERVICE = "food_service"
    TOURISM = "tourism"
    TRANSPORT = "transport"
    AGRICULTURE = "agriculture"
    HEALTHCARE = "healthcare"
    EDUCATION = "education"
    SERVICES = "services"


class Region(Base):
    __tablename__ = "regions"
    __table_args__ = (
        CheckConstraint("balance_cap > 0", "balance_cap_positive"),
        CheckConstraint("topup_step > 0 AND topup_min > 0 AND topup_max >= topup_min", "topup_limits"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    name_ja: Mapped[str]
    balance_cap: Mapped[int]
    topup_min: Mapped[int]
    topup_max: Mapped[int]
    topup_step: Mapped[int]
    # The globally unique id in the merchant-account template of the region's QR codes.
    qr_guid: Mapped[str] = mapped_column(unique=True)
    # Merchants may refund a payment until the end of its (Tokyo) day plus this many days.
    refund_window_days: Mapped[int] = mapped_column(SmallInteger)
    payment_request_minutes: Mapped[int] = mapped_column(SmallInteger)  # lifetime of a dynamic QR
    # Top-ups expire at the end of the Nth month after the month of the top-up; None: never.
    coin_expiry_months: Mapped[int | None] = mapped_column(SmallInteger)
    created_at: Mapped[datetime]


class Resident(Base):
    __tablename__ = "residents"
    __table_args__ = (
        UniqueConstraint("region_id", "subject"),
        Index("ix_residents_household", "region_id", "household", postgresql_where=text("household IS NOT NULL")),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    subject: Mapped[str]  # the `sub` of the resident's token at the city's identity provider
    household: Mapped[str | None]  # set by the operator; premium sets are limited per household too
    created_at: Mapped[datetime]


class Merchant(Base):
    __tablename__ = "merchants"
    __table_args__ = (
        UniqueConstraint("region_id", "name"),
        CheckConstraint("mcc ~ '^[0-9]{4}$'", "mcc_four_digits"),
        CheckConstraint("bank_code ~ '^[0-9]{4}$' AND branch_code ~ '^[0-9]{3}$'", "bank_codes"),
        CheckConstraint("account_number ~ '^[0-9]{7}$'", "account_number"),
        CheckConstraint("account_type IN (1, 2, 4)", "account_type"),
        CheckConstraint("status IN ('active', 'suspended', 'closed')", "status"),
        CheckConstraint("invoice_registration_number ~ '^T[1-9][0-9]{12}$'", "invoice_registration_number"),
        ForeignKeyConstraint(
            ["region_id", "merchant_class"], [f"{SCHEMA}.merchant_classes.region_id", f"{SCHEMA}.merchant_classes.code"],
            name="fk_merchants_class",
        ),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    name: Mapped[str]
    name_ja: Mapped[str]
    sector: Mapped[str]
    mcc: Mapped[str]
    address: Mapped[str]
    # 適格請求書発行事業者登録番号 ("T" + 13 digits), printed on the receipt; null: not registered.
    invoice_registration_number: Mapped[str | None]
    bank_code: Mapped[str]
    branch_code: Mapped[str]
    account_type: Mapped[int] = mapped_column(SmallInteger)  # 全銀: 1 普通, 2 当座, 4 貯蓄
    account_number: Mapped[str]
    account_holder_kana: Mapped[str]  # payee name as the bank file needs it (half-width katakana)
    merchant_class: Mapped[str]  # a code of the region's merchant classes (restrictions, rewards)
    status: Mapped[str]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ApiKey(Base):
    """A merchant POS terminal's key. Only a SHA-256 of the secret is stored."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_merchant_id", "merchant_id"), {"schema": SCHEMA})

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.merchants.id"))
    name: Mapped[str]
    secret_hash: Mapped[str] = mapped_column(unique=True)
    created_by: Mapped[str]
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class MerchantClass(Base):
    """A class of merchant (local shop in a shopping street, chain store, large store …), set by
    the operator; lots may be restricted to classes and rewards differ by class."""

    __tablename__ = "merchant_classes"
    __table_args__ = {"schema": SCHEMA}

    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"), primary_key=True)
    code: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    name_ja: Mapped[str]
    created_at: Mapped[datetime]


class Notice(Base):
    """Something the resident's app should tell them: value about to expire, a lottery result."""

    __tablename__ = "notices"
    __table_args__ = (
        Index("ix_notices_resident", "resident_id", "id"),
        Index("uq_notices_lot_kind", "lot_id", "kind", unique=True, postgresql_where=text("lot_id IS NOT NULL")),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    resident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.residents.id"))
    kind: Mapped[str]
    lot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.lots.id"))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
