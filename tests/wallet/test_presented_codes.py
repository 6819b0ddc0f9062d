"""Customer-presented payments: the app's one-time code and the printed resident card."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import event, text

from tests.helpers import assert_problem, idem, ledger_violations, snapshot
from tests.wallet.test_payments import balances, terminal_key

TEAHOUSE = "Tsurugajo Teahouse"


async def cpm_token(client, tokens, resident="resident-hanako") -> str:
    response = await client.post("/v1/wallet/cpm-tokens", headers=idem(tokens.resident(resident)))
    assert response.status_code == 201, response.text
    return response.json()["token"]


async def test_the_shop_scans_the_residents_code_once(client, tokens, town, sessionmaker):
    pos = await terminal_key(client, tokens, town.merchants[TEAHOUSE])
    token = await cpm_token(client, tokens)
    assert len(token) == 20 and token.isdigit()
    paid = await client.post("/v1/cpm-payments", json={"token": token, "amount": 880}, headers=idem(pos))
    assert paid.status_code == 201, paid.text
    assert (paid.json()["method"], paid.json()["amount"], paid.json()["fee"]) == ("cpm", 880, 17)
    assert await balances(client, tokens, town) == {"resident": 30_000 - 880, "merchant": 863, "fee_income": 17}

    before = await snapshot(sessionmaker)
    again = await client.post("/v1/cpm-payments", json={"token": token, "amount": 880}, headers=idem(pos))
    assert_problem(again, 409, "cpm-token-used")
    assert await snapshot(sessionmaker) == before


async def test_two_terminals_scanning_one_code_at_once_make_one_payment(client, tokens, town, sessionmaker):
    teahouse, bus = town.merchants[TEAHOUSE], town.merchants["Aizu Bus"]
    terminals = [await terminal_key(client, tokens, teahouse) for _ in range(3)] + [await terminal_key(client, tokens, bus)]
    for _ in range(5):  # several rounds: a race is only a test if it is run more than once
        token = await cpm_token(client, tokens)
        responses = await asyncio.gather(
            *[client.post("/v1/cpm-payments", json={"token": token, "amount": 100}, headers=idem(t)) for t in terminals]
        )
        assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
    assert (await client.get("/v1/wallet", headers=tokens.resident())).json()["balance"] == 30_000 - 5 * 100
    assert await ledger_violations(sessionmaker) == []


async def test_an_expired_or_unknown_code_is_refused_and_changes_nothing(client, tokens, town, sessionmaker, app):
    pos = await terminal_key(client, tokens, town.merchants[TEAHOUSE])
    token = await cpm_token(client, tokens)
    await app.state.redis.delete(f"chiikipay:cpm:aizu:{token}")  # what Redis does when the TTL runs out
    before = await snapshot(sessionmaker)
    for code in (token, "0" * 20):
        response = await client.post("/v1/cpm-payments", json={"token": code, "amount": 100}, headers=idem(pos))
        assert_problem(response, 409, "cpm-token-expired")
    assert_problem(
        await client.post("/v1/cpm-payments", json={"token": "12345", "amount": 100}, headers=idem(pos)), 422, "validation-error"
    )
    assert await snapshot(sessionmaker) == before


async def test_the_code_lives_only_for_its_ttl(client, tokens, town, app, settings):
    token = await cpm_token(client, tokens)
    ttl = await app.state.redis.ttl(f"chiikipay:cpm:aizu:{token}")
    assert 0 < ttl <= settings.cpm_token_ttl_seconds


async def test_a_code_that_cannot_pay_is_spent_and_nothing_moves(client, tokens, town, sessionmaker):
    pos = await terminal_key(client, tokens, town.merchants[TEAHOUSE])
    token = await cpm_token(client, tokens, "resident-sachiko")  # holds 5,000
    before = await snapshot(sessionmaker)
    short = await client.post("/v1/cpm-payments", json={"token": token, "amount": 5_001}, headers=idem(pos))
    assert_problem(short, 402, "insufficient-balance")
    assert await snapshot(sessionmaker) == before


async def test_with_redis_down_codes_answer_503(client, tokens, town, sessionmaker, redis_down):
    pos = await terminal_key(client, tokens, town.merchants[TEAHOUSE])
    before = await snapshot(sessionmaker)
    assert_problem(await client.post("/v1/wallet/cpm-tokens", headers=idem(tokens.resident())), 503, "cpm-unavailable")
    assert_problem(
        await client.post("/v1/cpm-payments", json={"token": "1" * 20, "amount": 100}, headers=idem(pos)), 503, "cpm-unavailable"
    )
    assert await snapshot(sessionmaker) == before


# --- the printed resident card ------------------------------------------------------------------


@pytest.fixture
async def card(client, tokens, town) -> dict:
    wallet = (await client.get("/v1/wallet", headers=tokens.resident("resident-taro"))).json()
    issued = await client.post(
        f"/v1/wallets/{wallet['id']}/cards", json={"pin": "2468", "daily_limit": 5_000}, headers=idem(tokens.operator())
    )
    assert issued.status_code == 201, issued.text
    return issued.json()


async def card_pay(client, pos, card, pin="2468", amount=1_000):
    body = {"card_code": card["code"], "pin": pin, "amount": amount}
    return await client.post("/v1/card-payments", json=body, headers=idem(pos))


async def test_card_pays_with_its_pin_within_its_daily_limit(client, tokens, town, card, sessionmaker, clock):
    pos = await terminal_key(client, tokens, town.merchants[TEAHOUSE])
    paid = await card_pay(client, pos, card, amount=3_000)
    assert paid.status_code == 201, paid.text
    assert (paid.json()["method"], paid.json()["card_id"]) == ("card", card["id"])
    assert (await card_pay(client, pos, card, amount=2_000)).status_code == 201

    before = await snapshot(sessionmaker)
    over = await card_pay(client, pos, card, amount=1)
    assert assert_problem(over, 409, "card-day-limit-exceeded")["remaining_today"] == 0
    assert await snapshot(sessionmaker) == before
    clock.advance(timedelta(days=1))  # a new Tokyo day
    assert (await card_pay(client, pos, card, amount=1_000)).status_code == 201
    assert (await client.get("/v1/wallet", headers=tokens.resident("resident-taro"))).json()["balance"] == 12_000 - 6_000


def money(state: dict) -> dict:
    """A snapshot less what a refused card payment keeps: the card's count and the key's answer."""
    counts = {table: n for table, n in state["counts"].items() if table != "platform.idempotency_keys"}
    rows = {table: r for table, r in state["rows"].items() if table != "wallet.resident_cards"}
    return {**state, "counts": counts, "rows": rows}


async def failed_pins(sessionmaker, card) -> tuple[str, int]:
    async with sessionmaker() as s:
        row = (await s.execute(text("SELECT status, failed_pins FROM wallet.resident_cards WHERE id = :id"),
                               {"id": card["id"]})).one()
    return row.status, row.failed_pins


async def test_five_wrong_pins_lock_the_card_and_move_no_money(client, tokens, town, card, sessionmaker):
    pos = await terminal_key(client, tokens, town.merchants[TEAHOUSE])
    before = await snapshot(sessionmaker)
    for left in (4, 3, 2, 1):
        assert assert_problem(await card_pay(client, pos, card, pin="0000"), 422, "card-pin-wrong")["attempts_left"] == left
    assert_problem(await card_pay(client, pos, card, pin="0000"), 409, "card-locked")
    assert_problem(await card_pay(client, pos, card), 409, "card-locked")  # even the right PIN now
    assert money(await snapshot(sessionmaker)) == money(before)  # no balance, journal or payment moved
    assert await failed_pins(sessionmaker, card) == ("locked", 5)
    seen = (await client.get(f"/v1/cards/{card['id']}", headers=tokens.operator())).json()
    assert seen["status"] == "locked"


async def test_a_wrong_pin_sent_again_with_its_key_is_answered_again_not_counted_again(client, tokens, town, card, sessionmaker):
    pos = await terminal_key(client, tokens, town.merchants[TEAHOUSE])
    headers = idem(pos, "card-payment-retry-1")
    body = {"card_code": card["code"], "pin": "0000", "amount": 1_000}
    first = await client.post("/v1/card-payments", json=body, headers=headers)
    again = await client.post("/v1/card-payments", json=body, headers=headers)
    assert assert_problem(first, 422, "card-pin-wrong")["attempts_left"] == 4
    assert assert_problem(again, 422, "card-pin-wrong") == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert await failed_pins(sessionmaker, card) == ("active", 1)


async def test_a_wrong_pin_is_counted_on_the_requests_own_connection(client, tokens, town, card, app):
    """Counting a wrong PIN used a second pooled connection while the request held one: a few
    wrong PINs at once took the whole pool, and every other request waited for its timeout."""
    pos = await terminal_key(client, tokens, town.merchants[TEAHOUSE])
    checkouts = []
    pool = app.state.engine.sync_engine.pool

    def count(*_) -> None:
        checkouts.append(1)

    event.listen(pool, "checkout", count)
    try:
        assert_problem(await card_pay(client, pos, card, pin="0000"), 422, "card-pin-wrong")
    finally:
        event.remove(pool, "checkout", count)
    assert len(checkouts) == 1


async def test_wrong_pins_sent_at_once_are_checked_one_by_one_up_to_the_lock(client, tokens, town, card, app, sessionmaker):
    """More guesses at once than the pool has connections: they wait for the card in turn, at
    most five are checked, and another resident's request meanwhile is answered."""
    pos = await terminal_key(client, tokens, town.merchants[TEAHOUSE])
    before = await snapshot(sessionmaker)
    guesses = app.state.settings.db_pool_size + 2
    answers, wallet = await asyncio.gather(
        asyncio.gather(*[card_pay(client, pos, card, pin=f"{n:04d}") for n in range(guesses)]),
        client.get("/v1/wallet", headers=tokens.resident("resident-hanako")),
    )
    assert wallet.status_code == 200
    slugs = sorted(r.json()["type"].rsplit(":", 1)[1] for r in answers)
    assert slugs == ["card-locked"] * (guesses - 4) + ["card-pin-wrong"] * 4
    assert sorted(r.json().get("attempts_left", 0) for r in answers if r.status_code == 422) == [1, 2, 3, 4]
    assert await failed_pins(sessionmaker, card) == ("locked", 5)
    assert_problem(await card_pay(client, pos, card), 409, "card-locked")  # the right PIN, after them
    assert money(await snapshot(sessionmaker)) == money(before)


