"""Paying at the shop with the merchant's QR: static and dynamic, fees, refunds, transfers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from shared import emvco
from tests.helpers import assert_problem, idem, ledger_violations, snapshot

HANAKO = 30_000  # opening balances from app.demo
TEAHOUSE = "Tsurugajo Teahouse"


async def store_of(client, tokens, town, merchant=TEAHOUSE) -> dict:
    merchant_id = town.merchants[merchant]
    stores = (await client.get(f"/v1/merchants/{merchant_id}/stores", headers=tokens.operator())).json()
    qr = (await client.get(f"/v1/stores/{stores[0]['id']}/qr", headers=tokens.merchant_staff(merchant_id))).json()
    return {"merchant_id": merchant_id, "store_id": stores[0]["id"], "payload": qr["payload"]}


async def balances(client, tokens, town, merchant=TEAHOUSE, resident="resident-hanako") -> dict[str, int]:
    system = {a["kind"]: a["balance"] for a in (await client.get("/v1/accounts", headers=tokens.operator())).json()}
    merchant_id = town.merchants[merchant]
    shop = (await client.get(f"/v1/merchants/{merchant_id}/balance", headers=tokens.operator())).json()["balance"]
    wallet = (await client.get("/v1/wallet", headers=tokens.resident(resident))).json()["balance"]
    return {"resident": wallet, "merchant": shop, "fee_income": system["fee_income"]}


async def pay(client, tokens, payload, amount=None, resident="resident-hanako", key=None):
    body = {"qr": payload} | ({"amount": amount} if amount is not None else {})
    return await client.post("/v1/payments", json=body, headers=idem(tokens.resident(resident), key))


async def test_static_qr_payment_moves_amount_less_fee_to_the_shop(client, tokens, town, sessionmaker):
    shop = await store_of(client, tokens, town)
    response = await pay(client, tokens, shop["payload"], 1_234)
    assert response.status_code == 201, response.text
    payment = response.json()
    # 2 % of 1,234 is 24.68: rounded down, the shop pays 24 yen.
    assert (payment["amount"], payment["fee"], payment["fee_rate_bp"], payment["method"]) == (1_234, 24, 200, "mpm_static")
    assert payment["merchant_id"] == shop["merchant_id"] and payment["store_id"] == shop["store_id"]
    assert await balances(client, tokens, town) == {"resident": HANAKO - 1_234, "merchant": 1_210, "fee_income": 24}
    history = (await client.get("/v1/wallet/history", headers=tokens.resident())).json()["items"]
    assert (history[0]["kind"], history[0]["amount"], history[0]["balance_after"]) == ("payment", -1_234, HANAKO - 1_234)
    # The receipt: the resident, the shop and the operator see it; another shop does not.
    for headers in (tokens.resident(), tokens.merchant_staff(shop["merchant_id"]), tokens.operator()):
        assert (await client.get(f"/v1/payments/{payment['id']}", headers=headers)).json()["fee"] == 24
    other = tokens.merchant_staff(town.merchants["Aizu Bus"])
    assert_problem(await client.get(f"/v1/payments/{payment['id']}", headers=other), 404, "payment-not-found")
    assert_problem(await client.get(f"/v1/payments/{payment['id']}", headers=tokens.resident("resident-taro")), 404, "payment-not-found")
    assert await ledger_violations(sessionmaker) == []


def forged(payload: str, **changes) -> str:
    """A well-formed code (valid CRC) with some fields changed, as a forger would make it."""
    qr = emvco.parse_payload(payload)
    fields = dict(guid=qr.guid, store_id=qr.store_id, mcc=qr.mcc, name=qr.name, city=qr.city, name_ja=qr.name_ja,
                  city_ja=qr.city_ja, terminal=qr.terminal)
    return emvco.build_payload(**(fields | changes))


BAD_PAYMENTS = [
    ("insufficient", lambda p: (p, 30_001), 402, "insufficient-balance"),
    ("tampered", lambda p: (p.replace("Teahouse", "Teahousf"), 1_000), 422, "qr-checksum-mismatch"),
    ("wrong-crc", lambda p: (p[:-4] + ("0000" if p[-4:] != "0000" else "1111"), 1_000), 422, "qr-checksum-mismatch"),
    ("truncated", lambda p: (p[:40], 1_000), 422, "qr-malformed"),
    ("not-a-qr", lambda p: ("https://example.com/pay?to=teahouse", 1_000), 422, "qr-malformed"),
    ("foreign-guid", lambda p: (forged(p, guid="jp.otherpay.kitakata"), 1_000), 422, "qr-foreign"),
    ("unknown-store", lambda p: (forged(p, store_id=str(uuid.uuid4())), 1_000), 404, "store-not-found"),
    ("decimals", lambda p: (p, 100.5), 422, "validation-error"),
    ("no-amount", lambda p: (p, None), 422, "amount-required"),
    ("zero", lambda p: (p, 0), 422, "validation-error"),
]


@pytest.mark.parametrize(("case", "make", "status", "slug"), BAD_PAYMENTS, ids=[b[0] for b in BAD_PAYMENTS])
async def test_bad_payment_is_refused_and_changes_nothing(client, tokens, town, sessionmaker, case, make, status, slug):
    shop = await store_of(client, tokens, town)
    payload, amount = make(shop["payload"])
    before = await snapshot(sessionmaker)
    assert_problem(await pay(client, tokens, payload, amount), status, slug)
    assert await snapshot(sessionmaker) == before


@pytest.mark.parametrize("status", ["suspended", "closed"])
async def test_paying_a_suspended_or_closed_merchant_is_refused(client, tokens, town, sessionmaker, status):
    shop = await store_of(client, tokens, town)
    await client.patch(f"/v1/merchants/{shop['merchant_id']}", json={"status": status}, headers=idem(tokens.operator()))
    before = await snapshot(sessionmaker)
    assert_problem(await pay(client, tokens, shop["payload"], 1_000), 409, "merchant-inactive")
    assert await snapshot(sessionmaker) == before


async def test_suspended_wallet_cannot_pay(client, tokens, town, sessionmaker):
    shop = await store_of(client, tokens, town)
    wallet = (await client.get("/v1/wallet", headers=tokens.resident())).json()
    await client.patch(f"/v1/wallets/{wallet['id']}", json={"status": "suspended"}, headers=idem(tokens.operator()))
    before = await snapshot(sessionmaker)
    assert_problem(await pay(client, tokens, shop["payload"], 1_000), 409, "account-inactive")
    assert await snapshot(sessionmaker) == before


# --- dynamic QR from the POS ------------------------------------------------------------------


async def terminal_key(client, tokens, merchant_id) -> dict[str, str]:
    created = await client.post(
        f"/v1/merchants/{merchant_id}/api-keys", json={"name": "register"}, headers=idem(tokens.merchant_admin(merchant_id))
    )
    return {"X-API-Key": created.json()["secret"]}


async def payment_request(client, tokens, shop, amount: int) -> dict:
    """A dynamic QR for one sale, made by the shop's POS."""
    pos = await terminal_key(client, tokens, shop["merchant_id"])
    created = await client.post(
        "/v1/payment-requests", json={"store_id": shop["store_id"], "amount": amount, "order_reference": "r"},
        headers=idem(pos),
    )
    assert created.status_code == 201, created.text
    return created.json()


