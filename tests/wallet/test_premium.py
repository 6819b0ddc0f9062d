"""Premium campaigns (プレミアム付き): first-come sales, lotteries, limits, stock and budget.

Every refusal is checked for its problem+json AND for nothing having changed: balances, journals,
lots, stock, tallies, budget (tests/helpers.snapshot plus `premium_state` below).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from services.wallet.directory import service as directory
from services.wallet.premium import service as premium
from services.wallet.topups import service as topups
from shared.audit import Actor
from shared.auth import Role
from tests.conftest import START
from tests.helpers import assert_problem, idem, ledger_violations, snapshot

OPENS = START  # 09:30 Tokyo, 1 April 2026
CLOSES = START + timedelta(days=7)
USABLE_UNTIL = "2026-07-01T00:00:00+09:00"
PRICE, VALUE, PREMIUM = 10_000, 12_500, 2_500
LOCAL = ["shotengai", "small_shop"]
CHAIN = "Ekimae Pharmacy"
TEAHOUSE = "Tsurugajo Teahouse"


async def make_campaign(client, tokens, *, fund: int | None = 100 * PREMIUM, name: str = "Premium 2026", kind="premium"):
    created = await client.post("/v1/campaigns", json={"kind": kind, "name": name, "name_ja": "プレミアム付き商品券"},
                                headers=idem(tokens.operator()))
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    if fund:
        funded = await client.post(f"/v1/campaigns/{campaign_id}/funding", json={"amount": fund},
                                   headers=idem(tokens.operator()))
        assert funded.status_code == 201, funded.text
    return campaign_id


def offer_body(**changes):
    body = {
        "mode": "first_come", "price": PRICE, "value": VALUE, "local_share_bp": 5_000, "local_classes": LOCAL,
        "per_person": 2, "per_household": 8, "total_sets": 100, "opens_at": OPENS.isoformat(),
        "closes_at": CLOSES.isoformat(), "usable_until": USABLE_UNTIL,
    }
    return body | changes


async def make_offer(client, tokens, campaign_id, **changes):
    response = await client.post(f"/v1/campaigns/{campaign_id}/premium-offer", json=offer_body(**changes),
                                 headers=idem(tokens.operator()))
    assert response.status_code == 201, response.text
    return response.json()


async def first_come(client, tokens, *, fund=100 * PREMIUM, **changes):
    campaign_id = await make_campaign(client, tokens, fund=fund)
    await make_offer(client, tokens, campaign_id, **changes)
    return campaign_id


async def buy(client, tokens, campaign_id, sets=1, resident="resident-hanako", key=None):
    return await client.post(f"/v1/campaigns/{campaign_id}/premium-purchases", json={"sets": sets},
                             headers=idem(tokens.resident(resident), key))


async def topup(client, tokens, resident, amount):
    wallet_id = (await client.get("/v1/wallet", headers=tokens.resident(resident))).json()["id"]
    response = await client.post(f"/v1/wallets/{wallet_id}/topups", json={"amount": amount}, headers=idem(tokens.operator()))
    assert response.status_code == 201, response.text
    return wallet_id


async def set_household(client, tokens, resident, household):
    wallet_id = (await client.get("/v1/wallet", headers=tokens.resident(resident))).json()["id"]
    response = await client.patch(f"/v1/wallets/{wallet_id}", json={"household": household}, headers=idem(tokens.operator()))
    assert response.status_code == 200, response.text


async def fund_residents(sessionmaker, clock, subjects, amount=10_000):
    """Many funded residents at once, through the wallet service (as the counter would)."""
    operator = Actor("operator-aizu", Role.OPERATOR.value)
    async with sessionmaker() as session, session.begin():
        region = await directory.hosted_region(session, "aizu")
        for subject in subjects:
            held = await directory.wallet_for(session, clock, region, subject)
            await topups.counter_topup(session, clock, operator, held, amount, None)


async def premium_state(sessionmaker):
    """Stock, tallies, purchases, applications, lots and notices: what a refusal must not touch."""
    async with sessionmaker() as session:
        state = {}
        for name, sql in {
            "stock": "SELECT campaign_id, bucket, remaining FROM wallet.premium_stock ORDER BY 1, 2",
            "tallies": "SELECT campaign_id, scope, holder, sets FROM wallet.premium_tallies ORDER BY 1, 2, 3",
            "offers": "SELECT campaign_id, unbacked_sets, drawn_at, released_at FROM wallet.premium_offers ORDER BY 1",
            "purchases": "SELECT id FROM wallet.premium_purchases ORDER BY 1",
            "applications": "SELECT id, status, won_sets FROM wallet.premium_applications ORDER BY 1",
            "lots": "SELECT id, remaining FROM wallet.lots ORDER BY 1",
            "notices": "SELECT id FROM wallet.notices ORDER BY 1",
        }.items():
            state[name] = [tuple(r) for r in (await session.execute(text(sql))).all()]
        return state


async def everything(sessionmaker):
    return await snapshot(sessionmaker), await premium_state(sessionmaker)


async def sales(client, tokens, campaign_id, headers=None):
    response = await client.get(f"/v1/campaigns/{campaign_id}/premium-sales", headers=headers or tokens.auditor())
    assert response.status_code == 200, response.text
    return response.json()


async def store_payload(client, tokens, town, merchant):
    merchant_id = town.merchants[merchant]
    stores = (await client.get(f"/v1/merchants/{merchant_id}/stores", headers=tokens.operator())).json()
    return (await client.get(f"/v1/stores/{stores[0]['id']}/qr", headers=tokens.operator())).json()["payload"]


async def pay(client, tokens, payload, amount, resident):
    return await client.post("/v1/payments", json={"qr": payload, "amount": amount}, headers=idem(tokens.resident(resident)))


# --- a purchase -----------------------------------------------------------------------------------


async def test_a_set_relots_the_coin_adds_split_points_from_the_budget_and_the_ledger_verifies(
    client, tokens, town, sessionmaker
):
    campaign_id = await first_come(client, tokens)
    await topup(client, tokens, "resident-sachiko", 5_000)  # 10,000 yen of coin, exactly one set
    budget_before = (await sales(client, tokens, campaign_id))["budget"]

    response = await buy(client, tokens, campaign_id, 1, "resident-sachiko")
    assert response.status_code == 201, response.text
    bought = response.json()
    assert (bought["sets"], bought["coin"], bought["points"]) == (1, 10_000, 2_500)
    assert (bought["coin_local"], bought["coin_all_shops"], bought["points_local"], bought["points_all_shops"]) == (
        5_000, 5_000, 1_250, 1_250)
    taken = [lot for lot in bought["lots"] if lot["role"] == "taken"]
    created = [lot for lot in bought["lots"] if lot["role"] == "created"]
    assert sum(lot["amount"] for lot in taken) == 10_000 and {lot["unit"] for lot in taken} == {"yen"}
    assert sorted((lot["unit"], lot["amount"]) for lot in created) == [
        ("point", 1_250), ("point", 1_250), ("yen", 5_000), ("yen", 5_000)]

    # The coin stays coin (no new money); the premium arrives as points; the budget paid it.
    wallet_now = (await client.get("/v1/wallet", headers=tokens.resident("resident-sachiko"))).json()
    assert (wallet_now["balance"], wallet_now["points"]) == (10_000, 2_500)
    figures = await sales(client, tokens, campaign_id)
    assert figures["budget"] == budget_before - 2_500
    assert (figures["sold_sets"], figures["purchases"], figures["buyers"], figures["sets_left"]) == (1, 1, 1, 99)

    async with sessionmaker() as session:
        rows = (await session.execute(text(
            "SELECT unit, amount, remaining, restriction, expires_at, source, campaign_id::text FROM wallet.lots "
            "WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY unit, restriction NULLS LAST"),
            {"ids": [lot["lot_id"] for lot in created]})).all()
        old = (await session.execute(text("SELECT sum(remaining) FROM wallet.lots WHERE id = ANY(CAST(:ids AS uuid[]))"),
                                     {"ids": [lot["lot_id"] for lot in taken]})).scalar_one()
    expiry = datetime(2026, 6, 30, 15, 0, tzinfo=UTC)
    assert [(r.unit, r.amount, r.remaining, r.restriction, r.expires_at, r.source, r.campaign_id) for r in rows] == [
        ("point", 1_250, 1_250, LOCAL, expiry, "premium", campaign_id),
        ("point", 1_250, 1_250, None, expiry, "premium", campaign_id),
        ("yen", 5_000, 5_000, LOCAL, expiry, "premium", campaign_id),
        ("yen", 5_000, 5_000, None, expiry, "premium", campaign_id),
    ]
    assert old == 0  # the top-up lots that paid are used up
    assert await ledger_violations(sessionmaker) == []

    # At a chain store only the all-shops half pays: 1,250 points + 5,000 coin.
    chain = await store_payload(client, tokens, town, CHAIN)
    assert_problem(await pay(client, tokens, chain, 6_251, "resident-sachiko"), 402, "balance-not-eligible-here")
    assert (await pay(client, tokens, chain, 6_250, "resident-sachiko")).status_code == 201
    # The local half pays at a shop in the shopping street.
    teahouse = await store_payload(client, tokens, town, TEAHOUSE)
    assert (await pay(client, tokens, teahouse, 6_250, "resident-sachiko")).status_code == 201
    wallet_now = (await client.get("/v1/wallet", headers=tokens.resident("resident-sachiko"))).json()
    assert (wallet_now["balance"], wallet_now["points"]) == (0, 0)
    assert await ledger_violations(sessionmaker) == []

    # The resident sees the purchase with its lots; so do the operator and the auditor.
    mine = (await client.get("/v1/premium-purchases", headers=tokens.resident("resident-sachiko"))).json()["items"]
    assert [p["id"] for p in mine] == [bought["id"]] and mine[0]["lots"] == bought["lots"]
    one = await client.get(f"/v1/premium-purchases/{bought['id']}", headers=tokens.auditor())
    assert one.status_code == 200 and one.json()["lots"] == bought["lots"]
    other = await client.get(f"/v1/premium-purchases/{bought['id']}", headers=tokens.resident("resident-taro"))
    assert_problem(other, 404, "premium-purchase-not-found")
    listed = (await client.get(f"/v1/campaigns/{campaign_id}/premium-purchases", headers=tokens.operator())).json()
    assert [p["id"] for p in listed["items"]] == [bought["id"]]


async def test_the_split_rounds_the_local_part_down_and_lots_follow_the_campaigns_expiry_in_months(
    client, tokens, town, sessionmaker
):
    # No usable_until on the offer: the lots expire with the campaign, at the end of the 6th
    # month after the month of purchase (April 2026 → midnight Tokyo starting 1 November).
    created = await client.post("/v1/campaigns", json={"kind": "premium", "name": "Thirds", "name_ja": "三分の一",
                                                       "expiry_months": 6}, headers=idem(tokens.operator()))
    campaign_id = created.json()["id"]
    funded = await client.post(f"/v1/campaigns/{campaign_id}/funding", json={"amount": 10 * PREMIUM},
                               headers=idem(tokens.operator()))
    assert funded.status_code == 201, funded.text
    body = offer_body(local_share_bp=3_333, total_sets=10)
    del body["usable_until"]
    offered = await client.post(f"/v1/campaigns/{campaign_id}/premium-offer", json=body, headers=idem(tokens.operator()))
    assert offered.status_code == 201, offered.text

    response = await buy(client, tokens, campaign_id, 1)
    assert response.status_code == 201, response.text
    bought = response.json()
    # 33.33 % of 10,000 is 3,333 (exact); of 2,500 it is 833.25, rounded down to 833.
    assert (bought["coin_local"], bought["coin_all_shops"], bought["points_local"], bought["points_all_shops"]) == (
        3_333, 6_667, 833, 1_667)
    assert bought["usable_until"] is None
    async with sessionmaker() as session:
        rows = (await session.execute(text(
            "SELECT unit, amount, restriction IS NOT NULL AS local, expires_at FROM wallet.lots"
            " WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY unit, amount"),
            {"ids": [lot["lot_id"] for lot in bought["lots"] if lot["role"] == "created"]})).all()
    november = datetime(2026, 10, 31, 15, 0, tzinfo=UTC)
    assert [tuple(r) for r in rows] == [
        ("point", 833, True, november), ("point", 1_667, False, november),
        ("yen", 3_333, True, november), ("yen", 6_667, False, november),
    ]
    assert await ledger_violations(sessionmaker) == []


# A purchase is one statement (wallet.buy_premium) when one free bucket holds its sets; when none
# does, the app takes them across buckets in the same transaction (the slow path): four buckets of
# one set each, one sold, hold no two sets in one. Either way a retry gets the first answer.
@pytest.mark.parametrize("stock", ["in one free bucket", "across buckets"])
async def test_a_retried_purchase_buys_once_and_gets_the_same_answer(client, tokens, town, sessionmaker, stock):
    scattered = {"total_sets": 4, "stock_buckets": 4} if stock == "across buckets" else {}
    campaign_id = await first_come(client, tokens, **scattered)
    assert (await buy(client, tokens, campaign_id, 1, resident="resident-taro")).status_code == 201
    first = await buy(client, tokens, campaign_id, 2, key="buy-once")
    again = await buy(client, tokens, campaign_id, 2, key="buy-once")
    assert first.status_code == again.status_code == 201
    assert again.text == first.text and again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    bought = first.json()
    assert (bought["sets"], bought["coin"], bought["points"], bought["coin_local"], bought["points_all_shops"]) == (
        2, 2 * PRICE, 2 * PREMIUM, PRICE, PREMIUM)
    assert [(lot["role"], lot["unit"]) for lot in bought["lots"]][-4:] == [
        ("created", "yen"), ("created", "yen"), ("created", "point"), ("created", "point")]
    shown = (await client.get(f"/v1/premium-purchases/{bought['id']}", headers=tokens.resident())).json()
    assert shown == bought
    async with sessionmaker() as s:
        stored = (await s.execute(text(
            "SELECT status_code, response FROM platform.idempotency_keys WHERE key = 'buy-once'"))).one()
    assert stored.status_code == 201 and stored.response["id"] == bought["id"]
    assert (await sales(client, tokens, campaign_id))["sold_sets"] == 3


async def test_a_purchase_answered_before_its_answer_became_its_id_is_replayed_the_same(client, tokens, town,
                                                                                         sessionmaker):
    """Before migration 0013 a key stored the whole purchase as its answer; a retry of such a
    purchase still gets that answer, shaped from the purchase."""
    campaign_id = await first_come(client, tokens)
    first = await buy(client, tokens, campaign_id, 2, key="buy-once")
    assert first.status_code == 201
    async with sessionmaker() as s, s.begin():
        await s.execute(text("UPDATE platform.idempotency_keys SET response = CAST(:answer AS json) WHERE key = 'buy-once'"),
                        {"answer": first.text})
    again = await buy(client, tokens, campaign_id, 2, key="buy-once")
    assert again.status_code == 201 and again.text == first.text and again.headers["Idempotent-Replayed"] == "true"
    assert (await sales(client, tokens, campaign_id))["sold_sets"] == 2


async def test_a_purchase_is_kept_only_by_its_transactions_commit(client, tokens, town, sessionmaker, clock):
    """The purchase, its key's claim and answer are made in the caller's transaction and commit
    with it, or not at all (as with whatever else that transaction does)."""
    campaign_id = await first_come(client, tokens)
    before = await everything(sessionmaker)
    claim = {"caller": "resident:resident-hanako", "key": "in-a-transaction", "request_hash": "0" * 64}
    async with sessionmaker() as session:
        bought = await premium.buy(session, clock, await directory.region_identity(session, "aizu"), "resident-hanako",
                                   campaign_id, 2, claim)
        assert bought.view is not None and bought.view.purchase.sets == 2
        assert await everything(sessionmaker) == before  # seen from another connection: nothing yet
        await session.rollback()
    assert await everything(sessionmaker) == before
    async with sessionmaker() as session:
        bought = await premium.buy(session, clock, await directory.region_identity(session, "aizu"), "resident-hanako",
                                   campaign_id, 2, claim)
        await session.commit()
    assert (await sales(client, tokens, campaign_id))["sold_sets"] == 2
    async with sessionmaker() as session:
        again = await premium.buy(session, clock, await directory.region_identity(session, "aizu"), "resident-hanako",
                                  campaign_id, 2, claim)
    assert again.first == (claim["request_hash"], 201, {"id": str(bought.view.purchase.id)})
    assert await ledger_violations(sessionmaker) == []


async def test_twins_of_one_purchase_sent_at_once_buy_once_and_get_one_answer(client, tokens, town, sessionmaker):
    campaign_id = await first_come(client, tokens)
    assert (await buy(client, tokens, campaign_id, 1, resident="resident-taro")).status_code == 201
    twins = await asyncio.gather(*(buy(client, tokens, campaign_id, 2, key="buy-once") for _ in range(6)))
    assert [r.status_code for r in twins] == [201] * 6
    assert len({r.text for r in twins}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in twins) == 1
    assert (await sales(client, tokens, campaign_id))["sold_sets"] == 3
    assert await ledger_violations(sessionmaker) == []


@pytest.mark.parametrize("first_request", ["a purchase", "a payment"])
async def test_a_purchase_key_reused_for_another_request_is_refused(client, tokens, town, sessionmaker, first_request):
    campaign_id = await first_come(client, tokens)
    if first_request == "a purchase":
        assert (await buy(client, tokens, campaign_id, 1, key="buy-once")).status_code == 201
    else:
        teahouse = await store_payload(client, tokens, town, TEAHOUSE)
        paid = await client.post("/v1/payments", json={"qr": teahouse, "amount": 100},
                                 headers=idem(tokens.resident(), "buy-once"))
        assert paid.status_code == 201, paid.text
    await _refused(client, tokens, sessionmaker, lambda: buy(client, tokens, campaign_id, 2, key="buy-once"),
                   422, "idempotency-key-reused")


async def test_a_residents_first_call_buying_makes_the_wallet_then_refuses_for_want_of_coin(
    client, tokens, town, sessionmaker
):
    campaign_id = await first_come(client, tokens)
    before = await everything(sessionmaker)
    response = await buy(client, tokens, campaign_id, 1, resident="resident-newcomer")
    assert_problem(response, 402, "insufficient-balance")
    assert await everything(sessionmaker) == before  # the wallet made on the way is rolled back too


async def test_the_offer_and_its_operator_action_are_visible_and_audited(client, tokens, town):
    campaign_id = await first_come(client, tokens)
    offer = (await client.get(f"/v1/campaigns/{campaign_id}/premium-offer", headers=tokens.resident())).json()
    assert (offer["premium"], offer["phase"], offer["sets_left"], offer["local_classes"]) == (2_500, "open", 100, LOCAL)
    listed = (await client.get("/v1/premium-offers", headers=tokens.resident())).json()["items"]
    assert [o["campaign_id"] for o in listed] == [campaign_id]
    events = (await client.get("/v1/audit-events", headers=tokens.auditor())).json()["items"]
    assert events[0]["action"] == "premium.offer.create" and events[0]["after"]["total_sets"] == 100


# --- refusals: a clear problem and nothing changed -------------------------------------------------


async def _refused(client, tokens, sessionmaker, request, status, slug):
    before = await everything(sessionmaker)
    response = await request()
    body = assert_problem(response, status, slug)
    assert await everything(sessionmaker) == before
    return body


async def test_more_sets_than_one_person_may_have_are_refused(client, tokens, town, sessionmaker):
    campaign_id = await first_come(client, tokens)
    body = await _refused(client, tokens, sessionmaker, lambda: buy(client, tokens, campaign_id, 3), 409,
                          "premium-person-limit-exceeded")
    assert (body["limit"], body["already"], body["requested"]) == (2, 0, 3)
    assert (await buy(client, tokens, campaign_id, 2)).status_code == 201
    body = await _refused(client, tokens, sessionmaker, lambda: buy(client, tokens, campaign_id, 1), 409,
                          "premium-person-limit-exceeded")
    assert (body["already"], body["requested"]) == (2, 1)


async def test_more_sets_than_one_household_may_have_are_refused(client, tokens, town, sessionmaker):
    campaign_id = await first_come(client, tokens, per_household=3)
    await topup(client, tokens, "resident-taro", 10_000)
    for resident in ("resident-hanako", "resident-taro"):
        await set_household(client, tokens, resident, "aizu-0001")
    assert (await buy(client, tokens, campaign_id, 2, "resident-hanako")).status_code == 201
    body = await _refused(client, tokens, sessionmaker, lambda: buy(client, tokens, campaign_id, 2, "resident-taro"),
                          409, "premium-household-limit-exceeded")
    assert (body["limit"], body["already"]) == (3, 2)
    assert (await buy(client, tokens, campaign_id, 1, "resident-taro")).status_code == 201


async def test_a_sale_not_yet_open_or_already_closed_is_refused(client, tokens, town, sessionmaker, clock):
    campaign_id = await first_come(client, tokens, opens_at=(START + timedelta(hours=1)).isoformat())
    await _refused(client, tokens, sessionmaker, lambda: buy(client, tokens, campaign_id), 409, "premium-sale-not-open")
    clock.set(CLOSES)
    await _refused(client, tokens, sessionmaker, lambda: buy(client, tokens, campaign_id), 409, "premium-sale-closed")
    clock.set(CLOSES - timedelta(seconds=1))
    assert (await buy(client, tokens, campaign_id)).status_code == 201


async def test_when_the_sets_are_sold_out_more_are_refused(client, tokens, town, sessionmaker):
    campaign_id = await first_come(client, tokens, total_sets=3)
    await topup(client, tokens, "resident-taro", 10_000)
    assert (await buy(client, tokens, campaign_id, 2, "resident-hanako")).status_code == 201
    body = await _refused(client, tokens, sessionmaker, lambda: buy(client, tokens, campaign_id, 2, "resident-taro"),
                          409, "premium-sold-out")
    assert body["sets_left"] == 1
    assert (await buy(client, tokens, campaign_id, 1, "resident-taro")).status_code == 201
    body = await _refused(client, tokens, sessionmaker, lambda: buy(client, tokens, campaign_id, 1, "resident-taro"),
                          409, "premium-sold-out")
    assert body["sets_left"] == 0
    assert (await sales(client, tokens, campaign_id))["sold_sets"] == 3


async def test_when_the_budget_covers_no_more_premiums_the_sale_is_refused_until_funded(client, tokens, town, sessionmaker):
    campaign_id = await first_come(client, tokens, fund=PREMIUM + 100, total_sets=10)
    await topup(client, tokens, "resident-taro", 10_000)
    assert (await sales(client, tokens, campaign_id))["sets_awaiting_budget"] == 9
    assert (await buy(client, tokens, campaign_id, 1, "resident-hanako")).status_code == 201
    body = await _refused(client, tokens, sessionmaker, lambda: buy(client, tokens, campaign_id, 1, "resident-taro"),
                          402, "budget-exhausted")
    assert body["required"] == PREMIUM
    funded = await client.post(f"/v1/campaigns/{campaign_id}/funding", json={"amount": 2 * PREMIUM},
                               headers=idem(tokens.operator()))
    assert funded.status_code == 201
    assert (await buy(client, tokens, campaign_id, 1, "resident-taro")).status_code == 201
    figures = await sales(client, tokens, campaign_id)
    assert (figures["sold_sets"], figures["budget"]) == (2, 100 + PREMIUM)
    assert await ledger_violations(sessionmaker) == []


async def test_too_little_unrestricted_coin_is_refused(client, tokens, town, sessionmaker):
    campaign_id = await first_come(client, tokens)
    body = await _refused(client, tokens, sessionmaker, lambda: buy(client, tokens, campaign_id, 1, "resident-sachiko"),
                          402, "insufficient-balance")
    assert (body["balance"], body["required"]) == (5_000, 10_000)


async def test_points_and_restricted_coin_do_not_pay_for_a_set(client, tokens, town, sessionmaker):
    """A second set cannot be paid with the first set's value: only unrestricted coin buys sets."""
    campaign_id = await first_come(client, tokens, local_share_bp=10_000)
    await topup(client, tokens, "resident-sachiko", 5_000)
    assert (await buy(client, tokens, campaign_id, 1, "resident-sachiko")).status_code == 201
    await _refused(client, tokens, sessionmaker, lambda: buy(client, tokens, campaign_id, 1, "resident-sachiko"),
                   402, "insufficient-balance")


