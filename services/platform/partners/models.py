"""Tables of partner services (schema `platform`, migration 0029): the partner services the
operator registered and their API keys. The wallet's merchant a partner settles to is named by
id only, without a foreign key: the platform reaches the wallet through services/wallet/public.py."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from shared.models import Base

SCHEMA = "platform"


class PartnerStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"  # its keys no longer authenticate; its checkouts' events are still delivered


class PartnerService(Base):
    __tablename__ = "partner_services"
    __table_args__ = (
        UniqueConstraint("region_id", "name"),
        CheckConstraint("status IN ('active', 'revoked') AND (status = 'revoked') = (revoked_at IS NOT NULL)", "status"),
        CheckConstraint("cardinality(callback_urls) BETWEEN 1 AND 20", "callback_urls"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    name: Mapped[str]
    merchant_id: Mapped[uuid.UUID]  # the wallet's merchant its checkouts pay (and settlement pays out)
    # Where its webhooks and its residents' return links may point (service.url_allowed).
    callback_urls: Mapped[list[str]] = mapped_column(ARRAY(Text))
    # Signs its webhooks (shared/webhooks.py); kept as is, since signing needs it, and shown
    # to the operator only when made.
    signing_secret: Mapped[str]
    status: Mapped[str]
    created_by: Mapped[str]
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class PartnerKey(Base):
    """A partner service's API key; only its hash is kept (shared.auth.hash_api_key)."""

    __tablename__ = "partner_keys"
    __table_args__ = (Index("ix_partner_keys_partner_id", "partner_id"), {"schema": SCHEMA})

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    region_code: Mapped[str]  # what the key's principal carries, without a join on every request
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.partner_services.id"))
    secret_hash: Mapped[str] = mapped_column(unique=True)
    created_by: Mapped[str]
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
