"""Paying with coupons and refunding keep the ledger's invariants and the coupons' own counts:
property-based over random coupon kinds, values, funders, prices and (partial or full) refunds,
against a model worked out alongside."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from services.coupons import public as coupons_public
from services.wallet import public as wallet_public
from tests.coupons.flows import REGION, TEAHOUSE, claim, funded_sponsor, issue, pay, store_qr
from tests.helpers import idem, ledger_violations

RESIDENTS = ("resident-hanako", "resident-taro", "resident-sachiko")
sponsors = itertools.count()


@st.composite
def coupons(draw):
    kind = draw(st.sampled_from(["yen_off", "percent_off", "fixed_price"]))
    if kind == "percent_off":
        value = draw(st.integers(100, 5_000))
        fields = {"value": value, "max_discount": draw(st.integers(1, 800)),
                  "min_spend": draw(st.integers(-(-10_000 // value), 2_000))}
    else:
        value = draw(st.integers(1, 800))
        fields = {"value": value, "min_spend": draw(st.integers(value + 1, value + 1_500))}
    sponsored = draw(st.booleans())
    return {"kind": kind, **fields, "stock": draw(st.integers(1, 3)), "per_resident_limit": draw(st.integers(1, 2)),
            "budget": draw(st.integers(0, 1_500)) if sponsored else None}


def discount_of(coupon: dict, price: int) -> int:
    if coupon["kind"] == "yen_off":
        return coupon["value"]
    if coupon["kind"] == "percent_off":
        return min(price * coupon["value"] // 10_000, coupon["max_discount"])
    return price - coupon["value"]


attempts = st.lists(
    st.tuples(
        st.sampled_from(RESIDENTS),
        st.integers(-200, 2_500),  # price above the minimum spend (negative: below it)
        st.sampled_from(["none", "partial", "full", "partial then the rest"]),
        st.floats(0.01, 0.99),
    ),
    min_size=1, max_size=5,
)


@hypothesis_settings(
    max_examples=25, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(coupon=coupons(), tries=attempts)
async def test_coupon_payments_and_refunds_keep_every_invariant(client, tokens, town, sessionmaker, clock, coupon, tries):
    operator, staff = tokens.operator(), tokens.merchant_staff(town.merchants[TEAHOUSE])
    for resident in RESIDENTS:  # enough for any price here, whatever earlier examples spent
        wallet = (await client.get("/v1/wallet", headers=tokens.resident(resident))).json()
        if wallet["balance"] < 10_000:
            topped = await client.post(f"/v1/wallets/{wallet['id']}/topups", headers=idem(operator), json={"amount": 10_000})
            assert topped.status_code == 201, topped.text
    budget, sponsor_id = coupon.pop("budget"), None
    if budget is not None:
        sponsor_id = await funded_sponsor(sessionmaker, clock, budget, name=f"Sponsor {next(sponsors)}")
        issued = await issue(client, tokens, town, None, funded_by="sponsor", sponsor_id=str(sponsor_id), **coupon)
    else:
        issued = await issue(client, tokens, town, **coupon)
    qr = await store_qr(client, tokens, town)
    model_budget, stock_left, held = budget, coupon["stock"], {r: 0 for r in RESIDENTS}

    for resident, above, refunds, share in tries:
        claimed = await claim(client, tokens, issued["id"], resident)
        if stock_left == 0 or held[resident] == coupon["per_resident_limit"]:
            assert claimed.status_code == 409, claimed.text
            continue
        assert claimed.status_code == 201, claimed.text
        stock_left, held[resident] = stock_left - 1, held[resident] + 1
        price = coupon["min_spend"] + above
        paid = await pay(client, tokens, qr, max(price, 1), claimed.json()["id"], resident)
        discount = discount_of(coupon, price) if price >= coupon["min_spend"] else 0
        if price < coupon["min_spend"] or price <= 0:
            assert paid.status_code == 422, paid.text
            continue
        if sponsor_id is not None and discount > model_budget:
            assert paid.json()["type"].endswith("sponsor-budget-exhausted"), paid.text
            continue
        assert paid.status_code == 201, paid.text
        amount = paid.json()["payment"]["amount"]
        assert (amount, paid.json()["redemption"]["discount"]) == (price - discount, discount)
        model_budget = model_budget - discount if sponsor_id is not None else None
        parts = {"none": [], "partial": [max(1, int(amount * share))], "full": [amount]}.get(refunds)
        if parts is None:  # partial then the rest
            first = max(1, int(amount * share))
            parts = [first] + ([amount - first] if amount > first else [])
        refunded = 0
        for part in parts:
            response = await client.post(f"/v1/payments/{paid.json()['payment']['id']}/refunds", headers=idem(staff),
                                         json={"amount": part})
            assert response.status_code == 201, response.text
            refunded += part
        if sponsor_id is not None:
            # The wallet's pro-rata rule: after refunds R of A, the sponsor has floor(D × R / A) back.
            model_budget += discount * refunded // amount
        if refunded == amount:
            stock_left, held[resident] = stock_left + 1, held[resident] - 1

    assert await ledger_violations(sessionmaker) == []
    async with sessionmaker() as s:
        state = await coupons_public.stock_state(s, region=REGION, coupon_id=issued["id"])
        if sponsor_id is not None:
            left = (await wallet_public.sponsor(s, region=REGION, sponsor_id=sponsor_id)).budget
            assert left == model_budget >= 0
    assert state == coupons_public.StockState(coupon["stock"], stock_left, sum(held.values()), sum(held.values()))
