"""Tables of bundles (schema `coupons`, migration 0019): the operator's bundles, their coupon
parts, and residents' bundle claims.

A part names its coupon, and a claim its coupon claims and ticket, by id without foreign keys
into the tables of the coupons core and of transit: bundles sit above both and reach them only
through their services, and a key would make every bundle claim share-lock the coupon's row that
all of its claims already contend for (services/coupons/models.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, SmallInteger, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.models import Base

SCHEMA = "coupons"


class BundleStatus(StrEnum):
    DRAFT = "draft"
    DISTRIBUTED = "distributed"
    ENDED = "ended"


class BundleAudience(StrEnum):
    ALL = "all"
    SEGMENT = "segment"


class TicketFunder(StrEnum):
    """Who pays the bus operator for the ticket a bundle grants."""

    OPERATOR = "operator"  # the bus operator gives the ride: no payment, fare 0
    SPONSOR = "sponsor"  # a sponsor's budget pays the bus operator the fare


class Bundle(Base):
    __tablename__ = "bundles"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'distributed', 'ended')", "status"),
        CheckConstraint("audience IN ('all', 'segment')", "audience"),
        CheckConstraint("(audience = 'segment') = (segment_id IS NOT NULL)", "segment_named"),
        CheckConstraint("starts_at < ends_at", "window"),
        CheckConstraint(
            "(product_id IS NULL) = (rider_category IS NULL) AND (product_id IS NULL) = (ticket_funded_by IS NULL)",
            "ticket_whole",
        ),
        CheckConstraint("ticket_funded_by IN ('operator', 'sponsor')", "ticket_funded_by"),
        CheckConstraint("(ticket_funded_by = 'sponsor') = (sponsor_id IS NOT NULL)", "sponsor_named"),
        CheckConstraint("(distributed_at IS NULL) = (recipients IS NULL)", "distribution_recorded"),
        CheckConstraint("status <> 'distributed' OR distributed_at IS NOT NULL", "distributed"),
        Index("ix_bundles_region_id_status", "region_id", "status"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    name: Mapped[str]
    terms: Mapped[str]
    audience: Mapped[str]
    segment_id: Mapped[uuid.UUID | None]  # audience segment: the segment (services/coupons/segments)
    starts_at: Mapped[datetime]  # claimable from then
    ends_at: Mapped[datetime]  # exclusive
    # The ticket it grants, if any: a fare product of a bus operator, for a rider category.
    product_id: Mapped[uuid.UUID | None]
    rider_category: Mapped[str | None]
    ticket_funded_by: Mapped[str | None]
    sponsor_id: Mapped[uuid.UUID | None]
    status: Mapped[str]
    # The distribution: when, to which version of the segment, how many notices.
    distributed_at: Mapped[datetime | None]
    segment_version: Mapped[int | None] = mapped_column(Integer)
    recipients: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class BundlePart(Base):
    """A coupon of the bundle; `position` keeps the order the operator listed them in."""

    __tablename__ = "bundle_parts"
    __table_args__ = (UniqueConstraint("region_id", "bundle_id", "position"), {"schema": SCHEMA})

    bundle_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.bundles.id"), primary_key=True)
    coupon_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    position: Mapped[int] = mapped_column(SmallInteger)


class BundleClaim(Base):
    """A resident's claim of a bundle, once per resident: the coupon claims it made (one per
    part, in the parts' order) and the ticket it granted."""

    __tablename__ = "bundle_claims"
    __table_args__ = (
        UniqueConstraint("region_id", "bundle_id", "subject"),
        Index("ix_bundle_claims_region_id_claimed_at", "region_id", "claimed_at"),
        Index("ix_bundle_claims_region_id_subject_id", "region_id", "subject", "id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    bundle_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.bundles.id"))
    subject: Mapped[str]
    claimed_at: Mapped[datetime]
    claim_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)))
    ticket_id: Mapped[uuid.UUID | None]


class BundleSettings(Base):
    """The operator's measure of the rides a bundle created (issue 13, item 7): a ride counts when
    it is taken within `created_ride_days` (N) of claiming a bundle by a resident who had taken
    no ride in the `quiet_days` (M) before the claim. A region without a row uses the defaults."""

    __tablename__ = "bundle_settings"
    __table_args__ = (
        CheckConstraint("created_ride_days BETWEEN 1 AND 366 AND quiet_days BETWEEN 1 AND 366", "days"),
        {"schema": SCHEMA},
    )

    region_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    created_ride_days: Mapped[int] = mapped_column(SmallInteger)
    quiet_days: Mapped[int] = mapped_column(SmallInteger)
    set_by: Mapped[str]
    set_at: Mapped[datetime]
