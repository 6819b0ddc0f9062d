"""Tables of point grants (migration 0005): grants, CSV uploads and their errors, partner keys."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, SmallInteger, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.models import Base

SCHEMA = "wallet"


class GrantCategory(StrEnum):
    """What the resident did to earn the points (the city reports grants by these)."""

    HEALTH_EVENT = "health_event"  # a health seminar, a sports day
    HEALTH_CHECKUP = "health_checkup"  # 特定健診, cancer screening
    WALKING = "walking"  # a step-count challenge
    ENVIRONMENTAL_ACTIVITY = "environmental_activity"  # clean-up, tree planting
    RECYCLING = "recycling"
    VOLUNTEERING = "volunteering"
    COMMUNITY_EVENT = "community_event"
    DISASTER_DRILL = "disaster_drill"


class UploadStatus(StrEnum):
    VALIDATING = "validating"  # accepted; every row is being checked, nothing granted yet
    GRANTING = "granting"  # every row passed; the grants are being written in one transaction
    DONE = "done"  # committed: every row granted (or skipped as already granted)
    REJECTED = "rejected"  # bad rows (listed) or not enough budget: nothing granted
    FAILED = "failed"  # an unexpected error: nothing granted; uploading the file again is safe


IN_PROGRESS = frozenset({UploadStatus.VALIDATING, UploadStatus.GRANTING})


class PartnerKey(Base):
    __tablename__ = "partner_keys"
    __table_args__ = (
        UniqueConstraint("secret_hash", name="partner_keys_secret_hash_key"),
        Index("ix_partner_keys_campaign", "campaign_id", "id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.campaigns.id"))
    name: Mapped[str]
    secret_hash: Mapped[str]
    created_by: Mapped[str]
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class Grant(Base):
    __tablename__ = "grants"
    __table_args__ = (
        UniqueConstraint("region_id", "campaign_id", "row_key", name="uq_grants_row_key"),
        Index("ix_grants_campaign", "campaign_id", "id"),
        Index("ix_grants_region_fiscal_year", "region_id", "fiscal_year", "category"),
        Index("ix_grants_wallet", "wallet_id", "id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.campaigns.id"))
    row_key: Mapped[str]
    wallet_id: Mapped[uuid.UUID]  # the resident's wallet (its yen account id, as the API names wallets)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.accounts.id"))  # its point account
    category: Mapped[str]
    event_id: Mapped[str]
    activity_date: Mapped[date]
    amount: Mapped[int]
    memo: Mapped[str | None]
    journal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.journals.id"))
    lot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.lots.id"))
    upload_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.grant_uploads.id"))
    partner_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.partner_keys.id"))
    actor: Mapped[str]
    fiscal_year: Mapped[int] = mapped_column(SmallInteger)
    created_at: Mapped[datetime]


class GrantUpload(Base):
    __tablename__ = "grant_uploads"
    __table_args__ = (Index("ix_grant_uploads_campaign", "campaign_id", "id"), {"schema": SCHEMA})

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.campaigns.id"))
    status: Mapped[str]
    filename: Mapped[str | None]
    content_sha256: Mapped[str]
    size_bytes: Mapped[int]
    total_rows: Mapped[int] = mapped_column(Integer)
    validated_rows: Mapped[int] = mapped_column(Integer)
    granted_rows: Mapped[int] = mapped_column(Integer)
    skipped_rows: Mapped[int] = mapped_column(Integer)
    points: Mapped[int]
    error_count: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str | None]
    partner_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.partner_keys.id"))
    created_by: Mapped[str]
    created_role: Mapped[str]
    request_id: Mapped[str | None]
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class GrantUploadFile(Base):
    __tablename__ = "grant_upload_files"
    __table_args__ = {"schema": SCHEMA}

    upload_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.grant_uploads.id"), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)


class GrantUploadError(Base):
    __tablename__ = "grant_upload_errors"
    __table_args__ = (Index("ix_grant_upload_errors_upload", "upload_id", "id"), {"schema": SCHEMA})

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    upload_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.grant_uploads.id"))
    line: Mapped[int | None] = mapped_column(Integer)  # the line of the file (the header is line 1); None: the whole file
    row_key: Mapped[str | None]
    field: Mapped[str | None]
    code: Mapped[str]
    detail: Mapped[str]