async def test_a_closed_or_unknown_campaign_and_the_wrong_sale_mode_are_refused(client, tokens, town, sessionmaker, clock):
    campaign_id = await first_come(client, tokens)
    lottery_id = await make_campaign(client, tokens, name="Lottery")
    await make_offer(client, tokens, lottery_id, mode="lottery", payment_deadline=(CLOSES + timedelta(days=7)).isoformat())
    await _refused(client, tokens, sessionmaker, lambda: buy(client, tokens, lottery_id), 409, "premium-wrong-sale-mode")
    await _refused(client, tokens, sessionmaker,
                   lambda: client.post(f"/v1/campaigns/{campaign_id}/premium-applications", json={"sets": 1},
                                       headers=idem(tokens.resident())), 409, "premium-wrong-sale-mode")
    await _refused(client, tokens, sessionmaker, lambda: buy(client, tokens, "01a209ce-0000-7000-8000-000000000000"),
                   404, "premium-offer-not-found")
    grant_id = await make_campaign(client, tokens, name="Health walks", kind="grant")
    await _refused(client, tokens, sessionmaker, lambda: buy(client, tokens, grant_id), 409, "campaign-kind-mismatch")
    closed = await client.post(f"/v1/campaigns/{campaign_id}/close", headers=idem(tokens.operator()))
    assert closed.status_code == 200
    await _refused(client, tokens, sessionmaker, lambda: buy(client, tokens, campaign_id), 409, "campaign-closed")


