"""What the data platform receives: the events' content, and the JSON schema that documents it
(events.schema.json beside this module; tests validate every event delivered against it).

Each delivery is the outbox's envelope `{"id", "type", "created_at", "data"}`, signed as every
outgoing webhook is (shared/webhooks.py); `data` is one of:

- `payment.result`: one payment of a resident who shares their results, under their pseudonym;
- `payment.refunded`: a refund of such a payment, after it (the same stream), with the payment's
  refunds so far;
- `payments.daily`: one region's payments of one Tokyo day per merchant sector, everyone's, the
  only form in which those who do not share appear at all.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any

PAYMENT_RESULT = "payment.result"
PAYMENT_REFUNDED = "payment.refunded"
PAYMENTS_DAILY = "payments.daily"
# The events that name a resident (by pseudonym): withdrawn at delivery if they stopped sharing.
RESIDENTS_EVENTS = frozenset({PAYMENT_RESULT, PAYMENT_REFUNDED})
SCHEMA_PATH = Path(__file__).with_name("events.schema.json")


def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def pseudonym(key: bytes, region_id: uuid.UUID, subject: str) -> str:
    """The resident's name at the data platform: stable (the same resident always has the same
    one, so the platform can follow one person's spending over time), and without the key
    neither reversible nor linkable to their `sub` at the city's ID, which the city also holds."""
    return hmac.new(key, f"{region_id}:{subject}".encode(), hashlib.sha256).hexdigest()


def payment_result(
    *, payment_id: uuid.UUID, resident: str, region: str, area: str | None, merchant_id: uuid.UUID,
    merchant_name: str, sector: str, amount: int, point_amount: int, paid_at: datetime,
) -> dict[str, Any]:
    return {
        "payment_id": str(payment_id), "resident": resident, "region": region, "area": area,
        "merchant": {"id": str(merchant_id), "name": merchant_name, "sector": sector},
        "amount": amount, "point_amount": point_amount, "currency": "JPY", "paid_at": paid_at.isoformat(),
    }


def payment_refunded(
    *, payment_id: uuid.UUID, resident: str, region: str, amount: int, refunded_total: int, refunded_at: datetime
) -> dict[str, Any]:
    return {
        "payment_id": str(payment_id), "resident": resident, "region": region, "amount": amount,
        "refunded_total": refunded_total, "currency": "JPY", "refunded_at": refunded_at.isoformat(),
    }


def payments_daily(*, region: str, day: date, sectors: list[tuple[str, int, int]], min_payments: int) -> dict[str, Any]:
    """`sectors`: (sector, payments, amount) of the day, each sector once."""
    return {
        "region": region, "day": day.isoformat(), "currency": "JPY", "min_payments": min_payments,
        "sectors": [{"sector": s, "payments": n, "amount": a} for s, n, a in sectors],
    }
