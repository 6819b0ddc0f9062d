"""The settlement service's tables (schema `settlement`, migration 0019): each merchant's cycle,
the bank accounts payouts go to, and the region's own settings for them (the consortium's source
account, the on-demand payout fee, the minimum payout). They hold no money and name the wallet's
regions and merchants by id only, without foreign keys into the wallet's schema.

A cycle is never edited: a change is a new row from its time on, so a run asks which cycle was
in force at its period's end (`service.cycles_at`) whenever it runs. A bank account is one row
per merchant, replaced when it changes (the audit trail keeps what it was); a run copies what it
pays to into its own rows, so a closed period's file never changes with a later edit.

The checks below repeat the service's rules (digits, the transfer file's characters), so that no
row the file could not carry exists whichever code wrote it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Index
from sqlalchemy.orm import Mapped, mapped_column

from shared.models import Base

SCHEMA = "settlement"

# The transfer file's characters (zengin.ZENGIN_CHARACTERS) as a PostgreSQL class: ｦ, ｱ–ﾝ, ﾞ, ﾟ.
_ZENGIN = "[0-9A-Z ｦｱ-ﾟ().,/｢｣-]"
ACCOUNT_TYPES = "('ordinary', 'current', 'savings')"


class MerchantCycle(Base):
    """The cycle a merchant is settled on from `effective_at`; without a row, monthly."""

    __tablename__ = "merchant_cycles"
    __table_args__ = (
        Index("ix_merchant_cycles_region_id_merchant_id_effective_at", "region_id", "merchant_id", "effective_at"),
        CheckConstraint("cycle IN ('monthly', 'twice_monthly', 'on_demand')", "cycle"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)  # time-ordered: the later of two at one instant wins
    region_id: Mapped[uuid.UUID]
    merchant_id: Mapped[uuid.UUID]
    cycle: Mapped[str]
    effective_at: Mapped[datetime]
    set_by: Mapped[str]


class PayoutAccount(Base):
    """Where a merchant's payouts go: a bank account, its codes checked against the zengin-code
    data when stored, the holder's name (口座名義) as the transfer file carries it."""

    __tablename__ = "payout_accounts"
    __table_args__ = (
        CheckConstraint("bank_code ~ '^[0-9]{4}$' AND branch_code ~ '^[0-9]{3}$'", "codes"),
        CheckConstraint(f"account_type IN {ACCOUNT_TYPES}", "account_type"),
        CheckConstraint("account_number ~ '^[0-9]{7}$'", "account_number"),
        CheckConstraint(f"holder_name ~ '^{_ZENGIN}{{1,30}}$'", "holder_name"),
        {"schema": SCHEMA},
    )

    region_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    merchant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    bank_code: Mapped[str]
    branch_code: Mapped[str]
    account_type: Mapped[str]
    account_number: Mapped[str]
    holder_name: Mapped[str]  # half-width katakana, upper-case, digits (zengin.to_zengin)
    updated_by: Mapped[str]
    updated_at: Mapped[datetime]


class SourceAccount(Base):
    """The consortium's own account that payouts are sent from: the transfer file's requester
    (振込依頼人), with the 委託者コード its bank gave it."""

    __tablename__ = "source_accounts"
    __table_args__ = (
        CheckConstraint("requester_code ~ '^[0-9]{10}$'", "requester_code"),
        CheckConstraint(f"requester_name ~ '^{_ZENGIN}{{1,40}}$'", "requester_name"),
        CheckConstraint("bank_code ~ '^[0-9]{4}$' AND branch_code ~ '^[0-9]{3}$'", "codes"),
        CheckConstraint(f"account_type IN {ACCOUNT_TYPES}", "account_type"),
        CheckConstraint("account_number ~ '^[0-9]{7}$'", "account_number"),
        {"schema": SCHEMA},
    )

    region_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    requester_code: Mapped[str]
    requester_name: Mapped[str]
    bank_code: Mapped[str]
    branch_code: Mapped[str]
    account_type: Mapped[str]
    account_number: Mapped[str]
    updated_by: Mapped[str]
    updated_at: Mapped[datetime]


class PayoutSettings(Base):
    """The region's payout rules; without a row, no on-demand fee and no minimum."""

    __tablename__ = "payout_settings"
    __table_args__ = (
        CheckConstraint("on_demand_fee >= 0 AND minimum_payout >= 0", "non_negative"),
        {"schema": SCHEMA},
    )

    region_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    on_demand_fee: Mapped[int]  # yen charged on each on-demand payout
    minimum_payout: Mapped[int]  # below it a merchant's balance carries over to its next period
    updated_by: Mapped[str]
    updated_at: Mapped[datetime]