async def test_dynamic_qr_is_paid_once_with_its_amount(client, tokens, town, sessionmaker):
    shop = await store_of(client, tokens, town)
    pos = await terminal_key(client, tokens, shop["merchant_id"])
    created = await client.post(
        "/v1/payment-requests", json={"store_id": shop["store_id"], "amount": 2_480, "order_reference": "table-7"},
        headers=idem(pos),
    )
    assert created.status_code == 201, created.text
    request = created.json()
    qr = emvco.parse_payload(request["payload"])
    assert qr.dynamic and qr.amount == 2_480

    paid = await pay(client, tokens, request["payload"])
    assert paid.status_code == 201, paid.text
    assert (paid.json()["amount"], paid.json()["method"], paid.json()["order_reference"]) == (2_480, "mpm_dynamic", "table-7")
    status = (await client.get(f"/v1/payment-requests/{request['id']}", headers=pos)).json()
    assert (status["status"], status["payment_id"]) == ("paid", paid.json()["id"])

    before = await snapshot(sessionmaker)
    assert_problem(await pay(client, tokens, request["payload"], resident="resident-taro"), 409, "payment-request-paid")
    assert_problem(
        await client.post(f"/v1/payment-requests/{request['id']}/cancel", headers=idem(pos)), 409, "payment-request-paid"
    )
    assert await snapshot(sessionmaker) == before


