"""Bodies of the base-date report."""

from __future__ import annotations

from datetime import date, datetime

from shared.schemas import Schema


class KindTotalOut(Schema):
    kind: str
    journals: int
    amount: int


class BaseDateOut(Schema):
    region: str
    base_date: date
    measured_at: datetime
    unused_balance: int
    wallets: int
    threshold: int
    deposit_required: int
    movements: list[KindTotalOut]
