"""Bodies of the KPI report's settings."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import Field, StringConstraints

from services.settlement.kpi.service import Kpi
from shared.money import BasisPoints
from shared.schemas import Schema
from shared.text import text

Source = text(200)
Reason = text(500, required=False)


class BaselineIn(Schema):
    rate_bp: BasisPoints = Field(description="the baseline cashless fee in basis points: 309 = 3.09 %")
    source: Source


class BaselineOut(Schema):
    effective_from: date
    rate_bp: int
    source: str
    set_by: str
    set_at: datetime


class TargetIn(Schema):
    # A decimal string rather than a JSON number: a target such as 4.2 (satisfaction) must arrive
    # exactly, which a binary float cannot promise; the pattern is the whole rule, so a client
    # reading the schema cannot send a value the API would then refuse.
    target: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,15}(\.[0-9]{1,3})?$"),
                      Field(description="in the KPI's unit, as a decimal string: \"2000000\", \"4.2\"")]
    reason: text(500, required=False) = None  # type: ignore[valid-type]


class TargetOut(Schema):
    fiscal_year: int
    kpi: Kpi
    target: Decimal
    reason: str | None
    set_by: str
    set_at: datetime