async def test_dynamic_qr_expired_cancelled_or_with_another_amount_is_refused(client, tokens, town, sessionmaker, clock):
    shop = await store_of(client, tokens, town)
    pos = await terminal_key(client, tokens, shop["merchant_id"])

    async def request(amount=1_000):
        body = {"store_id": shop["store_id"], "amount": amount, "order_reference": "r"}
        return (await client.post("/v1/payment-requests", json=body, headers=idem(pos))).json()

    expiring, cancelled, exact = await request(), await request(), await request(3_000)
    assert (await client.post(f"/v1/payment-requests/{cancelled['id']}/cancel", headers=idem(pos))).json()["status"] == "cancelled"
    before = await snapshot(sessionmaker)
    assert_problem(await pay(client, tokens, cancelled["payload"]), 409, "payment-request-cancelled")
    assert_problem(await pay(client, tokens, exact["payload"], 2_999), 422, "amount-mismatch")
    clock.advance(timedelta(minutes=5))
    assert_problem(await pay(client, tokens, expiring["payload"]), 409, "payment-request-expired")
    assert await snapshot(sessionmaker) == before


async def test_dynamic_qr_paid_by_two_residents_at_once_is_paid_once(client, tokens, town, sessionmaker):
    shop = await store_of(client, tokens, town)
    request = await payment_request(client, tokens, shop, 1_000)
    responses = await asyncio.gather(
        *[pay(client, tokens, request["payload"], resident=r) for r in ("resident-hanako", "resident-taro", "resident-sachiko")]
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409]
    assert (await balances(client, tokens, town))["merchant"] == 980
    assert await ledger_violations(sessionmaker) == []


# --- fees -------------------------------------------------------------------------------------


async def test_fee_follows_the_plan_in_force_across_an_effective_date(client, tokens, town, clock):
    shop = await store_of(client, tokens, town)
    start = clock.now() + timedelta(hours=1)
    plan = await client.post(
        f"/v1/merchants/{shop['merchant_id']}/fee-plans",
        json={"rate_bp": 150, "effective_from": start.isoformat()}, headers=idem(tokens.operator()),
    )
    assert plan.status_code == 201, plan.text
    before_change = (await pay(client, tokens, shop["payload"], 10_000)).json()
    clock.advance(timedelta(hours=1))
    after_change = (await pay(client, tokens, shop["payload"], 10_000)).json()
    assert (before_change["fee_rate_bp"], before_change["fee"]) == (200, 200)
    assert (after_change["fee_rate_bp"], after_change["fee"]) == (150, 150)
    # Other merchants keep the region's plan.
    bus = await store_of(client, tokens, town, "Aizu Bus")
    assert (await pay(client, tokens, bus["payload"], 1_000)).json()["fee"] == 20
    # A plan cannot be back-dated over payments already made.
    back = await client.post(
        f"/v1/merchants/{shop['merchant_id']}/fee-plans",
        json={"rate_bp": 0, "effective_from": (clock.now() - timedelta(days=1)).isoformat()}, headers=idem(tokens.operator()),
    )
    assert_problem(back, 422, "invalid-fee-plan")


async def test_yearly_fee_cap_charges_up_to_the_cap_then_nothing_until_the_next_fiscal_year(client, tokens, town, clock):
    shop = await store_of(client, tokens, town)
    await client.post(
        f"/v1/merchants/{shop['merchant_id']}/fee-plans", json={"rate_bp": 200, "yearly_cap": 100},
        headers=idem(tokens.operator()),
    )
    fees = [(await pay(client, tokens, shop["payload"], 3_000)).json()["fee"] for _ in range(3)]
    assert fees == [60, 40, 0]  # 60 + 40 reaches the cap of 100
    # A refund gives back fee, which frees room under the cap again.
    first = (await client.get(f"/v1/merchants/{shop['merchant_id']}/payments", headers=tokens.operator())).json()["items"][-1]
    refund = await client.post(
        f"/v1/payments/{first['id']}/refunds", json={"amount": 3_000}, headers=idem(tokens.merchant_staff(shop["merchant_id"]))
    )
    assert refund.json()["fee_returned_now"] == 60
    assert (await pay(client, tokens, shop["payload"], 1_000, resident="resident-taro")).json()["fee"] == 20
    # 年度 starts on 1 April (Tokyo): the cap starts again.
    clock.set(clock.now().replace(year=clock.now().year + 1))
    next_year = await pay(client, tokens, shop["payload"], 3_000, resident="resident-taro")
    assert next_year.status_code == 201, next_year.text
    assert next_year.json()["fee"] == 60


