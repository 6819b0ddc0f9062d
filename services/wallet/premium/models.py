"""Tables of premium campaigns (schema `wallet`, migration 0006)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ARRAY, ForeignKey, Index, Integer, SmallInteger, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.wallet.ledger.models import SCHEMA
from shared.models import Base


class SaleMode(StrEnum):
    FIRST_COME = "first_come"  # 先着: sets are sold while stock lasts during the sale window
    LOTTERY = "lottery"  # 抽選: residents apply, the operator draws, winners pay before a deadline


class ApplicationStatus(StrEnum):
    APPLIED = "applied"
    WON = "won"
    LOST = "lost"
    PAID = "paid"
    RELEASED = "released"  # won but not paid by the deadline: the sets are no longer theirs


class PremiumOffer(Base):
    """The premium offer of one premium campaign: what a set costs and gives, and how it is sold."""

    __tablename__ = "premium_offers"
    __table_args__ = {"schema": SCHEMA}

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.campaigns.id"), primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    mode: Mapped[str]
    price: Mapped[int]  # yen paid per set
    value: Mapped[int]  # what a set is worth: the price (as coin) plus the premium (as points)
    local_share_bp: Mapped[int] = mapped_column(Integer)  # share of the value usable only at `local_classes` (5000: Aizu's 50 %)
    local_classes: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    per_person: Mapped[int] = mapped_column(Integer)
    per_household: Mapped[int] = mapped_column(Integer)
    total_sets: Mapped[int] = mapped_column(Integer)
    opens_at: Mapped[datetime]  # sale (first-come) or application (lottery) window
    closes_at: Mapped[datetime]
    payment_deadline: Mapped[datetime | None]  # lottery: winners pay before this
    usable_from: Mapped[datetime | None]  # the set's lots
    usable_until: Mapped[datetime | None]
    buckets: Mapped[int] = mapped_column(SmallInteger)
    unbacked_sets: Mapped[int] = mapped_column(Integer)  # first-come sets not yet in stock because the budget did not cover them
    draw_seed: Mapped[str | None]
    draw_algorithm: Mapped[str | None]
    drawn_at: Mapped[datetime | None]
    drawn_by: Mapped[str | None]
    released_at: Mapped[datetime | None]
    created_by: Mapped[str]
    created_at: Mapped[datetime]

    @property
    def premium(self) -> int:
        return self.value - self.price


class PremiumStock(Base):
    __tablename__ = "premium_stock"
    __table_args__ = {"schema": SCHEMA}

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.premium_offers.campaign_id"), primary_key=True)
    bucket: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    remaining: Mapped[int] = mapped_column(Integer)


class PremiumTally(Base):
    """Sets bought (first-come) or applied for (lottery) per resident and per household."""

    __tablename__ = "premium_tallies"
    __table_args__ = {"schema": SCHEMA}

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.premium_offers.campaign_id"), primary_key=True)
    scope: Mapped[str] = mapped_column(primary_key=True)  # resident | household
    holder: Mapped[str] = mapped_column(primary_key=True)  # the resident's id or the household
    sets: Mapped[int] = mapped_column(Integer)


class PremiumApplication(Base):
    __tablename__ = "premium_applications"
    __table_args__ = (
        UniqueConstraint("campaign_id", "resident_id", name="premium_applications_campaign_id_resident_id_key"),
        Index("ix_premium_applications_campaign", "campaign_id", "id"),
        Index("ix_premium_applications_resident", "resident_id", "id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.premium_offers.campaign_id"))
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    resident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.residents.id"))
    household: Mapped[str | None]
    sets: Mapped[int] = mapped_column(Integer)
    status: Mapped[str]
    draw_rank: Mapped[int | None] = mapped_column(Integer)
    draw_key: Mapped[str | None]
    won_sets: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]


class PremiumPurchase(Base):
    __tablename__ = "premium_purchases"
    __table_args__ = (
        UniqueConstraint("application_id", name="premium_purchases_application_id_key"),
        Index("ix_premium_purchases_campaign", "campaign_id", "id"),
        Index("ix_premium_purchases_resident", "resident_id", "id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.campaigns.id"))
    region_id: Mapped[uuid.UUID]
    resident_id: Mapped[uuid.UUID]
    application_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.premium_applications.id"))
    sets: Mapped[int] = mapped_column(Integer)
    coin: Mapped[int]  # yen paid, re-lotted under the set's rules
    points: Mapped[int]  # the premium, from the campaign's budget
    coin_local: Mapped[int]
    points_local: Mapped[int]
    journal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.journals.id"))
    created_at: Mapped[datetime]


class PremiumPurchaseLot(Base):
    __tablename__ = "premium_purchase_lots"
    __table_args__ = {"schema": SCHEMA}

    purchase_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.premium_purchases.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    role: Mapped[str]  # taken | created
    lot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.lots.id"))
    unit: Mapped[str]
    amount: Mapped[int]
