"""The coupons' public surface (services/coupons/public.py), as settlement and the KPI reports
read it: in a session of their own, against real PostgreSQL, with figures worked out by hand."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from services.coupons import public
from services.coupons.errors import CouponNotFound
from tests.coupons.flows import FARM, REGION, TARO, TEAHOUSE, claimed, funded_sponsor, issue, pay, store_qr
from tests.helpers import idem

APRIL_1, APRIL_2, APRIL_3 = date(2026, 4, 1), date(2026, 4, 2), date(2026, 4, 3)


async def counts(sessionmaker, since=APRIL_1, until=APRIL_3, merchant_id=None) -> list[public.CouponDay]:
    async with sessionmaker() as s:
        return await public.daily_counts(s, region=REGION, since=since, until=until, merchant_id=merchant_id)


async def test_daily_counts_give_claims_standing_redemptions_discount_by_funder_and_sales(
    client, tokens, town, sessionmaker, clock
):
    teahouse = uuid.UUID(town.merchants[TEAHOUSE])
    shops = await issue(client, tokens, town)  # the teahouse's ¥100 off from ¥500
    sponsor_id = await funded_sponsor(sessionmaker, clock, 1_000)
    city = await issue(client, tokens, town, None, value=300, funded_by="sponsor", sponsor_id=str(sponsor_id))
    qr, farm_qr = await store_qr(client, tokens, town), await store_qr(client, tokens, town, FARM)

    # 1 April: Hanako and Taro claim the teahouse's; Hanako claims the city's and pays with both.
    mine = await claimed(client, tokens, shops["id"])
    await claimed(client, tokens, shops["id"], TARO)
    city_claim = await claimed(client, tokens, city["id"])
    with_shops = (await pay(client, tokens, qr, 1_000, mine["id"])).json()
    assert (await pay(client, tokens, farm_qr, 2_000, city_claim["id"])).status_code == 201
    # The payment with the teahouse's is refunded in full (the shop refunds within the day).
    refunded = await client.post(f"/v1/payments/{with_shops['payment']['id']}/refunds",
                                 headers=idem(tokens.merchant_staff(town.merchants[TEAHOUSE])), json={"amount": 900})
    assert refunded.status_code == 201, refunded.text
    # 2 April: Sachiko claims the teahouse's.
    clock.advance(timedelta(days=1))
    await claimed(client, tokens, shops["id"], "resident-sachiko")

    shops_id, city_id = uuid.UUID(shops["id"]), uuid.UUID(city["id"])
    by_day = sorted(await counts(sessionmaker), key=lambda d: (d.day, d.coupon_id != shops_id))
    assert by_day == [
        # The teahouse's redemption was reversed by the full refund: it no longer counts.
        public.CouponDay(APRIL_1, shops_id, teahouse, claims=2, redemptions=0, shop_discount=0, sponsor_discount=0,
                         coupon_sales=0),
        # ¥2,000 less the sponsor's ¥300 at the farm: sales are what the resident paid.
        public.CouponDay(APRIL_1, city_id, None, claims=1, redemptions=1, shop_discount=0, sponsor_discount=300,
                         coupon_sales=1_700),
        public.CouponDay(APRIL_2, shops_id, teahouse, claims=1, redemptions=0, shop_discount=0, sponsor_discount=0,
                         coupon_sales=0),
    ]
    assert [d.coupon_id for d in await counts(sessionmaker, merchant_id=teahouse)] == [shops_id, shops_id]
    assert [d.day for d in await counts(sessionmaker, since=APRIL_2)] == [APRIL_2]
    assert await counts(sessionmaker, since=APRIL_3, until=APRIL_3 + timedelta(days=5)) == []


async def test_a_shops_discount_is_counted_as_the_shops(client, tokens, town, sessionmaker):
    coupon = await issue(client, tokens, town, kind="percent_off", value=1_500, max_discount=1_000, min_spend=1_000)
    claim = await claimed(client, tokens, coupon["id"])
    assert (await pay(client, tokens, await store_qr(client, tokens, town), 3_333, claim["id"])).status_code == 201
    # 15 % of ¥3,333 is 499.95: 499 off, rounded down; the resident pays 2,834.
    (day,) = await counts(sessionmaker)
    assert (day.redemptions, day.shop_discount, day.sponsor_discount, day.coupon_sales) == (1, 499, 0, 2_834)


async def test_stock_state_adds_up(client, tokens, town, sessionmaker):
    draft = await issue(client, tokens, town, activate=False, stock=7)
    active = await issue(client, tokens, town, stock=7, per_resident_limit=2)
    await claimed(client, tokens, active["id"])
    await claimed(client, tokens, active["id"])
    async with sessionmaker() as s:
        assert await public.stock_state(s, region=REGION, coupon_id=draft["id"]) == public.StockState(7, 7, 0, 0)
        assert await public.stock_state(s, region=REGION, coupon_id=active["id"]) == public.StockState(7, 5, 2, 2)
        with pytest.raises(CouponNotFound):
            await public.stock_state(s, region=REGION, coupon_id=uuid.uuid4())