async def test_a_merchants_payments_and_the_transfers_it_receives_share_one_yearly_cap(
    client, tokens, town, sessionmaker
):
    """One rule charges both fees (wallet.charge_fee), and one fiscal-year total counts them: a
    transfer to the teahouse pays only what its payments left under the cap, and a refund gives
    back to the cap what it returns of the fee, no more."""
    shop = await store_of(client, tokens, town)
    farm = await store_of(client, tokens, town, "Minato Farm")
    for kind in ("payment", "transfer"):
        plan = await client.post(
            f"/v1/merchants/{shop['merchant_id']}/fee-plans", json={"kind": kind, "rate_bp": 200, "yearly_cap": 30},
            headers=idem(tokens.operator()),
        )
        assert plan.status_code == 201, plan.text
    # The farm is paid ¥4,000 at the region's uncapped 2 % (fee ¥80): the yen it sends below.
    assert (await pay(client, tokens, farm["payload"], 4_000)).json()["fee"] == 80

    async def transfer_to_the_teahouse(amount: int) -> int:
        response = await client.post(
            f"/v1/merchants/{farm['merchant_id']}/transfers",
            json={"to_merchant_id": shop["merchant_id"], "amount": amount},
            headers=idem(tokens.merchant_admin(farm["merchant_id"])),
        )
        assert response.status_code == 201, response.text
        assert response.json()["fee_rate_bp"] == 200
        return response.json()["fee"]

    payment = (await pay(client, tokens, shop["payload"], 1_000)).json()
    assert payment["fee"] == 20  # 2 % of ¥1,000: ¥10 left under the cap of ¥30
    assert await transfer_to_the_teahouse(1_000) == 10  # 2 % would be ¥20; the ¥10 left is charged
    assert (await pay(client, tokens, shop["payload"], 1_000)).json()["fee"] == 0  # the cap is reached
    refund = await client.post(
        f"/v1/payments/{payment['id']}/refunds", json={"amount": 500},
        headers=idem(tokens.merchant_staff(shop["merchant_id"])),
    )
    assert refund.json()["fee_returned_now"] == 10  # floor(20 × 500 / 1,000)
    assert await transfer_to_the_teahouse(1_000) == 10  # the ¥10 the refund gave back, no more
    assert await transfer_to_the_teahouse(1_000) == 0

    async with sessionmaker() as s:
        total = (await s.execute(text(
            "SELECT fees_charged FROM wallet.merchant_fee_years WHERE merchant_id = :merchant"
        ), {"merchant": shop["merchant_id"]})).scalar_one()
    assert total == 20 + 10 + 0 - 10 + 10 + 0 == 30
    # Hanako paid 4,000 + 1,000 + 1,000 and got 500 back. The teahouse got 980 + 1,000 from her,
    # 990 + 990 + 1,000 from the farm, and gave back 500 less the fee's 10. Fee income: 80 + 30.
    assert await balances(client, tokens, town) == {"resident": 24_500, "merchant": 4_470, "fee_income": 110}
    assert await ledger_violations(sessionmaker) == []


# 2 % (200 bp) of ¥999 is 19.98, of ¥1,025 exactly 20.5, of ¥1,010 is 20.2, rounded by hand:
ROUNDED_FEES = {
    "down": {999: 19, 1_025: 20, 1_010: 20},  # the yen fraction is never charged
    "up": {999: 20, 1_025: 21, 1_010: 21},  # any started yen is charged
    "half_up": {999: 20, 1_025: 21, 1_010: 20},  # from half a yen up
}


