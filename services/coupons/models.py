"""The coupons service's tables (schema `coupons`). They hold no money: a coupon's discount moves
value only through the wallet's public surface (services/wallet/public.py), and these rows keep
ids of wallet rows (regions, merchants, stores, sponsors, payments) without foreign keys into the
wallet's schema, which only the wallet touches.

Claims, holdings and redemptions name their coupon without a foreign key: each insert would take
a share lock on the one coupon row that every concurrent claim or payment with it shares (the
claim function and the services check it instead). A redemption keys its claim, a bucket its coupon.

Stock is kept in buckets (`CouponStock`) rather than on the coupon's row: a claim takes one unit
from one bucket by a conditional update, so claims of a popular coupon spread over several row
locks instead of queuing on one (as premium sales spread theirs, services/wallet/premium).
Whatever is claimed and not released leaves the buckets for good, so at every moment
stock = Σ remaining + claims held (claimed or redeemed).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, SmallInteger, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.models import Base

SCHEMA = "coupons"


class CouponKind(StrEnum):
    YEN_OFF = "yen_off"  # value: yen off the price
    PERCENT_OFF = "percent_off"  # value: basis points of the price, at most max_discount yen
    FIXED_PRICE = "fixed_price"  # value: what the resident pays for what the coupon covers
    FREE_ITEM = "free_item"  # no value: redeemed at the shop by its code, without a payment


class CouponStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"


class Funder(StrEnum):
    SHOP = "shop"
    SPONSOR = "sponsor"


class Audience(StrEnum):
    ALL = "all"
    SEGMENT = "segment"  # the residents of `segment_id`, checked live at listing and claim (audiences.py)


class ClaimStatus(StrEnum):
    CLAIMED = "claimed"
    REDEEMED = "redeemed"
    RELEASED = "released"  # its payment was refunded in full: the stock and the resident's count are back


class Coupon(Base):
    __tablename__ = "coupons"
    __table_args__ = (
        CheckConstraint("kind IN ('yen_off', 'percent_off', 'fixed_price', 'free_item')", "kind"),
        CheckConstraint("status IN ('draft', 'active', 'paused', 'ended')", "status"),
        CheckConstraint("audience IN ('all', 'segment')", "audience"),
        CheckConstraint("(audience = 'segment') = (segment_id IS NOT NULL)", "segment_named"),
        CheckConstraint("funded_by IN ('shop', 'sponsor')", "funded_by"),
        CheckConstraint("(funded_by = 'sponsor') = (sponsor_id IS NOT NULL)", "sponsor_named"),
        CheckConstraint("(kind = 'free_item') = (value IS NULL)", "value_by_kind"),
        CheckConstraint("(kind = 'percent_off') = (max_discount IS NOT NULL)", "max_by_kind"),
        CheckConstraint("kind <> 'free_item' OR funded_by = 'shop'", "free_item_by_shop"),
        CheckConstraint("valid_from < valid_until", "window"),
        CheckConstraint("stock > 0 AND per_resident_limit > 0 AND min_spend >= 0", "counts"),
        Index("ix_coupons_region_id_status", "region_id", "status"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    merchant_id: Mapped[uuid.UUID | None]  # None: region-wide, issued by the operator
    name: Mapped[str]
    kind: Mapped[str]
    value: Mapped[int | None]
    max_discount: Mapped[int | None]
    min_spend: Mapped[int]
    # None: every store of the merchant (a region-wide coupon: every store of the region)
    store_ids: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(UUID(as_uuid=True)))
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime]
    stock: Mapped[int]
    per_resident_limit: Mapped[int]
    audience: Mapped[str]
    segment_id: Mapped[uuid.UUID | None]  # a segment's coupon: its segment (services/coupons/segments)
    terms: Mapped[str]
    image_url: Mapped[str | None]
    funded_by: Mapped[str]
    sponsor_id: Mapped[uuid.UUID | None]
    status: Mapped[str]
    created_by: Mapped[str]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CouponStock(Base):
    """What is left to claim, in buckets made when the coupon is first activated."""

    __tablename__ = "stock"
    __table_args__ = (CheckConstraint("remaining >= 0", "remaining"), {"schema": SCHEMA})

    coupon_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.coupons.id"), primary_key=True)
    bucket: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    remaining: Mapped[int]


class Holding(Base):
    """How many of a coupon's claims a resident holds (claimed or redeemed, not released): the
    per-resident limit is a conditional update of this row."""

    __tablename__ = "holdings"
    __table_args__ = (CheckConstraint("held >= 0", "held"), {"schema": SCHEMA})

    coupon_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    held: Mapped[int]


class Claim(Base):
    __tablename__ = "claims"
    __table_args__ = (
        CheckConstraint("status IN ('claimed', 'redeemed', 'released')", "status"),
        Index("ix_claims_region_id_subject_id", "region_id", "subject", "id"),
        Index("ix_claims_coupon_id", "coupon_id"),
        Index("ix_claims_code", "code", unique=True, postgresql_where=text("code IS NOT NULL")),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    coupon_id: Mapped[uuid.UUID]
    subject: Mapped[str]
    bucket: Mapped[int] = mapped_column(SmallInteger)  # the stock bucket it came from, and goes back to
    code: Mapped[str | None]  # a free item's: what the shop scans
    status: Mapped[str]
    claimed_at: Mapped[datetime]
    redeemed_at: Mapped[datetime | None]
    released_at: Mapped[datetime | None]


class Redemption(Base):
    """A claim used: with a payment (its id, the price and the discount), or standalone (a free
    item: no payment). `reversed_at` is set when the payment is refunded in full."""

    __tablename__ = "redemptions"
    __table_args__ = (
        Index("ix_redemptions_claim_id", "claim_id", unique=True),
        Index("ix_redemptions_payment_id", "payment_id", unique=True, postgresql_where=text("payment_id IS NOT NULL")),
        Index("ix_redemptions_region_id_redeemed_at", "region_id", "redeemed_at"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    coupon_id: Mapped[uuid.UUID]  # the claim's (no key of its own: the claim's row is locked already)
    claim_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.claims.id"))
    merchant_id: Mapped[uuid.UUID]
    store_id: Mapped[uuid.UUID]
    payment_id: Mapped[uuid.UUID | None]
    price: Mapped[int | None]  # before the discount
    discount: Mapped[int]  # 0 for a free item
    paid: Mapped[int | None]  # what the resident paid: price − discount
    funded_by: Mapped[str]
    sponsor_id: Mapped[uuid.UUID | None]
    redeemed_by: Mapped[str]
    redeemed_at: Mapped[datetime]
    reversed_at: Mapped[datetime | None]
