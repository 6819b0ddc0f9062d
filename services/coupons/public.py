"""The coupons service's public surface: what settlement and the KPI reports read of coupons
(issue 13, item 7), in the caller's session, read-only.

Counting per day
    `daily_counts(session, region=, since=, until=, merchant_id=) -> list[CouponDay]`: per Tokyo
    day in [since, until) (dates, `until` exclusive) and per coupon (with its merchant; None for
    a region-wide coupon): the claims made that day (a claim later released still counts: it
    was a claim), and the redemptions made that day that still stand (one reversed by a full
    refund does not count), with the discount they gave by funder (`shop_discount`,
    `sponsor_discount`, yen) and the coupon-driven sales (`coupon_sales`: what residents paid
    with a coupon, after its discount; a free item's redemption adds nothing). Rows come in
    (day, coupon) order; a day and coupon without claims or redemptions has no row.
    `merchant_id` keeps the coupons that merchant issued.

Stock
    `stock_state(session, region=, coupon_id=) -> StockState`: the coupon's stock, what is left
    to claim, the claims held (claimed or redeemed) and the sum of the residents' holdings. At
    every commit stock = left + held (a coupon never activated: left = stock) and held = holdings.
    Refuses coupon-not-found.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy.ext.asyncio import AsyncSession

from services.coupons import repository as repo
from services.coupons import service
from services.coupons.errors import CouponNotFound
from services.wallet import public as wallet
from shared.clock import TOKYO

__all__ = ["CouponDay", "StockState", "daily_counts", "stock_state"]


@dataclass(frozen=True)
class CouponDay:
    day: date
    coupon_id: uuid.UUID
    merchant_id: uuid.UUID | None  # None: region-wide
    claims: int
    redemptions: int
    shop_discount: int
    sponsor_discount: int
    coupon_sales: int


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), TOKYO)


async def daily_counts(
    session: AsyncSession, *, region: str, since: date, until: date, merchant_id: uuid.UUID | None = None
) -> list[CouponDay]:
    region_id = await wallet.region_id(session, region=region)
    rows = await repo.daily_counts(session, region_id, _midnight(since), _midnight(until), merchant_id)
    return [CouponDay(r.day, r.coupon_id, r.merchant_id, r.claims, r.redemptions, r.shop_discount,
                      r.sponsor_discount, r.coupon_sales) for r in rows]


@dataclass(frozen=True)
class StockState:
    stock: int
    left: int
    held: int
    holdings: int


async def stock_state(session: AsyncSession, *, region: str, coupon_id: uuid.UUID) -> StockState:
    region_id = await wallet.region_id(session, region=region)
    coupon = await repo.coupon(session, coupon_id)
    if coupon is None or coupon.region_id != region_id:
        raise CouponNotFound(f"No coupon {coupon_id} here.")
    held, holdings = await repo.held(session, coupon_id)
    return StockState(coupon.stock, await service.stock_left(session, coupon), held, holdings)