@pytest.mark.parametrize("rounding", sorted(ROUNDED_FEES))
async def test_payments_and_transfers_round_the_fee_by_the_same_rule(client, tokens, town, rounding):
    """One rule rounds both fees (wallet.fee_for): a payment's, charged to the shop that is paid,
    and a merchant transfer's, charged to the payee."""
    shop = await store_of(client, tokens, town)
    farm = town.merchants["Minato Farm"]
    assert (await pay(client, tokens, shop["payload"], 10_000)).json()["fee"] == 200  # the region's 2 %, down
    for merchant, kind in ((shop["merchant_id"], "payment"), (farm, "transfer")):
        plan = await client.post(
            f"/v1/merchants/{merchant}/fee-plans", json={"kind": kind, "rate_bp": 200, "rounding": rounding},
            headers=idem(tokens.operator()),
        )
        assert plan.status_code == 201, plan.text
    before = await balances(client, tokens, town)
    expected = ROUNDED_FEES[rounding]

    paid = {amount: (await pay(client, tokens, shop["payload"], amount)).json()["fee"] for amount in expected}
    admin = tokens.merchant_admin(shop["merchant_id"])
    sent = {}
    for amount in expected:
        response = await client.post(
            f"/v1/merchants/{shop['merchant_id']}/transfers", json={"to_merchant_id": farm, "amount": amount},
            headers=idem(admin),
        )
        assert response.status_code == 201, response.text
        assert response.json()["fee_rate_bp"] == 200
        sent[amount] = response.json()["fee"]

    assert paid == expected and sent == expected
    fees = sum(expected.values())
    after = await balances(client, tokens, town)
    # The teahouse got the payments less their fees and sent the transfers in full.
    assert after["merchant"] - before["merchant"] == -fees
    assert after["fee_income"] - before["fee_income"] == 2 * fees
    farm_balance = (await client.get(f"/v1/merchants/{farm}/balance", headers=tokens.operator())).json()["balance"]
    assert farm_balance == sum(expected) - fees

# --- refunds ----------------------------------------------------------------------------------


async def test_partial_refunds_return_the_fee_pro_rata_and_never_exceed_the_payment(client, tokens, town, sessionmaker):
    shop = await store_of(client, tokens, town)
    payment = (await pay(client, tokens, shop["payload"], 1_234)).json()  # fee 24
    staff = tokens.merchant_staff(shop["merchant_id"])
    first = await client.post(f"/v1/payments/{payment['id']}/refunds", json={"amount": 617}, headers=idem(staff))
    assert first.status_code == 201, first.text
    assert first.json()["fee_returned_now"] == 12  # floor(24 × 617 / 1234)
    second = await client.post(f"/v1/payments/{payment['id']}/refunds", json={"amount": 600}, headers=idem(staff))
    assert second.json()["fee_returned_now"] == 23 - 12  # floor(24 × 1217 / 1234) = 23, less what was returned
    assert second.json()["payment"]["refunded_amount"] == 1_217

    before = await snapshot(sessionmaker)
    too_much = await client.post(f"/v1/payments/{payment['id']}/refunds", json={"amount": 18}, headers=idem(staff))
    assert assert_problem(too_much, 409, "refund-exceeds-remaining")["remaining"] == 17
    other_shop = tokens.merchant_staff(town.merchants["Aizu Bus"])
    assert_problem(
        await client.post(f"/v1/payments/{payment['id']}/refunds", json={"amount": 1}, headers=idem(other_shop)),
        404, "payment-not-found",
    )
    assert_problem(
        await client.post(f"/v1/payments/{payment['id']}/refunds", json={"amount": 1}, headers=idem(tokens.resident())),
        403, "forbidden",
    )
    assert_problem(
        await client.post(f"/v1/payments/{payment['id']}/refunds", json={"amount": 1.5}, headers=idem(staff)),
        422, "validation-error",
    )
    assert await snapshot(sessionmaker) == before

    last = await client.post(f"/v1/payments/{payment['id']}/refunds", json={"amount": 17}, headers=idem(staff))
    assert last.json()["fee_returned_now"] == 1 and last.json()["payment"]["fee_returned"] == 24
    # Fully refunded: everyone is back where they started, to the yen.
    assert await balances(client, tokens, town) == {"resident": HANAKO, "merchant": 0, "fee_income": 0}
    assert await ledger_violations(sessionmaker) == []


async def test_refund_after_the_region_window_is_refused(client, tokens, town, sessionmaker, clock):
    shop = await store_of(client, tokens, town)
    payment = (await pay(client, tokens, shop["payload"], 1_000)).json()
    clock.advance(timedelta(days=1))  # the frozen clock stands at 09:30 Tokyo: this is the next day
    before = await snapshot(sessionmaker)
    refused = await client.post(
        f"/v1/payments/{payment['id']}/refunds", json={"amount": 1_000}, headers=idem(tokens.merchant_staff(shop["merchant_id"]))
    )
    assert_problem(refused, 409, "refund-window-closed")
    assert await snapshot(sessionmaker) == before


