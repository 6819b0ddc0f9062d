"""Tables of segments, in the coupons schema: residents' profiles (attributes and consents), the
operator's segments and every version of their filters, and the announcements sent to them.

Region ids are the wallet's (`services.wallet.public.region_id`) without a foreign key: the
coupons service never touches the wallet's tables, not even by a constraint."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ARRAY, CheckConstraint, ForeignKey, ForeignKeyConstraint, Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.models import Base

SCHEMA = "coupons"


class AgeBand(StrEnum):
    UNDER_20 = "under_20"
    TWENTIES = "20s"
    THIRTIES = "30s"
    FORTIES = "40s"
    FIFTIES = "50s"
    SIXTIES = "60s"
    SEVENTY_PLUS = "70_plus"


class Interest(StrEnum):
    FOOD = "food"
    SHOPPING = "shopping"
    TOURISM = "tourism"
    CULTURE = "culture"
    HEALTH = "health"
    SPORTS = "sports"
    NATURE = "nature"


class TransportMode(StrEnum):
    CAR = "car"
    BUS = "bus"
    BICYCLE = "bicycle"
    WALK = "walk"
    TRAIN = "train"
    OTHER = "other"


def _one_of(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class ResidentProfile(Base):
    """What a resident agreed to share for offers. A row exists only while one consent is given
    (withdrawing both deletes it), and attributes only while `segments` is: the database refuses
    an attribute without that consent, so no code path can keep one past an opt-out."""

    __tablename__ = "resident_profiles"
    __table_args__ = (
        CheckConstraint("segments_consent OR personalised_consent", "some_consent"),
        CheckConstraint(
            "segments_consent OR (age_band IS NULL AND area IS NULL AND transport_mode IS NULL"
            " AND cardinality(interests) = 0)",
            "attributes_need_consent",
        ),
        CheckConstraint(f"age_band IS NULL OR {_one_of('age_band', AgeBand)}", "age_band"),
        CheckConstraint(f"transport_mode IS NULL OR {_one_of('transport_mode', TransportMode)}", "transport_mode"),
        CheckConstraint(
            f"interests <@ ARRAY[{', '.join(repr(v.value) for v in Interest)}]::text[]", "interests"
        ),
        CheckConstraint("area IS NULL OR area ~ '^[a-z0-9][a-z0-9_-]{0,31}$'", "area_code"),
        {"schema": SCHEMA},
    )

    region_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(primary_key=True)  # the resident's token subject
    segments_consent: Mapped[bool]  # the attributes below may be used to target offers
    personalised_consent: Mapped[bool]  # the resident's own chiikipay activity may be used
    age_band: Mapped[str | None]
    area: Mapped[str | None]  # a code the region's operator publishes to the app (a district, a school zone)
    interests: Mapped[list[str]] = mapped_column(ARRAY(Text))
    transport_mode: Mapped[str | None]
    updated_at: Mapped[datetime]


class Segment(Base):
    """A named audience. Its filters live in `segment_versions`: a change of filters adds a
    version and never edits one, so a distribution that recorded (segment, version) can always
    tell whom it meant (a rename is only audited). Archived segments keep their versions but are
    gone for every use."""

    __tablename__ = "segments"
    __table_args__ = (
        Index("uq_segments_region_id_name", "region_id", "name", unique=True,
              postgresql_where=text("archived_at IS NULL")),
        Index("ix_segments_region_id_id", "region_id", "id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    name: Mapped[str]
    version: Mapped[int] = mapped_column(Integer)  # the version in force
    created_by: Mapped[str]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    archived_at: Mapped[datetime | None]


class SegmentVersion(Base):
    """One version of a segment's filters, never changed."""

    __tablename__ = "segment_versions"
    __table_args__ = (CheckConstraint("version >= 1", "version_positive"), {"schema": SCHEMA})

    segment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.segments.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    # A list of filters as services/coupons/segments/filters.py validates them (a tagged union).
    filters: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    created_by: Mapped[str]
    created_at: Mapped[datetime]


class Announcement(Base):
    """A plain message the operator sent to a segment, at the version in force then: one wallet
    notice per resident it matched (`recipients` of them)."""

    __tablename__ = "announcements"
    __table_args__ = (
        ForeignKeyConstraint(
            ["segment_id", "segment_version"], [f"{SCHEMA}.segment_versions.segment_id", f"{SCHEMA}.segment_versions.version"],
            name="fk_announcements_segment_version",
        ),
        CheckConstraint("recipients > 0", "recipients_positive"),
        Index("ix_announcements_segment_id_id", "segment_id", "id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    segment_id: Mapped[uuid.UUID]
    segment_version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str]
    body: Mapped[str]
    recipients: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str]
    created_at: Mapped[datetime]
