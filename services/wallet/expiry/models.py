"""The record of each expiry run (one per region and date)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from services.wallet.ledger.models import SCHEMA
from shared.models import Base


class ExpiryRun(Base):
    __tablename__ = "expiry_runs"
    __table_args__ = {"schema": SCHEMA}

    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"), primary_key=True)
    as_of: Mapped[date] = mapped_column(primary_key=True)
    status: Mapped[str]  # running (resumable) | done
    lots_expired: Mapped[int] = mapped_column(Integer)
    yen_expired: Mapped[int]
    points_expired: Mapped[int]
    notices: Mapped[int] = mapped_column(Integer)
    started_by: Mapped[str]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
