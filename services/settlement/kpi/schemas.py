"""Bodies of the KPI report's settings."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field

from services.settlement.kpi.service import Kpi
from shared.schemas import Schema
from shared.text import text

Source = text(200)
Reason = text(500, required=False)


class BaselineIn(Schema):
    rate_percent: Annotated[Decimal, Field(ge=0, le=100, decimal_places=2, description="e.g. 3.09 for 3.09 %")]
    source: Source


class BaselineOut(Schema):
    effective_from: date
    rate_percent: Decimal
    source: str
    set_by: str
    set_at: datetime


class TargetIn(Schema):
    target: Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=3, description="in the KPI's unit")]
    reason: text(500, required=False) = None  # type: ignore[valid-type]


class TargetOut(Schema):
    fiscal_year: int
    kpi: Kpi
    target: Decimal
    reason: str | None
    set_by: str
    set_at: datetime