async def test_a_refund_retried_with_its_key_refunds_once(client, tokens, town):
    shop = await store_of(client, tokens, town)
    payment = (await pay(client, tokens, shop["payload"], 1_000)).json()
    headers = idem(tokens.merchant_staff(shop["merchant_id"]), "refund-receipt-1")
    responses = await asyncio.gather(
        *[client.post(f"/v1/payments/{payment['id']}/refunds", json={"amount": 400}, headers=headers) for _ in range(5)]
    )
    assert {r.status_code for r in responses} == {201}
    assert (await client.get(f"/v1/payments/{payment['id']}", headers=tokens.operator())).json()["refunded_amount"] == 400


# --- concurrency ------------------------------------------------------------------------------


async def test_100_simultaneous_payments_from_one_wallet_never_overspend(client, tokens, town, sessionmaker):
    shop = await store_of(client, tokens, town)
    responses = await asyncio.gather(*[pay(client, tokens, shop["payload"], 500) for _ in range(100)])
    assert sorted(r.status_code for r in responses) == [201] * 60 + [402] * 40
    assert await balances(client, tokens, town) == {"resident": 0, "merchant": 60 * 490, "fee_income": 60 * 10}
    assert await ledger_violations(sessionmaker) == []


async def test_200_simultaneous_payments_to_one_merchant_all_land(client, tokens, town, sessionmaker):
    shop = await store_of(client, tokens, town)
    residents = [f"resident-{i:03}" for i in range(200)]
    wallets = [(await client.get("/v1/wallet", headers=tokens.resident(r))).json()["id"] for r in residents]
    for wallet in wallets:
        await client.post(f"/v1/wallets/{wallet}/topups", json={"amount": 1_000}, headers=idem(tokens.operator()))
    responses = await asyncio.gather(*[pay(client, tokens, shop["payload"], 750, resident=r) for r in residents])
    assert [r.status_code for r in responses] == [201] * 200
    merchant = (await client.get(f"/v1/merchants/{shop['merchant_id']}/balance", headers=tokens.operator())).json()
    assert merchant["balance"] == 200 * (750 - 15)
    listed, cursor = 0, None
    while True:
        params = {"limit": 200} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(f"/v1/merchants/{shop['merchant_id']}/payments", params=params,
                                 headers=tokens.merchant_staff(shop["merchant_id"]))).json()
        listed += len(page["items"])
        if not (cursor := page["next_cursor"]):
            break
    assert listed == 200
    assert await ledger_violations(sessionmaker) == []


# --- merchant-to-merchant transfers -------------------------------------------------------------


async def test_the_restaurant_pays_the_farmer_from_its_balance(client, tokens, town, sessionmaker):
    shop = await store_of(client, tokens, town)
    await pay(client, tokens, shop["payload"], 10_000)  # the teahouse now holds 9,800
    farm = town.merchants["Minato Farm"]
    admin = tokens.merchant_admin(shop["merchant_id"])
    sent = await client.post(
        f"/v1/merchants/{shop['merchant_id']}/transfers", json={"to_merchant_id": farm, "amount": 8_000, "memo": "apples"},
        headers=idem(admin),
    )
    assert sent.status_code == 201, sent.text
    assert (sent.json()["fee"], sent.json()["fee_rate_bp"]) == (0, 0)
    teahouse_balance = (await client.get(f"/v1/merchants/{shop['merchant_id']}/balance", headers=admin)).json()["balance"]
    farm_balance = (await client.get(f"/v1/merchants/{farm}/balance", headers=tokens.operator())).json()["balance"]
    assert (teahouse_balance, farm_balance) == (1_800, 8_000)

    before = await snapshot(sessionmaker)
    url = f"/v1/merchants/{shop['merchant_id']}/transfers"
    assert_problem(await client.post(url, json={"to_merchant_id": farm, "amount": 1_801}, headers=idem(admin)), 402, "insufficient-balance")
    assert_problem(await client.post(url, json={"to_merchant_id": shop["merchant_id"], "amount": 1}, headers=idem(admin)), 422, "self-transfer")
    assert_problem(
        await client.post(url, json={"to_merchant_id": farm, "amount": 1}, headers=idem(tokens.merchant_staff(shop["merchant_id"]))),
        403, "forbidden",
    )
    bus = town.merchants["Aizu Bus"]
    await client.patch(f"/v1/merchants/{bus}", json={"status": "closed"}, headers=idem(tokens.operator()))
    before = await snapshot(sessionmaker)
    assert_problem(await client.post(url, json={"to_merchant_id": bus, "amount": 100}, headers=idem(admin)), 409, "merchant-inactive")
    assert await snapshot(sessionmaker) == before
    assert await ledger_violations(sessionmaker) == []