OFFER_ERRORS = [
    ("value-not-above-price", {"value": PRICE}, 422, "invalid-premium-offer"),
    ("household-below-person", {"per_household": 1}, 422, "invalid-premium-offer"),
    ("closes-before-opens", {"closes_at": (OPENS - timedelta(hours=1)).isoformat()}, 422, "invalid-premium-offer"),
    ("lottery-without-deadline", {"mode": "lottery"}, 422, "invalid-premium-offer"),
    ("deadline-on-first-come", {"payment_deadline": (CLOSES + timedelta(days=1)).isoformat()}, 422,
     "invalid-premium-offer"),
    ("usable-until-not-midnight", {"usable_until": "2026-07-01T12:00:00+09:00"}, 422, "invalid-premium-offer"),
    ("usable-until-within-sale", {"usable_until": "2026-04-03T00:00:00+09:00"}, 422, "invalid-premium-offer"),
    ("local-share-without-classes", {"local_classes": None}, 422, "invalid-premium-offer"),
    ("unknown-class", {"local_classes": ["nowhere"]}, 422, "unknown-merchant-class"),
    ("float-price", {"price": 10_000.5}, 422, "validation-error"),
]


@pytest.mark.parametrize(("case", "changes", "status", "slug"), OFFER_ERRORS, ids=[c[0] for c in OFFER_ERRORS])
async def test_an_inconsistent_offer_is_refused(client, tokens, town, sessionmaker, case, changes, status, slug):
    campaign_id = await make_campaign(client, tokens)
    await _refused(client, tokens, sessionmaker,
                   lambda: client.post(f"/v1/campaigns/{campaign_id}/premium-offer", json=offer_body(**changes),
                                       headers=idem(tokens.operator())), status, slug)


