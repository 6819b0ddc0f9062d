"""Tables of the KPI report (schema `settlement`, migration 0019): the baseline cashless fee
rates the fee savings are measured against, and the operator's targets per KPI and fiscal year.

Region ids are the wallet's, without foreign keys: settlement never touches the wallet's tables."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, Numeric, SmallInteger
from sqlalchemy.orm import Mapped, mapped_column

from shared.models import Base

SCHEMA = "settlement"


class BaselineRate(Base):
    """The ordinary cashless fee rate (DOMAIN.md: credit cards 3.09 % on average) in force from
    `effective_from` (a Tokyo day) until the next rate's; a payment's fee saving uses the rate of
    its own day. Documented in every export with its source."""

    __tablename__ = "baseline_rates"
    __table_args__ = (CheckConstraint("rate_bp BETWEEN 0 AND 10000", "rate_bp"), {"schema": SCHEMA})

    region_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    effective_from: Mapped[date] = mapped_column(primary_key=True)
    rate_bp: Mapped[int] = mapped_column(SmallInteger)  # hundredths of a percent: 309 = 3.09 %
    source: Mapped[str]  # where the figure comes from, printed beside it
    set_by: Mapped[str]
    set_at: Mapped[datetime]


class KpiTarget(Base):
    """The operator's target for one KPI in one fiscal year, in the KPI's unit, and the reason
    the report prints beside it (e.g. why it was missed)."""

    __tablename__ = "kpi_targets"
    __table_args__ = (
        CheckConstraint("target >= 0", "target"),
        CheckConstraint("fiscal_year BETWEEN 2000 AND 2100", "fiscal_year"),
        {"schema": SCHEMA},
    )

    region_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    fiscal_year: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    kpi: Mapped[str] = mapped_column(primary_key=True)
    target: Mapped[Decimal] = mapped_column(Numeric(18, 3))
    reason: Mapped[str | None]
    set_by: Mapped[str]
    set_at: Mapped[datetime]