async def test_with_one_try_left_seven_guesses_at_once_check_one(client, tokens, town, card, sessionmaker):
    pos = await terminal_key(client, tokens, town.merchants[TEAHOUSE])
    for _ in range(4):
        await card_pay(client, pos, card, pin="1111")
    assert await failed_pins(sessionmaker, card) == ("active", 4)
    answers = await asyncio.gather(*[card_pay(client, pos, card, pin=f"{n:04d}") for n in range(3000, 3007)])
    assert [assert_problem(r, 409, "card-locked")["status"] for r in answers] == [409] * 7
    now_locked = [r for r in answers if "now locked" in r.json()["detail"]]
    assert len(now_locked) == 1  # the one guess that was checked
    assert await failed_pins(sessionmaker, card) == ("locked", 5)
    assert_problem(await card_pay(client, pos, card), 409, "card-locked")


async def test_a_right_pin_resets_the_wrong_pin_count(client, tokens, town, card):
    pos = await terminal_key(client, tokens, town.merchants[TEAHOUSE])
    for _ in range(4):
        await card_pay(client, pos, card, pin="1111")
    assert (await card_pay(client, pos, card)).status_code == 201
    assert assert_problem(await card_pay(client, pos, card, pin="1111"), 422, "card-pin-wrong")["attempts_left"] == 4


