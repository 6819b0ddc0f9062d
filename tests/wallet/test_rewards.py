"""Reward campaigns: points back on payments by merchant class, within a monthly cap and the budget."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from tests.conftest import START
from tests.helpers import assert_problem, idem, ledger_violations, snapshot
from tests.wallet.test_payments import pay, store_of

TEAHOUSE, PHARMACY = "Tsurugajo Teahouse", "Ekimae Pharmacy"  # shotengai and chain in the demo
# The ward campaign of DOMAIN.md: 20 % / 15 % / 10 % / 0 % back by class.
RATES = {"shotengai": 2_000, "small_shop": 1_500, "convenience": 1_000, "large_store": 0}


def rates(by_class: dict[str, int]) -> list[dict]:
    return [{"merchant_class": code, "rate_bp": bp} for code, bp in by_class.items()]


async def reward_campaign(client, tokens, *, budget: int, **terms) -> dict:
    operator = tokens.operator()
    body = {"kind": "reward", "name": "Shop local", "name_ja": "地元で買おう", "reward_rates": rates(RATES),
            "expiry_months": 6} | terms
    created = await client.post("/v1/campaigns", json=body, headers=idem(operator))
    assert created.status_code == 201, created.text
    campaign = created.json()
    if budget:
        funded = await client.post(f"/v1/campaigns/{campaign['id']}/funding", json={"amount": budget}, headers=idem(operator))
        assert funded.status_code == 201, funded.text
    return campaign


async def points(client, tokens, resident="resident-hanako") -> int:
    return (await client.get("/v1/wallet", headers=tokens.resident(resident))).json()["points"]


async def budget_of(client, tokens, campaign) -> int:
    return (await client.get(f"/v1/campaigns/{campaign['id']}", headers=tokens.operator())).json()["budget"]


async def test_payments_earn_points_by_merchant_class_up_to_the_monthly_cap(client, tokens, town, sessionmaker, clock):
    campaign = await reward_campaign(client, tokens, budget=100_000, reward_monthly_cap=1_500)
    assert {r["merchant_class"]: r["rate_bp"] for r in campaign["reward_rates"]} == RATES
    teahouse, pharmacy = await store_of(client, tokens, town, TEAHOUSE), await store_of(client, tokens, town, PHARMACY)

    first = await pay(client, tokens, teahouse["payload"], 1_005)
    assert first.status_code == 201, first.text
    assert first.json()["reward_points"] == 201  # 20 % of 1,005, rounded down
    assert await points(client, tokens) == 201
    assert (await pay(client, tokens, pharmacy["payload"], 2_000)).json()["reward_points"] == 0  # chains earn nothing
    # The cap: 1,500 a month; 20 % of 8,000 would be 1,600, only 1,299 is left of it.
    assert (await pay(client, tokens, teahouse["payload"], 8_000)).json()["reward_points"] == 1_299
    assert (await pay(client, tokens, teahouse["payload"], 1_000)).json()["reward_points"] == 0
    assert await budget_of(client, tokens, campaign) == 100_000 - 1_500
    # Another resident has a cap of their own.
    assert (await pay(client, tokens, teahouse["payload"], 500, resident="resident-taro")).json()["reward_points"] == 100

    async with sessionmaker() as s:
        rewards = (await s.execute(text(
            "SELECT amount, campaign_id::text, expires_at FROM wallet.lots WHERE source = 'reward' ORDER BY amount"
        ))).all()
    # Lots under the campaign's rules: the 6th month after April is October, usable through 31 October.
    assert [(r.amount, r.campaign_id) for r in rewards] == [(100, campaign["id"]), (201, campaign["id"]), (1_299, campaign["id"])]
    assert {r.expires_at.isoformat() for r in rewards} == {"2026-10-31T15:00:00+00:00"}

    clock.set(START + timedelta(days=30))  # May: a new month, a new cap
    # 299 of April's reward points pay first; only the 701 in coin earn (20 %, rounded down).
    assert (await pay(client, tokens, teahouse["payload"], 1_000)).json()["reward_points"] == 140
    assert await ledger_violations(sessionmaker) == []


async def test_a_spent_budget_pays_what_is_left_and_the_payment_still_goes_through(client, tokens, town, sessionmaker):
    campaign = await reward_campaign(client, tokens, budget=150)
    teahouse = await store_of(client, tokens, town, TEAHOUSE)
    response = await pay(client, tokens, teahouse["payload"], 1_000)
    assert response.status_code == 201 and response.json()["reward_points"] == 150
    response = await pay(client, tokens, teahouse["payload"], 1_000)
    assert response.status_code == 201 and response.json()["reward_points"] == 0
    assert await budget_of(client, tokens, campaign) == 0
    assert (await client.get("/v1/wallet", headers=tokens.resident())).json()["balance"] == 30_000 - 2_000 + 150
    assert await ledger_violations(sessionmaker) == []


async def test_payments_outside_the_reward_period_or_after_closing_earn_nothing(client, tokens, town, clock):
    campaign = await reward_campaign(client, tokens, budget=10_000, reward_from=(START + timedelta(days=1)).isoformat(),
                                     reward_until=(START + timedelta(days=2)).isoformat())
    teahouse = await store_of(client, tokens, town, TEAHOUSE)
    assert (await pay(client, tokens, teahouse["payload"], 1_000)).json()["reward_points"] == 0
    clock.set(START + timedelta(days=1, hours=1))
    assert (await pay(client, tokens, teahouse["payload"], 1_000)).json()["reward_points"] == 200
    clock.set(START + timedelta(days=2))
    assert (await pay(client, tokens, teahouse["payload"], 1_000)).json()["reward_points"] == 0
    clock.set(START + timedelta(days=1, hours=2))
    closed = await client.post(f"/v1/campaigns/{campaign['id']}/close", headers=idem(tokens.operator()))
    assert closed.status_code == 200
    assert (await pay(client, tokens, teahouse["payload"], 1_000)).json()["reward_points"] == 0


async def test_a_refund_takes_back_the_refunded_share_of_the_reward(client, tokens, town, sessionmaker):
    campaign = await reward_campaign(client, tokens, budget=10_000)
    teahouse = await store_of(client, tokens, town, TEAHOUSE)
    payment = (await pay(client, tokens, teahouse["payload"], 3_000)).json()
    assert payment["reward_points"] == 600
    staff = tokens.merchant_staff(teahouse["merchant_id"])
    refund = await client.post(f"/v1/payments/{payment['id']}/refunds", json={"amount": 1_000}, headers=idem(staff))
    assert refund.status_code == 201, refund.text
    assert refund.json()["payment"]["reward_points"] == 400
    # The payment was paid in coin (the reward came after it): the coin is restored, and a third
    # of the reward goes from its lot back to the budget.
    assert await points(client, tokens) == 400
    assert await budget_of(client, tokens, campaign) == 10_000 - 400
    rest = await client.post(f"/v1/payments/{payment['id']}/refunds", json={"amount": 2_000}, headers=idem(staff))
    assert rest.status_code == 201 and rest.json()["payment"]["reward_points"] == 0
    assert await points(client, tokens) == 0
    assert await budget_of(client, tokens, campaign) == 10_000
    async with sessionmaker() as s:
        month = (await s.execute(text("SELECT points FROM wallet.reward_months"))).scalar_one()
    assert month == 0  # the cap counts what residents keep
    assert await ledger_violations(sessionmaker) == []


BAD_CAMPAIGNS = [
    ("no-rates", {"kind": "reward"}, 422, "invalid-campaign"),
    ("unknown-class", {"kind": "reward", "reward_rates": rates({"department_store": 500})}, 422, "unknown-merchant-class"),
    ("rate-above-100-percent", {"kind": "reward", "reward_rates": rates({"shotengai": 10_001})}, 422, "validation-error"),
    ("backwards-period", {"kind": "reward", "reward_rates": rates(RATES), "reward_from": "2026-05-01T00:00:00+09:00",
                          "reward_until": "2026-04-01T00:00:00+09:00"}, 422, "invalid-campaign"),
    ("grant-with-rates", {"kind": "grant", "reward_rates": rates(RATES)}, 422, "invalid-campaign"),
    ("class-twice", {"kind": "reward", "reward_rates": rates({"shotengai": 100}) * 2}, 422, "invalid-campaign"),
    ("zero-cap", {"kind": "reward", "reward_rates": rates(RATES), "reward_monthly_cap": 0}, 422, "validation-error"),
    # reward_points_payments belongs to reward campaigns and is a JSON boolean
    ("grant-with-setting", {"kind": "grant", "reward_points_payments": False}, 422, "invalid-campaign"),
    ("premium-with-setting", {"kind": "premium", "reward_points_payments": True}, 422, "invalid-campaign"),
    ("string", {"kind": "reward", "reward_rates": rates(RATES), "reward_points_payments": "true"}, 422, "validation-error"),
    ("number", {"kind": "reward", "reward_rates": rates(RATES), "reward_points_payments": 1}, 422, "validation-error"),
]


@pytest.mark.parametrize(("case", "body", "status", "slug"), BAD_CAMPAIGNS, ids=[b[0] for b in BAD_CAMPAIGNS])
async def test_bad_reward_terms_are_refused_and_change_nothing(client, tokens, town, sessionmaker, case, body, status, slug):
    before = await snapshot(sessionmaker)
    response = await client.post("/v1/campaigns", json={"name": "Bad", "name_ja": "悪い"} | body,
                                 headers=idem(tokens.operator()))
    assert_problem(response, status, slug)
    assert await snapshot(sessionmaker) == before
    assert (await client.get("/v1/campaigns", headers=tokens.operator())).json()["items"] == []


# --- what part of a payment earns: coin only by default, or the whole amount ---------------------


async def mixed_payment(client, tokens, teahouse) -> dict:
    """400 points from a first payment of 2,000 in coin (20 %), then 1,000 paid with them: 400 in
    points and 600 in coin."""
    first = (await pay(client, tokens, teahouse["payload"], 2_000)).json()
    assert (first["point_amount"], first["reward_points"]) == (0, 400)  # coin only: earns as it always did
    payment = (await pay(client, tokens, teahouse["payload"], 1_000)).json()
    assert (payment["amount"], payment["point_amount"]) == (1_000, 400)
    return payment


async def test_by_default_only_the_coin_part_of_a_payment_earns(client, tokens, town, sessionmaker):
    campaign = await reward_campaign(client, tokens, budget=10_000)
    assert campaign["reward_points_payments"] is False
    teahouse = await store_of(client, tokens, town, TEAHOUSE)
    payment = await mixed_payment(client, tokens, teahouse)
    assert payment["reward_points"] == 120  # 20 % of the 600 in coin
    assert await points(client, tokens) == 120
    # All in points: nothing to earn on.
    all_points = (await pay(client, tokens, teahouse["payload"], 100)).json()
    assert (all_points["point_amount"], all_points["reward_points"]) == (100, 0)
    assert await budget_of(client, tokens, campaign) == 10_000 - 400 - 120
    assert await ledger_violations(sessionmaker) == []


async def test_a_campaign_may_reward_the_whole_amount_whatever_paid_it(client, tokens, town, sessionmaker):
    campaign = await reward_campaign(client, tokens, budget=10_000, reward_points_payments=True)
    assert campaign["reward_points_payments"] is True
    assert (await client.get(f"/v1/campaigns/{campaign['id']}", headers=tokens.auditor())).json()["reward_points_payments"] is True
    teahouse = await store_of(client, tokens, town, TEAHOUSE)
    payment = await mixed_payment(client, tokens, teahouse)
    assert payment["reward_points"] == 200  # 20 % of the whole 1,000
    assert await ledger_violations(sessionmaker) == []


# Refunds of the mixed payment in three steps: coin comes back first (600), then the points (400).
# Taken back so far = floor(reward × min(refunded, base) / base): the reward of 120 on a coin base
# of 600 (the default) is all taken back once the coin is (pro rata on the whole 1,000 it would be
# 36 and 72 points only, and the resident would keep points earned on coin given back); the reward
# of 200 on the whole 1,000 (the setting on) goes back with every yen refunded.
REFUND_STEPS = [(300, 60, 60), (300, 120, 120), (400, 120, 200)]  # amount, taken back by then: coin base, whole


@pytest.mark.parametrize("whole", [False, True], ids=["coin-base", "whole-amount"])
async def test_refunds_of_a_mixed_payment_take_back_the_share_of_what_earned(client, tokens, town, sessionmaker, whole):
    campaign = await reward_campaign(client, tokens, budget=10_000, reward_points_payments=whole)
    teahouse = await store_of(client, tokens, town, TEAHOUSE)
    payment = await mixed_payment(client, tokens, teahouse)
    reward = 200 if whole else 120
    assert payment["reward_points"] == reward
    staff = tokens.merchant_staff(teahouse["merchant_id"])
    refunded = 0
    for amount, taken_coin_base, taken_whole in REFUND_STEPS:
        response = await client.post(f"/v1/payments/{payment['id']}/refunds", json={"amount": amount}, headers=idem(staff))
        assert response.status_code == 201, response.text
        refunded += amount
        taken = taken_whole if whole else taken_coin_base
        after = response.json()["payment"]
        assert after["reward_points"] == reward - taken
        # The resident holds what the refunds gave back in points plus the reward left; the budget
        # got back what was taken.
        assert await points(client, tokens) == after["refunded_point"] + reward - taken
        assert await budget_of(client, tokens, campaign) == 10_000 - 400 - reward + taken
        assert await ledger_violations(sessionmaker) == []
    assert refunded == 1_000 and after["refunded_point"] == 400
    async with sessionmaker() as s:
        row = (await s.execute(text(
            "SELECT points, base, clawed_back FROM wallet.payment_rewards WHERE payment_id = :id"
        ), {"id": payment["id"]})).one()
    assert tuple(row) == (reward, 1_000 if whole else 600, reward)
