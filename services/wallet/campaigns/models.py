"""Tables of campaigns: the campaign with its budget account's rules, reward rates, each
resident's monthly reward tally, and the rewards each payment earned."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import ARRAY, ForeignKey, ForeignKeyConstraint, Index, SmallInteger, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from services.wallet.ledger.models import SCHEMA
from shared.models import Base


class CampaignKind(StrEnum):
    PREMIUM = "premium"  # プレミアム付き sets sold first-come or by lottery
    GRANT = "grant"  # points for health, environmental and volunteer activities
    REWARD = "reward"  # points back on payments, by merchant class


class Campaign(Base):
    """A city campaign with its own budget account (points) and the rules of the lots it creates."""

    __tablename__ = "campaigns"
    __table_args__ = (
        UniqueConstraint("region_id", "name", name="campaigns_region_id_name_key"),
        Index("ix_campaigns_active_rewards", "region_id", postgresql_where=text("kind = 'reward' AND status = 'active'")),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    kind: Mapped[str]
    name: Mapped[str]
    name_ja: Mapped[str]
    status: Mapped[str]
    restriction: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    usable_from: Mapped[datetime | None]
    usable_until: Mapped[datetime | None]
    expiry_months: Mapped[int | None] = mapped_column(SmallInteger)
    # Reward campaigns: payments in [reward_from, reward_until) earn points, at most this many
    # per resident and (Tokyo) month.
    reward_from: Mapped[datetime | None]
    reward_until: Mapped[datetime | None]
    reward_monthly_cap: Mapped[int | None]
    # Reward campaigns: whether the part of a payment paid in points earns a reward too (false:
    # only the coin part does).
    reward_points_payments: Mapped[bool] = mapped_column(server_default=text("false"))
    created_by: Mapped[str]
    created_at: Mapped[datetime]


class RewardRate(Base):
    """Points back per payment at merchants of a class, in basis points of the amount."""

    __tablename__ = "reward_rates"
    __table_args__ = (
        ForeignKeyConstraint(
            ["region_id", "merchant_class"], [f"{SCHEMA}.merchant_classes.region_id", f"{SCHEMA}.merchant_classes.code"],
            name="reward_rates_region_id_merchant_class_fkey",
        ),
        {"schema": SCHEMA},
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.campaigns.id"), primary_key=True)
    region_id: Mapped[uuid.UUID]
    merchant_class: Mapped[str] = mapped_column(primary_key=True)
    rate_bp: Mapped[int] = mapped_column(SmallInteger)


class RewardMonth(Base):
    __tablename__ = "reward_months"
    __table_args__ = {"schema": SCHEMA}

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.campaigns.id"), primary_key=True)
    resident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.residents.id"), primary_key=True)
    month: Mapped[date] = mapped_column(primary_key=True)
    points: Mapped[int]


class PaymentReward(Base):
    """The points a payment earned from a reward campaign, and what a refund took back."""

    __tablename__ = "payment_rewards"
    __table_args__ = {"schema": SCHEMA}

    payment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.payments.id", name="payment_rewards_payment_id_fkey"), primary_key=True
    )
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.campaigns.id"), primary_key=True)
    journal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.journals.id"))
    lot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.lots.id"))
    month: Mapped[date]
    points: Mapped[int]
    base: Mapped[int]  # the part of the payment that earned the points: its coin part, or all of it
    clawed_back: Mapped[int]