async def test_an_offer_needs_a_premium_campaign_of_its_own_and_an_operator(client, tokens, town, sessionmaker):
    grant_id = await make_campaign(client, tokens, name="Health points", kind="grant")
    await _refused(client, tokens, sessionmaker,
                   lambda: client.post(f"/v1/campaigns/{grant_id}/premium-offer", json=offer_body(),
                                       headers=idem(tokens.operator())), 409, "campaign-kind-mismatch")
    campaign_id = await first_come(client, tokens)
    await _refused(client, tokens, sessionmaker,
                   lambda: client.post(f"/v1/campaigns/{campaign_id}/premium-offer", json=offer_body(),
                                       headers=idem(tokens.operator())), 409, "premium-offer-exists")
    await _refused(client, tokens, sessionmaker,
                   lambda: client.post(f"/v1/campaigns/{campaign_id}/premium-offer", json=offer_body(),
                                       headers=idem(tokens.resident())), 403, "forbidden")


# --- concurrency ----------------------------------------------------------------------------------


async def test_200_buyers_at_once_for_50_sets_buy_exactly_50(client, tokens, town, sessionmaker, clock):
    campaign_id = await first_come(client, tokens, total_sets=50, stock_buckets=8)
    subjects = [f"rush-{i:03d}" for i in range(200)]
    await fund_residents(sessionmaker, clock, subjects)
    responses = await asyncio.gather(*(buy(client, tokens, campaign_id, 1, s) for s in subjects))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 50 and statuses.count(409) == 150, statuses
    assert {r.json()["type"] for r in responses if r.status_code == 409} == {"urn:chiikipay:problem:premium-sold-out"}
    figures = await sales(client, tokens, campaign_id)
    assert (figures["sold_sets"], figures["sets_left"], figures["budget"]) == (50, 0, 50 * PREMIUM)
    async with sessionmaker() as session:
        assert (await session.execute(text("SELECT sum(remaining) FROM wallet.premium_stock"))).scalar_one() == 0
    assert await ledger_violations(sessionmaker) == []


