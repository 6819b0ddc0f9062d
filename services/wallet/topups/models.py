"""The bank webhook events already processed."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.wallet.ledger.models import SCHEMA
from shared.models import Base


class BankEvent(Base):
    """Bank webhook events already processed, so a replayed event id moves no money."""

    __tablename__ = "bank_events"
    __table_args__ = (UniqueConstraint("region_id", "event_id"), {"schema": SCHEMA})

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    event_id: Mapped[str]
    journal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.journals.id"))
    received_at: Mapped[datetime]