async def test_store_qr_images_and_stand(client, tokens, town):
    import io

    import pypdf
    import zxingcpp
    from PIL import Image

    shop = await store_of(client, tokens, town)
    staff = tokens.merchant_staff(shop["merchant_id"])
    png = await client.get(f"/v1/stores/{shop['store_id']}/qr.png", headers=staff)
    assert png.headers["content-type"] == "image/png"
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))
    assert [d.text for d in decoded] == [shop["payload"]]
    svg = await client.get(f"/v1/stores/{shop['store_id']}/qr.svg", headers=staff)
    assert svg.headers["content-type"].startswith("image/svg+xml") and b"<svg" in svg.content
    pdf = await client.get(f"/v1/stores/{shop['store_id']}/stand.pdf", headers=staff)
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    # The stand names the region's currency, the shop, the app, and the check of the shop's name.
    stand = pypdf.PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    for line in ("会津若松市デジタル地域通貨", "鶴ヶ城茶屋", "Tsurugajo Teahouse", "chiikipay アプリ",
                 "画面の店名がこのお店か確かめて", "Aizuwakamatsu digital regional currency"):
        assert line in stand
    other = tokens.merchant_staff(town.merchants["Aizu Bus"])
    assert_problem(await client.get(f"/v1/stores/{shop['store_id']}/qr.png", headers=other), 404, "store-not-found")


async def test_receipt_and_filtered_histories(client, tokens, town, clock):
    shop = await store_of(client, tokens, town)
    payment = (await pay(client, tokens, shop["payload"], 1_500)).json()
    staff = tokens.merchant_staff(shop["merchant_id"])
    await client.post(f"/v1/payments/{payment['id']}/refunds", json={"amount": 500}, headers=idem(staff))
    receipt = await client.get(f"/v1/payments/{payment['id']}/receipt.html", headers=tokens.resident())
    assert receipt.status_code == 200 and receipt.headers["content-type"].startswith("text/html")
    for text in ("領収書", "鶴ヶ城茶屋", "¥1,500", "¥500", "¥1,000", "2026-04-01 09:30 (JST)"):
        assert text in receipt.text
    assert_problem(
        await client.get(f"/v1/payments/{payment['id']}/receipt.html", headers=tokens.resident("resident-taro")),
        404, "payment-not-found",
    )

    mine = (await client.get("/v1/wallet/history", params={"kind": "payment"}, headers=tokens.resident())).json()["items"]
    assert [(h["kind"], h["amount"]) for h in mine] == [("payment", -1_500)]
    refunds = (await client.get("/v1/wallet/history", params={"kind": "refund"}, headers=tokens.resident())).json()["items"]
    assert [(h["kind"], h["amount"]) for h in refunds] == [("refund", 500)]
    later = (clock.now() + timedelta(seconds=1)).isoformat()
    assert (await client.get("/v1/wallet/history", params={"from": later}, headers=tokens.resident())).json()["items"] == []
    for unix_time in ("1700000000", "0.5", "-9.7e-40"):  # ISO 8601 only: numbers are refused, not read as Unix time
        assert_problem(await client.get("/v1/wallet/history", params={"from": unix_time}, headers=tokens.resident()),
                       422, "validation-error")
    shop_history = (await client.get(f"/v1/merchants/{shop['merchant_id']}/history", headers=staff)).json()["items"]
    assert [(h["kind"], h["amount"]) for h in shop_history] == [("refund", -490), ("payment", 1_470)]
    by_store = await client.get(
        f"/v1/merchants/{shop['merchant_id']}/payments", params={"store_id": str(uuid.uuid4())}, headers=staff
    )
    assert by_store.json()["items"] == []


# --- codes that were altered and given a fresh CRC ---------------------------------------------


def _tlv_fields(text: str) -> list[list[str]]:
    fields, pos = [], 0
    while pos < len(text):
        tag, length = text[pos:pos + 2], int(text[pos + 2:pos + 4])
        fields.append([tag, text[pos + 4:pos + 4 + length]])
        pos += 4 + length
    return fields


