"""Bodies of settlement runs."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints

from services.settlement.periods import Cycle
from shared.schemas import Schema

PERIOD_PATTERN = r"^[0-9]{4}-[0-9]{2}(-H1|-H2|-[0-9]{2})?$"
PeriodLabel = Annotated[str, StringConstraints(pattern=PERIOD_PATTERN)]
PERIOD_RULE = "YYYY-MM monthly, YYYY-MM-H1 / YYYY-MM-H2 twice monthly, YYYY-MM-DD on demand"


class RunIn(Schema):
    period: PeriodLabel = Field(description=f"the period to settle: {PERIOD_RULE}")


class RunOut(Schema):
    id: uuid.UUID
    period: str = Field(validation_alias="label")
    cycle: Cycle
    first_day: date
    last_day: date
    pay_date: date = Field(description="the transfer file's date, a bank business day")
    minimum_payout: int = Field(description="yen: the payout settings the run applied")
    merchants: int = Field(description="statements in the run")
    lines: int = Field(description="statement lines it settled, payouts included")
    paid: int = Field(description="merchants in the transfer file")
    payout_total: int = Field(description="yen in the transfer file")
    held_back: int = Field(description="merchants held back (held-back.csv): no payable account")
    run_by: str
    run_at: datetime


class RunFile(StrEnum):
    SUMMARY = "summary.csv"
    HELD_BACK = "held-back.csv"
    ZENGIN = "zengin.txt"


class StatementFormat(StrEnum):
    CSV = "csv"
    PDF = "pdf"