async def test_buyers_of_two_sets_at_the_end_of_a_sale_take_each_from_one_bucket(
    client, tokens, town, sessionmaker, clock
):
    """Many buyers of two at once for sets spread thin over 32 buckets: every set is sold, two to
    a buyer, the last ones across buckets, and nobody is refused but for the sets being gone."""
    campaign_id = await first_come(client, tokens, total_sets=100, stock_buckets=32)
    subjects = [f"pair-{i:03d}" for i in range(120)]
    await fund_residents(sessionmaker, clock, subjects, amount=20_000)
    responses = await asyncio.gather(*(buy(client, tokens, campaign_id, 2, s) for s in subjects))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 50 and statuses.count(409) == 70, statuses
    assert {r.json()["type"] for r in responses if r.status_code == 409} == {"urn:chiikipay:problem:premium-sold-out"}
    async with sessionmaker() as session:
        assert (await session.execute(text("SELECT sum(remaining) FROM wallet.premium_stock"))).scalar_one() == 0
    assert await ledger_violations(sessionmaker) == []


async def test_one_resident_firing_10_purchases_at_once_never_passes_the_limit(client, tokens, town, sessionmaker):
    campaign_id = await first_come(client, tokens)
    responses = await asyncio.gather(*(buy(client, tokens, campaign_id, 1) for _ in range(10)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 2 + [409] * 8, statuses
    assert (await sales(client, tokens, campaign_id))["sold_sets"] == 2
    wallet_now = (await client.get("/v1/wallet", headers=tokens.resident())).json()
    assert (wallet_now["balance"], wallet_now["points"]) == (30_000, 2 * PREMIUM)
    assert await ledger_violations(sessionmaker) == []


async def test_a_household_buying_at_once_never_passes_its_limit(client, tokens, town, sessionmaker, clock):
    campaign_id = await first_come(client, tokens, per_household=3)
    members = [f"family-{i}" for i in range(4)]
    await fund_residents(sessionmaker, clock, members, amount=20_000)
    for member in members:
        await set_household(client, tokens, member, "aizu-0042")
    responses = await asyncio.gather(*(buy(client, tokens, campaign_id, 1, m) for m in members for _ in range(2)))
    assert sorted(r.status_code for r in responses) == [201] * 3 + [409] * 5
    assert (await sales(client, tokens, campaign_id))["sold_sets"] == 3
    assert await ledger_violations(sessionmaker) == []


async def test_sets_scattered_over_buckets_are_still_sold_to_the_last(client, tokens, town, sessionmaker):
    """Four buckets of one set each: a purchase of two takes across buckets (the slow path)."""
    campaign_id = await first_come(client, tokens, total_sets=4, stock_buckets=4)
    await topup(client, tokens, "resident-taro", 10_000)
    assert (await buy(client, tokens, campaign_id, 2, "resident-hanako")).status_code == 201
    assert (await buy(client, tokens, campaign_id, 2, "resident-taro")).status_code == 201
    assert_problem(await buy(client, tokens, campaign_id, 1, "resident-sachiko"), 409, "premium-sold-out")
    assert (await sales(client, tokens, campaign_id))["sold_sets"] == 4


# --- lottery --------------------------------------------------------------------------------------

DEADLINE = CLOSES + timedelta(days=7)


async def lottery(client, tokens, *, fund=100 * PREMIUM, **changes):
    campaign_id = await make_campaign(client, tokens, fund=fund, name="Lottery 2026")
    await make_offer(client, tokens, campaign_id, mode="lottery", payment_deadline=DEADLINE.isoformat(), **changes)
    return campaign_id


async def apply(client, tokens, campaign_id, sets, resident="resident-hanako"):
    return await client.post(f"/v1/campaigns/{campaign_id}/premium-applications", json={"sets": sets},
                             headers=idem(tokens.resident(resident)))


async def draw(client, tokens, campaign_id, seed=None):
    return await client.post(f"/v1/campaigns/{campaign_id}/premium-draw", json={"seed": seed} if seed else {},
                             headers=idem(tokens.operator()))


async def notices(sessionmaker):
    async with sessionmaker() as session:
        rows = (await session.execute(text(
            "SELECT r.subject, n.kind, n.payload FROM wallet.notices n JOIN wallet.residents r ON r.id = n.resident_id "
            "WHERE n.kind LIKE 'lottery_%' ORDER BY r.subject, n.kind"))).all()
    return [(r.subject, r.kind, r.payload) for r in rows]


async def test_a_lottery_is_drawn_reproducibly_winners_pay_and_unpaid_wins_are_released(
    client, tokens, town, sessionmaker, clock
):
    campaign_id = await lottery(client, tokens, total_sets=5)
    applicants = [f"applicant-{i}" for i in range(6)]
    await fund_residents(sessionmaker, clock, applicants, amount=20_000)
    ids = {}
    for i, who in enumerate(applicants):
        response = await apply(client, tokens, campaign_id, 1 + i % 2, who)
        assert response.status_code == 201, response.text
        ids[response.json()["id"]] = who
    assert_problem(await draw(client, tokens, campaign_id, "seed-too-early"), 409, "premium-draw-too-early")

    clock.set(CLOSES)
    assert_problem(await apply(client, tokens, campaign_id, 1, "resident-taro"), 409, "premium-sale-closed")
    drawn = await draw(client, tokens, campaign_id, "aizu-premium-2026")
    assert drawn.status_code == 201, drawn.text
    result = drawn.json()
    assert (result["seed"], result["algorithm"], result["applications"], result["applied_sets"]) == (
        "aizu-premium-2026", "sha256-rank-v1", 6, 9)
    assert result["won_sets"] == 5

    # Anyone with the seed and the application ids re-runs the draw and gets the same result.
    again = premium.draw_lottery("aizu-premium-2026", [(r["application_id"], r["sets"]) for r in result["results"]], 5)
    assert [(str(d.application_id), d.rank, d.key, d.won_sets) for d in again] == [
        (r["application_id"], r["rank"], r["key"], r["won_sets"]) for r in result["results"]]
    other = premium.draw_lottery("another-seed", [(r["application_id"], r["sets"]) for r in result["results"]], 5)
    assert [d.key for d in other] != [d.key for d in again]
    published = (await client.get(f"/v1/campaigns/{campaign_id}/premium-draw", headers=tokens.auditor())).json()
    assert published == result
    assert_problem(await draw(client, tokens, campaign_id, "aizu-premium-2027"), 409, "premium-already-drawn")

    # Everyone is told: winners with the sets, the price and the deadline; losers too.
    told = await notices(sessionmaker)
    won = {ids[r["application_id"]]: r for r in result["results"] if r["won_sets"]}
    lost = {ids[r["application_id"]] for r in result["results"] if not r["won_sets"]}
    assert {(s, k) for s, k, _ in told} == {(s, "lottery_won") for s in won} | {(s, "lottery_lost") for s in lost}
    for subject, kind, payload in told:
        if kind == "lottery_won":
            assert payload["won_sets"] == won[subject]["won_sets"]
            assert payload["price"] == won[subject]["won_sets"] * PRICE
            assert payload["payment_deadline"] == DEADLINE.isoformat()

    # A loser cannot pay; a winner pays once; the others do not pay in time.
    loser = next(r for r in result["results"] if not r["won_sets"])
    response = await client.post(f"/v1/premium-applications/{loser['application_id']}/payment",
                                 headers=idem(tokens.resident(ids[loser["application_id"]])))
    assert_problem(response, 409, "premium-not-won")
    winners = [r for r in result["results"] if r["won_sets"]]
    payer, late = winners[0], winners[1:]
    paid = await client.post(f"/v1/premium-applications/{payer['application_id']}/payment",
                             headers=idem(tokens.resident(ids[payer["application_id"]])))
    assert paid.status_code == 201, paid.text
    assert paid.json()["sets"] == payer["won_sets"] and paid.json()["points"] == payer["won_sets"] * PREMIUM
    assert_problem(await client.post(f"/v1/premium-applications/{payer['application_id']}/payment",
                                     headers=idem(tokens.resident(ids[payer["application_id"]]))), 409,
                   "premium-already-paid")
    mine = (await client.get("/v1/premium-applications", headers=tokens.resident(ids[payer["application_id"]]))).json()
    assert mine["items"][0]["status"] == "paid"

    released = await client.post(f"/v1/campaigns/{campaign_id}/premium-release", headers=idem(tokens.operator()))
    assert_problem(released, 409, "premium-deadline-not-passed")
    clock.set(DEADLINE)
    before = await everything(sessionmaker)
    response = await client.post(f"/v1/premium-applications/{late[0]['application_id']}/payment",
                                 headers=idem(tokens.resident(ids[late[0]["application_id"]])))
    assert_problem(response, 409, "premium-win-released")
    assert await everything(sessionmaker) == before
    released = await client.post(f"/v1/campaigns/{campaign_id}/premium-release", headers=idem(tokens.operator()))
    assert released.status_code == 200, released.text
    assert released.json()["released_applications"] == len(late)
    assert released.json()["released_sets"] == sum(r["won_sets"] for r in late)
    assert {s for s, k, _ in await notices(sessionmaker) if k == "lottery_released"} == {
        ids[r["application_id"]] for r in late}

    figures = await sales(client, tokens, campaign_id, tokens.operator())
    assert (figures["applications"], figures["applied_sets"], figures["winners"], figures["won_sets"]) == (
        6, 9, len(winners), 5)
    assert (figures["paid_sets"], figures["sold_sets"], figures["released_sets"]) == (
        payer["won_sets"], payer["won_sets"], 5 - payer["won_sets"])
    events = [e["action"] for e in (await client.get("/v1/audit-events", headers=tokens.auditor())).json()["items"]]
    assert "premium.draw" in events and "premium.release" in events
    assert await ledger_violations(sessionmaker) == []


async def test_applications_beyond_the_limits_or_twice_are_refused(client, tokens, town, sessionmaker):
    campaign_id = await lottery(client, tokens, per_household=3)
    await _refused(client, tokens, sessionmaker, lambda: apply(client, tokens, campaign_id, 3), 409,
                   "premium-person-limit-exceeded")
    assert (await apply(client, tokens, campaign_id, 2)).status_code == 201
    await _refused(client, tokens, sessionmaker, lambda: apply(client, tokens, campaign_id, 1), 409,
                   "premium-already-applied")
    for resident in ("resident-hanako", "resident-taro"):
        await set_household(client, tokens, resident, "aizu-0007")
    # Hanako applied before the household was set; taro's application counts against it from now on.
    assert (await apply(client, tokens, campaign_id, 2, "resident-taro")).status_code == 201
    await set_household(client, tokens, "resident-sachiko", "aizu-0007")
    await _refused(client, tokens, sessionmaker, lambda: apply(client, tokens, campaign_id, 2, "resident-sachiko"),
                   409, "premium-household-limit-exceeded")


async def test_a_draw_the_budget_cannot_cover_is_refused(client, tokens, town, sessionmaker, clock):
    campaign_id = await lottery(client, tokens, fund=PREMIUM, total_sets=5)
    assert (await apply(client, tokens, campaign_id, 2)).status_code == 201
    clock.set(CLOSES)
    body = await _refused(client, tokens, sessionmaker, lambda: draw(client, tokens, campaign_id, "budget-short"), 402,
                          "budget-exhausted")
    assert (body["budget"], body["required"]) == (PREMIUM, 2 * PREMIUM)


async def test_the_release_job_releases_every_lottery_past_its_deadline_once(client, tokens, town, sessionmaker, clock):
    campaign_id = await lottery(client, tokens, total_sets=2)
    assert (await apply(client, tokens, campaign_id, 2)).status_code == 201
    clock.set(CLOSES)
    assert (await draw(client, tokens, campaign_id, "job-release-seed")).status_code == 201
    async with sessionmaker() as session, session.begin():
        assert await premium.release_unpaid_wins(session, clock) == []
    clock.set(DEADLINE + timedelta(minutes=1))
    async with sessionmaker() as session, session.begin():
        done = await premium.release_unpaid_wins(session, clock)
    assert [(str(r.campaign_id), r.applications, r.sets) for r in done] == [(campaign_id, 1, 2)]
    async with sessionmaker() as session, session.begin():
        assert await premium.release_unpaid_wins(session, clock) == []
    mine = (await client.get("/v1/premium-applications", headers=tokens.resident())).json()["items"]
    assert (mine[0]["status"], mine[0]["won_sets"]) == ("released", 2)