def _tlv_text(fields: list[list[str]]) -> str:
    return "".join(f"{tag}{len(value):02d}{value}" for tag, value in fields)


def altered(payload: str, tag: str, value: str, sub: str | None = None) -> str:
    """The payload with field `tag` (or sub-field `sub` of template `tag`) set to `value`, and a
    CRC computed afresh, as anyone with the standard can do."""
    fields = [f for f in _tlv_fields(payload) if f[0] != "63"]
    for field in fields:
        if field[0] == tag:
            if sub is None:
                field[1] = value
            else:
                inner = _tlv_fields(field[1])
                for item in inner:
                    if item[0] == sub:
                        item[1] = value
                field[1] = _tlv_text(inner)
    return with_crc(_tlv_text(fields))


def with_crc(fields_before_crc: str) -> str:
    body = fields_before_crc + "6304"
    return body + f"{emvco.crc16_ccitt_false(body.encode()):04X}"


STATIC_FORGERIES = [
    ("merchant-name", lambda p: altered(p, "59", "Nanokamachi Store"), ["name"]),
    ("japanese-name", lambda p: altered(p, "64", "七日町よろず屋", sub="01"), ["name_ja"]),
    ("country", lambda p: altered(p, "58", "US"), ["country"]),
    ("city", lambda p: altered(p, "60", "Kitakata"), ["city"]),
    ("mcc", lambda p: altered(p, "52", "5411"), ["mcc"]),
    ("terminal-added", lambda p: with_crc(p[:-8] + "62120708REGISTER"), ["terminal"]),
]


@pytest.mark.parametrize(("case", "make", "fields"), STATIC_FORGERIES, ids=[c[0] for c in STATIC_FORGERIES])
async def test_a_static_code_altered_with_a_fresh_crc_is_refused(client, tokens, town, sessionmaker, case, make, fields):
    shop = await store_of(client, tokens, town)
    forgery = make(shop["payload"])
    assert forgery != shop["payload"]
    emvco.parse_payload(forgery)  # a well-formed code with a valid CRC
    before = await snapshot(sessionmaker)
    problem = assert_problem(await pay(client, tokens, forgery, 1_000), 422, "qr-mismatch")
    assert problem["fields"] == fields
    assert await snapshot(sessionmaker) == before


async def test_a_dynamic_code_with_its_amount_or_bill_number_altered_is_refused(client, tokens, town, sessionmaker):
    shop = await store_of(client, tokens, town)
    request = await payment_request(client, tokens, shop, 880)
    bill = emvco.parse_payload(request["payload"]).bill_number
    # The same 16 bytes spelled with the last character's two unused bits set: another string for
    # the same request id, which must not be a second way to name it.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelled = bill[:-1] + alphabet[alphabet.index(bill[-1]) | 1]
    assert respelled != bill
    one_yen = altered(request["payload"], "54", "1")
    before = await snapshot(sessionmaker)
    problem = assert_problem(await pay(client, tokens, one_yen), 422, "qr-mismatch")
    assert problem["fields"] == ["amount"]
    assert_problem(await pay(client, tokens, one_yen, 1), 422, "qr-mismatch")
    assert_problem(await pay(client, tokens, altered(request["payload"], "62", respelled, sub="01")), 422, "qr-malformed")
    assert await snapshot(sessionmaker) == before
    # The genuine code still pays, the amount the shop asked for.
    paid = await pay(client, tokens, request["payload"])
    assert (paid.status_code, paid.json()["amount"]) == (201, 880)


async def test_a_code_printed_before_the_shop_was_renamed_is_refused(client, tokens, town, sessionmaker):
    """The name on the resident's screen is how they check whom they pay: a code showing an old
    name must be reprinted (the stand PDF serves the current one)."""
    shop = await store_of(client, tokens, town)
    renamed = await client.patch(f"/v1/merchants/{shop['merchant_id']}", json={"name": "Tsurugajo Tea Room"},
                                 headers=idem(tokens.operator()))
    assert renamed.status_code == 200, renamed.text
    before = await snapshot(sessionmaker)
    assert assert_problem(await pay(client, tokens, shop["payload"], 1_000), 422, "qr-mismatch")["fields"] == ["name"]
    assert await snapshot(sessionmaker) == before
    current = await store_of(client, tokens, town)
    assert (await pay(client, tokens, current["payload"], 1_000)).status_code == 201
