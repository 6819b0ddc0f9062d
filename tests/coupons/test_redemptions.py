"""Redeeming: paying with a claimed coupon (shop- or sponsor-funded), its preview, a free item
redeemed by its code at the shop, and the refund that gives a coupon back. Amounts are worked
out by hand; every refusal leaves nothing changed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from services.coupons import public as coupons_public
from services.wallet import public as wallet_public
from tests.coupons.flows import (
    FARM,
    HANAKO,
    REGION,
    TARO,
    TEAHOUSE,
    add_store,
    claimed,
    funded_sponsor,
    issue,
    pay,
    store_qr,
)
from tests.helpers import assert_problem, idem, ledger_violations, shop_notices, snapshot


async def balance(client, tokens, subject: str = HANAKO) -> int:
    return (await client.get("/v1/wallet", headers=tokens.resident(subject))).json()["balance"]


async def budget(sessionmaker, sponsor_id) -> int:
    async with sessionmaker() as s:
        return (await wallet_public.sponsor(s, region=REGION, sponsor_id=sponsor_id)).budget


async def stock(sessionmaker, coupon_id: str) -> coupons_public.StockState:
    async with sessionmaker() as s:
        return await coupons_public.stock_state(s, region=REGION, coupon_id=coupon_id)


async def test_paying_with_a_shops_coupon_lowers_the_price_and_redeems_it(client, tokens, town, sessionmaker):
    coupon = await issue(client, tokens, town)
    claim = await claimed(client, tokens, coupon["id"])
    qr = await store_qr(client, tokens, town)
    body = {"qr": qr, "amount": 1_000, "claim_id": claim["id"]}

    before = await snapshot(sessionmaker)
    preview = await client.post("/v1/coupons/payments/preview", headers=tokens.resident(), json=body)
    assert preview.status_code == 200, preview.text
    quote = preview.json()
    assert (quote["price"], quote["discount"], quote["to_pay"], quote["funded_by"], quote["sponsor_id"]) == (
        1_000, 100, 900, "shop", None)
    assert await snapshot(sessionmaker) == before

    response = await pay(client, tokens, qr, 1_000, claim["id"])
    assert response.status_code == 201, response.text
    payment, redemption = response.json()["payment"], response.json()["redemption"]
    # ¥1,000 less ¥100: the resident pays 900, and the 2 % fee is on what was paid.
    assert (payment["price"], payment["amount"], payment["fee"]) == (1_000, 900, 18)
    assert (redemption["payment_id"], redemption["price"], redemption["discount"], redemption["paid"]) == (
        payment["id"], 1_000, 100, 900)
    assert (redemption["claim_id"], redemption["funded_by"], redemption["reversed_at"]) == (claim["id"], "shop", None)
    assert await balance(client, tokens) == 30_000 - 900
    mine = (await client.get("/v1/coupons/claims", headers=tokens.resident())).json()["items"]
    assert [(c["state"], c["redeemed_at"]) for c in mine] == [("redeemed", "2026-04-01T09:30:00+09:00")]
    async with sessionmaker() as s:
        recorded = await wallet_public.payment_discount(s, region=REGION, payment_id=payment["id"])
    assert (recorded.discount, recorded.reference) == (100, redemption["id"])
    assert await ledger_violations(sessionmaker) == []


async def test_a_sponsors_coupon_is_paid_to_the_shop_from_its_budget(client, tokens, town, sessionmaker, clock):
    sponsor_id = await funded_sponsor(sessionmaker, clock, 1_000)
    coupon = await issue(client, tokens, town, None, kind="percent_off", value=1_000, max_discount=300, min_spend=1_000,
                         funded_by="sponsor", sponsor_id=str(sponsor_id))
    claim = await claimed(client, tokens, coupon["id"])
    response = await pay(client, tokens, await store_qr(client, tokens, town), 5_000, claim["id"])
    assert response.status_code == 201, response.text
    # 10 % of ¥5,000 is 500, capped at 300: the resident pays 4,700; the sponsor pays the shop 300.
    assert (response.json()["payment"]["amount"], response.json()["redemption"]["discount"]) == (4_700, 300)
    assert await budget(sessionmaker, sponsor_id) == 700
    assert await ledger_violations(sessionmaker) == []


async def test_a_fixed_price_coupon_makes_the_resident_pay_its_price(client, tokens, town):
    coupon = await issue(client, tokens, town, kind="fixed_price", value=500, min_spend=800)
    claim = await claimed(client, tokens, coupon["id"])
    response = await pay(client, tokens, await store_qr(client, tokens, town), 1_200, claim["id"])
    assert response.status_code == 201, response.text
    assert (response.json()["payment"]["amount"], response.json()["redemption"]["discount"]) == (500, 700)


async def test_a_region_wide_coupon_is_valid_at_any_store_or_at_those_it_lists(client, tokens, town):
    anywhere = await issue(client, tokens, town, None)
    claim = await claimed(client, tokens, anywhere["id"])
    assert (await pay(client, tokens, await store_qr(client, tokens, town, FARM), 1_000, claim["id"])).status_code == 201
    stall = await add_store(client, tokens, town, "Market stall")
    listed = await issue(client, tokens, town, None, store_ids=[stall])
    claim = await claimed(client, tokens, listed["id"])
    response = await pay(client, tokens, await store_qr(client, tokens, town, store_id=stall), 1_000, claim["id"])
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("case, status, slug", [
    ("unknown claim", 404, "claim-not-found"),
    ("someone else's claim", 404, "claim-not-found"),
    ("already used", 409, "coupon-already-used"),
    ("paused", 409, "coupon-not-active"),
    ("ended", 409, "coupon-not-active"),
    ("expired", 409, "coupon-expired"),
    ("below minimum spend", 422, "below-minimum-spend"),
    ("another merchant's store", 409, "coupon-not-valid-at-store"),
    ("a store it does not list", 409, "coupon-not-valid-at-store"),
    ("sponsor budget exhausted", 409, "sponsor-budget-exhausted"),
    ("a free item", 409, "coupon-not-for-payment"),
    ("insufficient balance", 402, "insufficient-balance"),
])
async def test_a_payment_with_a_coupon_refused_changes_nothing(
    client, tokens, town, sessionmaker, clock, case, status, slug
):
    admin = tokens.merchant_admin(town.merchants[TEAHOUSE])
    changes = {}
    if case == "sponsor budget exhausted":
        sponsor_id = await funded_sponsor(sessionmaker, clock, 50)
        changes = {"merchant": None, "funded_by": "sponsor", "sponsor_id": str(sponsor_id)}
    elif case == "a free item":
        changes = {"kind": "free_item", "value": None, "min_spend": 0}
    elif case == "a store it does not list":
        stall = await add_store(client, tokens, town, "Market stall")
        changes = {"store_ids": [stall]}
    coupon = await issue(client, tokens, town, **{"merchant": TEAHOUSE, **changes})
    claim = await claimed(client, tokens, coupon["id"])
    qr, amount, claim_id, payer = await store_qr(client, tokens, town), 1_000, claim["id"], HANAKO
    if case == "unknown claim":
        claim_id = "01a23000-0000-7000-8000-000000000000"
    elif case == "someone else's claim":
        payer = TARO
    elif case == "already used":
        assert (await pay(client, tokens, qr, 1_000, claim_id)).status_code == 201
    elif case in ("paused", "ended"):
        action = "pause" if case == "paused" else "end"
        assert (await client.post(f"/v1/coupons/{coupon['id']}/{action}", headers=idem(admin))).status_code == 200
    elif case == "expired":
        clock.set(datetime(2026, 4, 30, 15, 0, tzinfo=UTC))
    elif case == "below minimum spend":
        amount = 499
    elif case == "another merchant's store":
        qr = await store_qr(client, tokens, town, FARM)
    elif case == "insufficient balance":
        amount = 30_101  # ¥30,001 after the ¥100 off; Hanako holds 30,000
    before = await snapshot(sessionmaker)
    body = {"qr": qr, "amount": amount, "claim_id": claim_id}
    if case not in ("sponsor budget exhausted", "insufficient balance", "already used"):
        # The preview makes the same checks of the coupon (the wallet's come only with paying).
        preview = await client.post("/v1/coupons/payments/preview", headers=tokens.resident(payer), json=body)
        assert_problem(preview, status, slug)
    assert_problem(await pay(client, tokens, qr, amount, claim_id, payer), status, slug)
    assert await snapshot(sessionmaker) == before


async def test_two_payments_with_one_claim_at_once_redeem_it_once(client, tokens, town, sessionmaker):
    coupon = await issue(client, tokens, town)
    claim = await claimed(client, tokens, coupon["id"])
    qr = await store_qr(client, tokens, town)
    answers = await asyncio.gather(*(pay(client, tokens, qr, 1_000, claim["id"]) for _ in range(5)))
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409, 409]
    for answer in answers:
        if answer.status_code == 409:
            assert_problem(answer, 409, "coupon-already-used")
    assert await balance(client, tokens) == 30_000 - 900


# --- a free item, redeemed by its code ---------------------------------------------------------------------


async def test_the_shop_redeems_a_free_items_code_once(client, tokens, town, sessionmaker):
    coupon = await issue(client, tokens, town, kind="free_item", value=None, min_spend=0)
    claim = await claimed(client, tokens, coupon["id"])
    store_id = (await client.get(f"/v1/merchants/{town.merchants[TEAHOUSE]}/stores", headers=tokens.operator())).json()[0]["id"]
    staff = tokens.merchant_staff(town.merchants[TEAHOUSE])
    response = await client.post("/v1/coupons/redemptions", headers=idem(staff),
                                 json={"code": claim["code"], "store_id": store_id})
    assert response.status_code == 201, response.text
    redemption = response.json()
    assert (redemption["claim_id"], redemption["payment_id"], redemption["discount"], redemption["store_id"]) == (
        claim["id"], None, 0, store_id)
    mine = (await client.get("/v1/coupons/claims", headers=tokens.resident())).json()["items"]
    assert [c["state"] for c in mine] == ["redeemed"]

    before = await snapshot(sessionmaker)
    again = await client.post("/v1/coupons/redemptions", headers=idem(staff), json={"code": claim["code"], "store_id": store_id})
    assert_problem(again, 409, "coupon-already-used")
    assert await snapshot(sessionmaker) == before


@pytest.mark.parametrize("case, status, slug", [
    ("unknown code", 404, "claim-not-found"),
    ("another merchant", 409, "coupon-not-valid-at-store"),
    ("not one of the shop's stores", 409, "coupon-not-valid-at-store"),
    ("paused", 409, "coupon-not-active"),
    ("expired", 409, "coupon-expired"),
])
async def test_a_code_redemption_refused_changes_nothing(client, tokens, town, sessionmaker, clock, case, status, slug):
    coupon = await issue(client, tokens, town, kind="free_item", value=None, min_spend=0)
    claim = await claimed(client, tokens, coupon["id"])
    merchant = FARM if case == "another merchant" else TEAHOUSE
    stores = (await client.get(f"/v1/merchants/{town.merchants[merchant]}/stores", headers=tokens.operator())).json()
    store_id, code = stores[0]["id"], claim["code"]
    if case == "unknown code":
        code = "A" * 16
    elif case == "not one of the shop's stores":
        store_id = (await client.get(f"/v1/merchants/{town.merchants[FARM]}/stores", headers=tokens.operator())).json()[0]["id"]
    elif case == "paused":
        admin = tokens.merchant_admin(town.merchants[TEAHOUSE])
        assert (await client.post(f"/v1/coupons/{coupon['id']}/pause", headers=idem(admin))).status_code == 200
    elif case == "expired":
        clock.set(datetime(2026, 4, 30, 15, 0, tzinfo=UTC))
    before = await snapshot(sessionmaker)
    response = await client.post("/v1/coupons/redemptions", headers=idem(tokens.merchant_staff(town.merchants[merchant])),
                                 json={"code": code, "store_id": store_id})
    assert_problem(response, status, slug)
    assert await snapshot(sessionmaker) == before


# --- refunds ----------------------------------------------------------------------------------------------


async def refund(client, tokens, town, payment_id: str, amount: int):
    response = await client.post(f"/v1/payments/{payment_id}/refunds",
                                 headers=idem(tokens.merchant_staff(town.merchants[TEAHOUSE])), json={"amount": amount})
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_full_refund_gives_the_coupon_back(client, tokens, town, sessionmaker, clock):
    sponsor_id = await funded_sponsor(sessionmaker, clock, 1_000)
    coupon = await issue(client, tokens, town, None, stock=1, funded_by="sponsor", sponsor_id=str(sponsor_id))
    claim = await claimed(client, tokens, coupon["id"])
    paid = (await pay(client, tokens, await store_qr(client, tokens, town), 1_000, claim["id"])).json()
    assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(1, 0, 1, 1)

    await refund(client, tokens, town, paid["payment"]["id"], 900)
    # The claim is released, the stock and Hanako's count are back; the wallet gave the sponsor its 100.
    assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(1, 1, 0, 0)
    mine = (await client.get("/v1/coupons/claims", headers=tokens.resident())).json()["items"]
    assert [c["state"] for c in mine] == ["released"]
    assert (await balance(client, tokens), await budget(sessionmaker, sponsor_id)) == (30_000, 1_000)
    assert await ledger_violations(sessionmaker) == []
    # Someone may claim it again (Hanako too: her count is back to 0).
    assert (await claimed(client, tokens, coupon["id"], HANAKO))["state"] == "claimed"


async def test_a_partial_refund_keeps_the_redemption(client, tokens, town, sessionmaker):
    coupon = await issue(client, tokens, town, stock=1)
    claim = await claimed(client, tokens, coupon["id"])
    paid = (await pay(client, tokens, await store_qr(client, tokens, town), 1_000, claim["id"])).json()
    await refund(client, tokens, town, paid["payment"]["id"], 400)
    assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(1, 0, 1, 1)
    # Two partial refunds that add up to the whole payment are a full refund: the coupon comes back then.
    await refund(client, tokens, town, paid["payment"]["id"], 500)
    assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(1, 1, 0, 0)


async def test_a_payment_with_a_coupon_tells_the_shop(app, client, tokens, town):
    """Its terminals hear it as any payment: one notice after the commit, as the wallet records it."""
    coupon = await issue(client, tokens, town)
    claim = await claimed(client, tokens, coupon["id"])
    qr = await store_qr(client, tokens, town)
    answers = []

    async def act():
        answers.append(await pay(client, tokens, qr, 1_000, claim["id"]))

    notices = await shop_notices(app, town.merchants[TEAHOUSE], act)
    assert answers[0].status_code == 201, answers[0].text
    payment = answers[0].json()["payment"]
    assert [(n["id"], n["amount"], n["fee"]) for n in notices] == [(payment["id"], 900, 18)]
