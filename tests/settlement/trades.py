"""Payments and refunds made through the wallet's public surface at a chosen Tokyo time, as
settlement's tests need them (its runs and its reports read what these write)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import text

from services.wallet import public
from shared.audit import Actor
from shared.clock import TOKYO

REGION = "aizu"
CITY = Actor(subject="operator-aizu", role="operator", request_id="settlement-test")
HANAKO = "resident-hanako"
TEAHOUSE = "Tsurugajo Teahouse"


def jst(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=TOKYO)


async def pay(sessionmaker, clock, town, at: datetime, price: int, *, payer: str = HANAKO,
              merchant: str = TEAHOUSE) -> public.PaidPayment:
    clock.set(at)
    async with sessionmaker() as s, s.begin():
        shop = await public.merchant(s, region=REGION, merchant_id=uuid.UUID(town.merchants[merchant]))
        return await public.pay(s, clock, region=REGION, actor=CITY, payer=payer, store_id=shop.store_ids[0],
                                price=price)


async def refund(sessionmaker, clock, at: datetime, paid: public.PaidPayment, amount: int) -> public.RefundMade:
    clock.set(at)
    async with sessionmaker() as s, s.begin():
        return await public.refund(s, clock, region=REGION, actor=CITY, payment_id=paid.id, amount=amount)


async def refunds_allowed_for(sessionmaker, days: int) -> None:
    async with sessionmaker() as s, s.begin():
        await s.execute(text("UPDATE wallet.regions SET refund_window_days = :days"), {"days": days})