async def test_lost_card_is_dead_and_a_reissued_card_kills_the_old_code(client, tokens, town, card, sessionmaker):
    pos = await terminal_key(client, tokens, town.merchants[TEAHOUSE])
    lost = await client.post(f"/v1/cards/{card['id']}/lost", headers=idem(tokens.resident("resident-taro")))
    assert lost.status_code == 200 and lost.json()["status"] == "lost"
    before = await snapshot(sessionmaker)
    assert_problem(await card_pay(client, pos, card), 409, "card-lost")
    assert await snapshot(sessionmaker) == before

    reissued = await client.post(
        f"/v1/wallets/{card['account_id']}/cards", json={"pin": "1357"}, headers=idem(tokens.operator())
    )
    new = reissued.json()
    assert new["code"] != card["code"]
    assert (await card_pay(client, pos, new, pin="1357")).status_code == 201
    # Reissuing again replaces the second card too.
    await client.post(f"/v1/wallets/{card['account_id']}/cards", json={"pin": "9999"}, headers=idem(tokens.operator()))
    assert_problem(await card_pay(client, pos, new, pin="1357"), 409, "card-lost")


async def test_others_cannot_see_or_stop_a_card(client, tokens, town, card):
    assert_problem(await client.get(f"/v1/cards/{card['id']}", headers=tokens.resident("resident-hanako")), 404, "card-not-found")
    assert_problem(
        await client.post(f"/v1/cards/{card['id']}/lost", headers=idem(tokens.resident("resident-hanako"))), 404, "card-not-found"
    )
    pos = await terminal_key(client, tokens, town.merchants[TEAHOUSE])
    assert_problem(
        await client.post("/v1/card-payments", json={"card_code": "0" * 16, "pin": "1234", "amount": 1}, headers=idem(pos)),
        404, "card-not-found",
    )


async def test_codes_work_again_when_redis_returns(client, tokens, town, app):
    from redis.asyncio import Redis

    pos = await terminal_key(client, tokens, town.merchants[TEAHOUSE])
    working = app.state.redis
    app.state.redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    assert_problem(await client.post("/v1/wallet/cpm-tokens", headers=idem(tokens.resident())), 503, "cpm-unavailable")
    await app.state.redis.aclose()
    app.state.redis = working  # Redis is back
    token = await cpm_token(client, tokens)
    paid = await client.post("/v1/cpm-payments", json={"token": token, "amount": 100}, headers=idem(pos))
    assert paid.status_code == 201, paid.text
