"""Claiming: what a resident may claim, their claims with validity and state, and stock and
per-resident limits that hold exactly under any concurrency."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from services.coupons import public as coupons_public
from shared.auth import Role
from tests.coupons.flows import HANAKO, REGION, TARO, TEAHOUSE, claim, claimed, issue
from tests.helpers import assert_problem, idem, snapshot


async def stock(sessionmaker, coupon_id: str) -> coupons_public.StockState:
    async with sessionmaker() as s:
        return await coupons_public.stock_state(s, region=REGION, coupon_id=coupon_id)


async def test_a_resident_claims_a_coupon_and_sees_it_with_its_validity(client, tokens, town, sessionmaker):
    coupon = await issue(client, tokens, town)
    available = (await client.get("/v1/coupons/available", headers=tokens.resident())).json()["items"]
    assert [c["id"] for c in available] == [coupon["id"]]

    made = await claimed(client, tokens, coupon["id"])
    assert (made["coupon_id"], made["state"], made["code"], made["kind"]) == (coupon["id"], "claimed", None, "yen_off")
    assert (made["valid_from"], made["valid_until"]) == ("2026-04-01T00:00:00+09:00", "2026-05-01T00:00:00+09:00")
    assert made["claimed_at"] == "2026-04-01T09:30:00+09:00"
    mine = (await client.get("/v1/coupons/claims", headers=tokens.resident())).json()["items"]
    assert mine == [made]
    # The limit (one each) is reached: no longer offered to Hanako, still to Taro.
    assert (await client.get("/v1/coupons/available", headers=tokens.resident())).json()["items"] == []
    assert len((await client.get("/v1/coupons/available", headers=tokens.resident(TARO))).json()["items"]) == 1
    assert (await client.get("/v1/coupons/claims", headers=tokens.resident(TARO))).json()["items"] == []
    assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(10, 9, 1, 1)


async def test_a_free_items_claim_carries_the_code_the_shop_scans(client, tokens, town):
    coupon = await issue(client, tokens, town, kind="free_item", value=None, min_spend=0)
    made = await claimed(client, tokens, coupon["id"])
    assert len(made["code"]) == 16 and made["code"].isupper()


async def test_a_claim_replayed_with_its_key_is_the_first_answer_and_takes_nothing_more(client, tokens, town, sessionmaker):
    coupon = await issue(client, tokens, town)
    headers = idem(tokens.resident())
    first = await client.post(f"/v1/coupons/{coupon['id']}/claims", headers=headers)
    again = await client.post(f"/v1/coupons/{coupon['id']}/claims", headers=headers)
    assert (first.status_code, again.status_code, again.headers["idempotent-replayed"]) == (201, 201, "true")
    assert again.json() == first.json()
    assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(10, 9, 1, 1)


@pytest.mark.parametrize("kind", ["yen_off", "free_item"])
async def test_a_claims_answer_is_stored_with_it_and_replayed_as_the_same_text(client, tokens, town, sessionmaker,
                                                                            clock, kind):
    # The database function stores the answer (sql/claim_coupon_keyed.sql); the app shows the first
    # answer and every replay from it, so they are byte for byte the same, and as the claims list
    # shows the claim. Also after the clock moved on and the coupon's name changed.
    changes = {"kind": "free_item", "value": None, "min_spend": 0} if kind == "free_item" else {}
    coupon = await issue(client, tokens, town, **changes)
    headers = idem(tokens.resident())
    first = await client.post(f"/v1/coupons/{coupon['id']}/claims", headers=headers)
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    assert (await client.get("/v1/coupons/claims", headers=tokens.resident())).json()["items"] == [first.json()]
    assert (first.json()["code"] is not None) == (kind == "free_item")
    clock.set(datetime(2026, 4, 2, 3, 0, tzinfo=UTC))
    renamed = await client.patch(f"/v1/coupons/{coupon['id']}", json={"name": "Renamed"},
                                 headers=idem(tokens.merchant_admin(town.merchants[TEAHOUSE])))
    assert renamed.status_code == 200, renamed.text
    again = await client.post(f"/v1/coupons/{coupon['id']}/claims",  # a token of now, the same key
                              headers=idem(tokens.resident(), headers["Idempotency-Key"]))
    assert (again.status_code, again.headers["idempotent-replayed"], again.content) == (201, "true", first.content)


async def test_a_claims_answer_stored_before_the_function_stored_it_is_replayed_as_it_was(client, tokens, town,
                                                                                       sessionmaker):
    # Before migration 0027 the app stored the answer it sent (ClaimOut's JSON, times in Tokyo).
    coupon = await issue(client, tokens, town)
    headers = idem(tokens.resident())
    first = await client.post(f"/v1/coupons/{coupon['id']}/claims", headers=headers)
    async with sessionmaker() as s, s.begin():
        await s.execute(text("UPDATE platform.idempotency_keys SET response = CAST(:sent AS json) WHERE key = :key"),
                        {"sent": first.text, "key": headers["Idempotency-Key"]})
    again = await client.post(f"/v1/coupons/{coupon['id']}/claims", headers=headers)
    assert (again.status_code, again.headers["idempotent-replayed"], again.content) == (201, "true", first.content)


async def test_a_claim_after_the_window_shows_expired(client, tokens, town, clock):
    coupon = await issue(client, tokens, town)
    await claimed(client, tokens, coupon["id"])
    clock.set(datetime(2026, 4, 30, 15, 0, tzinfo=UTC))  # midnight 1 May in Tokyo: the window is over
    assert [c["state"] for c in (await client.get("/v1/coupons/claims", headers=tokens.resident())).json()["items"]] == [
        "expired"]


@pytest.mark.parametrize("case, status, slug", [
    ("unknown", 404, "coupon-not-found"),
    ("draft", 409, "coupon-not-active"),
    ("paused", 409, "coupon-not-active"),
    ("ended", 409, "coupon-not-active"),
    ("not yet valid", 409, "coupon-not-yet-valid"),
    ("expired", 409, "coupon-expired"),
    ("out of stock", 409, "coupon-out-of-stock"),
    ("limit reached", 409, "coupon-limit-reached"),
    ("another region's", 404, "coupon-not-found"),
])
async def test_a_claim_refused_changes_nothing(client, tokens, town, sessionmaker, clock, case, status, slug):
    admin = tokens.merchant_admin(town.merchants[TEAHOUSE])
    coupon = await issue(client, tokens, town, activate=case != "draft", stock=1)
    coupon_id = coupon["id"]
    if case == "unknown":
        coupon_id = "01a23000-0000-7000-8000-000000000000"
    elif case in ("paused", "ended"):
        action = "pause" if case == "paused" else "end"
        assert (await client.post(f"/v1/coupons/{coupon_id}/{action}", headers=idem(admin))).status_code == 200
    elif case == "not yet valid":
        clock.set(datetime(2026, 3, 31, 14, 59, tzinfo=UTC))  # 23:59 on 31 March in Tokyo
    elif case == "expired":
        clock.set(datetime(2026, 4, 30, 15, 0, tzinfo=UTC))
    elif case == "out of stock":
        await claimed(client, tokens, coupon_id, TARO)
    elif case == "limit reached":
        coupon = await issue(client, tokens, town, stock=5)
        coupon_id = coupon["id"]
        await claimed(client, tokens, coupon_id)
    elif case == "another region's":
        other = await client.post("/v1/regions", headers=idem(tokens.mint(Role.PLATFORM_OPERATOR, "platform-ops", "*")),
                                  json={"code": "kitakata", "name": "Kitakata", "name_ja": "喜多方市"})
        assert other.status_code == 201, other.text
    before = await snapshot(sessionmaker)
    headers = tokens.resident(HANAKO, "kitakata" if case == "another region's" else "aizu")
    response = await client.post(f"/v1/coupons/{coupon_id}/claims", headers=idem(headers))
    assert_problem(response, status, slug)
    assert await snapshot(sessionmaker) == before


async def test_200_concurrent_claims_of_a_50_stock_coupon_take_exactly_50(client, tokens, town, sessionmaker):
    coupon = await issue(client, tokens, town, stock=50)
    answers = await asyncio.gather(*(claim(client, tokens, coupon["id"], f"resident-{i:03}") for i in range(200)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 50 + [409] * 150
    for answer in answers:
        if answer.status_code == 409:
            assert_problem(answer, 409, "coupon-out-of-stock")
    assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(50, 0, 50, 50)
    assert len({a.json()["id"] for a in answers if a.status_code == 201}) == 50


async def test_a_residents_concurrent_claims_never_pass_the_limit(client, tokens, town, sessionmaker):
    coupon = await issue(client, tokens, town, stock=50, per_resident_limit=3)
    answers = await asyncio.gather(*(claim(client, tokens, coupon["id"]) for _ in range(20)))
    assert sorted(a.status_code for a in answers) == [201] * 3 + [409] * 17
    for answer in answers:
        if answer.status_code == 409:
            assert_problem(answer, 409, "coupon-limit-reached")
    assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(50, 47, 3, 3)
    assert len((await client.get("/v1/coupons/claims", headers=tokens.resident())).json()["items"]) == 3


async def test_only_residents_claim(client, tokens, town, sessionmaker):
    coupon = await issue(client, tokens, town)
    before = await snapshot(sessionmaker)
    for headers in (tokens.operator(), tokens.merchant_admin(town.merchants[TEAHOUSE])):
        assert_problem(await client.post(f"/v1/coupons/{coupon['id']}/claims", headers=idem(headers)), 403, "forbidden")
    assert await snapshot(sessionmaker) == before


async def test_twin_claims_with_one_key_at_once_claim_once(client, tokens, town, sessionmaker):
    """The key is claimed in the claim's own statement (coupons.claim_coupon_keyed): the twin waits
    on it and answers with the first's claim."""
    coupon = await issue(client, tokens, town)
    headers = idem(tokens.resident())
    answers = await asyncio.gather(*(client.post(f"/v1/coupons/{coupon['id']}/claims", headers=headers)
                                     for _ in range(2)))
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].json() == answers[1].json()
    assert sorted(a.headers.get("idempotent-replayed", "") for a in answers) == ["", "true"]
    assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(10, 9, 1, 1)


async def test_a_refused_claim_keeps_no_key(client, tokens, town, sessionmaker):
    coupon = await issue(client, tokens, town, stock=5, per_resident_limit=1)
    await claimed(client, tokens, coupon["id"])
    headers = idem(tokens.resident())
    assert_problem(await client.post(f"/v1/coupons/{coupon['id']}/claims", headers=headers), 409,
                   "coupon-limit-reached")
    # The same key on another coupon is a new request, not a reuse: the refusal kept nothing.
    other = await issue(client, tokens, town)
    assert (await client.post(f"/v1/coupons/{other['id']}/claims", headers=headers)).status_code == 201
