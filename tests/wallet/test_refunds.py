"""Refunds of one payment sent at once: each works on the committed totals under the payment's
lock, so the fee comes back and the reward is taken back exactly as a one-by-one series would;
an over-refund is 409, never 500. And `ledger verify` checks a payment's record against its
journals."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from services.wallet.verify import verify_ledger
from tests.helpers import assert_problem, idem, ledger_violations
from tests.wallet.test_payments import HANAKO, balances, pay, store_of
from tests.wallet.test_rewards import TEAHOUSE, points, reward_campaign


async def refund_all_at_once(client, headers, payment_id: str, amount: int, times: int) -> list:
    return await asyncio.gather(
        *[client.post(f"/v1/payments/{payment_id}/refunds", json={"amount": amount}, headers=idem(headers))
          for _ in range(times)]
    )


async def test_ten_refunds_at_once_take_back_the_whole_reward(client, tokens, town, sessionmaker):
    campaign = await reward_campaign(client, tokens, budget=10_000)
    shop = await store_of(client, tokens, town, TEAHOUSE)
    payment = (await pay(client, tokens, shop["payload"], 1_000)).json()
    assert (payment["fee"], payment["reward_points"]) == (20, 200)  # 2 % fee, 20 % back at a shotengai shop

    responses = await refund_all_at_once(client, tokens.merchant_staff(shop["merchant_id"]), payment["id"], 100, 10)

    assert [r.status_code for r in responses] == [201] * 10, [r.text for r in responses if r.status_code != 201]
    # One by one, refund k of ten returns floor(20 × k/10) − floor(20 × (k−1)/10) = 2 yen of fee
    # and takes back floor(200 × k/10) − … = 20 points, whatever order they commit in.
    assert sorted(r.json()["fee_returned_now"] for r in responses) == [2] * 10
    assert sorted(r.json()["payment"]["refunded_amount"] for r in responses) == list(range(100, 1_001, 100))
    assert await points(client, tokens) == 0
    final = (await client.get(f"/v1/payments/{payment['id']}", headers=tokens.operator())).json()
    assert (final["refunded_amount"], final["fee_returned"], final["reward_points"]) == (1_000, 20, 0)
    assert await balances(client, tokens, town) == {"resident": HANAKO, "merchant": 0, "fee_income": 0}
    budget = (await client.get(f"/v1/campaigns/{campaign['id']}", headers=tokens.operator())).json()["budget"]
    assert budget == 10_000
    assert await ledger_violations(sessionmaker) == []


async def test_three_refunds_at_once_return_all_of_an_odd_fee(client, tokens, town, sessionmaker):
    shop = await store_of(client, tokens, town)
    payment = (await pay(client, tokens, shop["payload"], 999)).json()
    assert payment["fee"] == 19  # 2 % of 999 is 19.98, rounded down

    responses = await refund_all_at_once(client, tokens.merchant_staff(shop["merchant_id"]), payment["id"], 333, 3)

    assert [r.status_code for r in responses] == [201] * 3
    # floor(19 × 333/999) = 6, floor(19 × 666/999) = 12, floor(19 × 999/999) = 19.
    assert sorted(r.json()["fee_returned_now"] for r in responses) == [6, 6, 7]
    assert await balances(client, tokens, town) == {"resident": HANAKO, "merchant": 0, "fee_income": 0}
    assert await ledger_violations(sessionmaker) == []


async def test_twenty_refunds_at_once_of_ten_possible_are_ten_201s_and_ten_409s(client, tokens, town, sessionmaker):
    shop = await store_of(client, tokens, town)
    payment = (await pay(client, tokens, shop["payload"], 1_000)).json()

    responses = await refund_all_at_once(client, tokens.merchant_staff(shop["merchant_id"]), payment["id"], 100, 20)

    assert sorted(r.status_code for r in responses) == [201] * 10 + [409] * 10
    for refused in (r for r in responses if r.status_code == 409):
        assert assert_problem(refused, 409, "refund-exceeds-remaining")["remaining"] == 0
    assert await balances(client, tokens, town) == {"resident": HANAKO, "merchant": 0, "fee_income": 0}
    async with sessionmaker() as s:
        refunds = (await s.execute(text("SELECT count(*), sum(amount) FROM wallet.refunds"))).one()
    assert tuple(refunds) == (10, 1_000)
    assert await ledger_violations(sessionmaker) == []


async def test_every_refund_is_audited_whoever_makes_it(client, tokens, town):
    shop = await store_of(client, tokens, town)
    payment = (await pay(client, tokens, shop["payload"], 1_000)).json()
    staff = tokens.merchant_staff(shop["merchant_id"])
    refund = await client.post(f"/v1/payments/{payment['id']}/refunds", json={"amount": 300, "reason": "wrong item"},
                               headers=idem(staff))
    assert refund.status_code == 201, refund.text
    events = (await client.get("/v1/audit-events?limit=5", headers=tokens.auditor())).json()["items"]
    refunds = [e for e in events if e["action"] == "payment.refund"]
    assert len(refunds) == 1
    assert (refunds[0]["actor_subject"], refunds[0]["actor_role"], refunds[0]["target_id"]) == (
        "shop-clerk", "merchant_staff", payment["id"]
    )
    assert refunds[0]["after"] == {"amount": 300, "fee_returned": 6, "reason": "wrong item"}


async def test_verify_finds_a_payment_whose_record_disagrees_with_its_journals(client, tokens, town, sessionmaker):
    """What the concurrent refunds used to leave: a payment whose fee returned, refunds and reward
    taken back do not add up. Each tampering is found, and named by the payment."""
    await reward_campaign(client, tokens, budget=10_000)
    shop = await store_of(client, tokens, town, TEAHOUSE)
    payment = (await pay(client, tokens, shop["payload"], 999)).json()
    staff = tokens.merchant_staff(shop["merchant_id"])
    for _ in range(3):
        assert (await client.post(f"/v1/payments/{payment['id']}/refunds", json={"amount": 333},
                                  headers=idem(staff))).status_code == 201
    assert await ledger_violations(sessionmaker) == []

    tamperings = [
        # The fee returned one yen short of the rule, as three stale refunds returned 18 of 19.
        "UPDATE wallet.payments SET fee_returned = fee_returned - 1 WHERE id = :id",
        # A refund row that no longer matches the running total.
        "UPDATE wallet.refunds SET amount = amount - 1 WHERE id = (SELECT min(id::text)::uuid FROM wallet.refunds "
        "WHERE payment_id = :id)",
        # Less of the reward taken back than refunded, although its lot was there to take it from.
        "UPDATE wallet.payment_rewards SET clawed_back = clawed_back - 40 WHERE payment_id = :id",
    ]
    for tampering in tamperings:
        async with sessionmaker() as s:
            await s.execute(text(tampering), {"id": payment["id"]})
            found = await verify_ledger(s)
            await s.rollback()
        assert any(v.invariant == "payments" and v.subject == f"payment {payment['id']}" for v in found), tampering
    assert await ledger_violations(sessionmaker) == []
