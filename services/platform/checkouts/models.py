"""The checkouts' table (schema `platform`, migration 0029). The wallet's payment a checkout
became is named by id only: the platform reaches the wallet through services/wallet/public.py."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models import Base

SCHEMA = "platform"


class CheckoutStatus(StrEnum):
    OPEN = "open"  # waiting for the resident, until expires_at
    PAID = "paid"  # the resident approved: paid by the wallet payment payment_id (refunds keep it paid)
    DECLINED = "declined"  # the resident said no
    CANCELLED = "cancelled"  # the partner withdrew it before it was paid
    EXPIRED = "expired"  # nobody approved it in time (the expiry sweep)


class Checkout(Base):
    __tablename__ = "checkouts"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'paid', 'declined', 'cancelled', 'expired')", "status"),
        CheckConstraint("(status = 'paid') = (payment_id IS NOT NULL)", "paid"),
        CheckConstraint("amount > 0 AND refunded BETWEEN 0 AND amount", "amounts"),
        Index("ix_checkouts_partner_id_id", "partner_id", "id"),
        # A refund of any payment asks whether it paid a checkout (service.on_refunded).
        Index("uq_checkouts_payment_id", "payment_id", unique=True, postgresql_where=text("payment_id IS NOT NULL")),
        # The expiry sweep reads only the open ones.
        Index("ix_checkouts_open_expires_at", "expires_at", postgresql_where=text("status = 'open'")),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    partner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.partner_services.id"))
    merchant_id: Mapped[uuid.UUID]  # the partner's, when the checkout was made
    amount: Mapped[int]  # yen
    order_reference: Mapped[str]  # the partner's own order number
    description: Mapped[str]
    callback_url: Mapped[str]  # where its webhooks go
    success_url: Mapped[str]  # where the app returns the resident after paying
    cancel_url: Mapped[str]  # … after declining, or once it is cancelled or expired
    status: Mapped[str]
    expires_at: Mapped[datetime]
    payer: Mapped[str | None]  # the resident (subject) who approved or declined it
    payment_id: Mapped[uuid.UUID | None]
    refunded: Mapped[int]  # yen refunded so far, through the wallet's refunds
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]  # when it was paid, declined, cancelled or expired
