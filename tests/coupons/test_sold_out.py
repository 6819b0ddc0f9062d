"""A sold-out coupon's claims, refused before the Idempotency-Key is claimed (service.refuse_if_sold_out):
the same refusal as the claim's own, nothing changed, and never in the way of what the claim's own
path would answer otherwise: a key's first answer, a restocked coupon, a paused or expired one,
another region's resident, a caller without a token."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.coupons import public as coupons_public
from shared.auth import Role
from tests.coupons.flows import HANAKO, REGION, TARO, TEAHOUSE, claim, claimed, issue, pay, store_qr
from tests.helpers import assert_problem, idem, snapshot

SACHIKO = "resident-sachiko"


async def stock(sessionmaker, coupon_id: str) -> coupons_public.StockState:
    async with sessionmaker() as s:
        return await coupons_public.stock_state(s, region=REGION, coupon_id=coupon_id)


async def sold_out(client, tokens, town) -> dict:
    """A coupon of one, claimed by Taro and refused once since (the refusal that marks it)."""
    coupon = await issue(client, tokens, town, stock=1)
    await claimed(client, tokens, coupon["id"], TARO)
    assert_problem(await claim(client, tokens, coupon["id"], "resident-first-refused"), 409, "coupon-out-of-stock")
    return coupon


async def test_a_sold_out_claim_is_refused_as_ever_and_changes_nothing(client, tokens, town, sessionmaker):
    coupon = await issue(client, tokens, town, stock=1)
    await claimed(client, tokens, coupon["id"], TARO)
    before = await snapshot(sessionmaker)
    first = assert_problem(await claim(client, tokens, coupon["id"], HANAKO), 409, "coupon-out-of-stock")
    answers = [assert_problem(await claim(client, tokens, coupon["id"], subject), 409, "coupon-out-of-stock")
               for subject in (HANAKO, SACHIKO, "resident-new")]
    # Each refusal is the claim's own problem, word for word; no key is kept, nothing is taken.
    assert all(answer == first for answer in answers)
    assert first["detail"] == "Every one of this coupon has been claimed." and first["coupon_id"] == coupon["id"]
    assert await snapshot(sessionmaker) == before
    assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(1, 0, 1, 1)


async def test_the_key_of_a_claim_that_succeeded_still_gets_its_answer(client, tokens, town, sessionmaker):
    coupon = await issue(client, tokens, town, stock=1)
    headers = idem(tokens.resident(TARO))
    first = await client.post(f"/v1/coupons/{coupon['id']}/claims", headers=headers)
    assert first.status_code == 201, first.text
    assert_problem(await claim(client, tokens, coupon["id"], HANAKO), 409, "coupon-out-of-stock")
    before = await snapshot(sessionmaker)

    again = await client.post(f"/v1/coupons/{coupon['id']}/claims", headers=headers)
    assert (again.status_code, again.headers["idempotent-replayed"], again.json()) == (201, "true", first.json())
    # Taro with a new key is refused like anyone (out of stock comes before his own limit).
    assert_problem(await claim(client, tokens, coupon["id"], TARO), 409, "coupon-out-of-stock")
    assert await snapshot(sessionmaker) == before


async def test_a_key_used_for_another_request_is_refused_as_reused(client, tokens, town, sessionmaker):
    coupon, other = await sold_out(client, tokens, town), await issue(client, tokens, town, stock=5)
    headers = idem(tokens.resident(HANAKO))
    assert (await client.post(f"/v1/coupons/{other['id']}/claims", headers=headers)).status_code == 201
    before = await snapshot(sessionmaker)
    assert_problem(await client.post(f"/v1/coupons/{coupon['id']}/claims", headers=headers), 422,
                   "idempotency-key-reused")
    assert await snapshot(sessionmaker) == before


async def test_a_coupon_given_back_by_a_full_refund_is_claimable_at_once(client, tokens, town, sessionmaker):
    coupon = await issue(client, tokens, town, stock=1)
    taken = await claimed(client, tokens, coupon["id"], HANAKO)
    paid = await pay(client, tokens, await store_qr(client, tokens, town), 1_000, taken["id"])
    assert paid.status_code == 201, paid.text
    for subject in (TARO, TARO, SACHIKO):
        assert_problem(await claim(client, tokens, coupon["id"], subject), 409, "coupon-out-of-stock")

    refund = await client.post(f"/v1/payments/{paid.json()['payment']['id']}/refunds",
                               headers=idem(tokens.merchant_staff(town.merchants[TEAHOUSE])), json={"amount": 900})
    assert refund.status_code == 201, refund.text
    assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(1, 1, 0, 0)
    again = await claimed(client, tokens, coupon["id"], TARO)
    assert again["state"] == "claimed"
    assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(1, 0, 1, 1)
    assert_problem(await claim(client, tokens, coupon["id"], SACHIKO), 409, "coupon-out-of-stock")


@pytest.mark.parametrize("case, status, slug", [
    ("paused", 409, "coupon-not-active"),
    ("ended", 409, "coupon-not-active"),
    ("expired", 409, "coupon-expired"),
    ("another region's resident", 404, "coupon-not-found"),
    ("no token", 401, "unauthenticated"),
])
async def test_a_sold_out_coupon_still_gets_the_claims_own_answer(
    client, tokens, town, sessionmaker, clock, case, status, slug
):
    coupon = await sold_out(client, tokens, town)
    if case in ("paused", "ended"):
        admin = tokens.merchant_admin(town.merchants[TEAHOUSE])
        action = "pause" if case == "paused" else "end"
        assert (await client.post(f"/v1/coupons/{coupon['id']}/{action}", headers=idem(admin))).status_code == 200
    elif case == "expired":
        clock.set(datetime(2026, 4, 30, 15, 0, tzinfo=UTC))
    headers = tokens.resident(HANAKO)
    if case == "another region's resident":
        other = await client.post("/v1/regions", headers=idem(tokens.mint(Role.PLATFORM_OPERATOR, "platform-ops", "*")),
                                  json={"code": "kitakata", "name": "Kitakata", "name_ja": "喜多方市"})
        assert other.status_code == 201, other.text
        headers = tokens.resident(HANAKO, "kitakata")
    elif case == "no token":
        headers = {}
    before = await snapshot(sessionmaker)
    assert_problem(await client.post(f"/v1/coupons/{coupon['id']}/claims", headers=idem(headers)), status, slug)
    assert await snapshot(sessionmaker) == before
