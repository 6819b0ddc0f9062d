"""A sold-out coupon's claims, refused before the Idempotency-Key is claimed (service.refuse_if_sold_out):
the same refusal as the claim's own, nothing changed, and never in the way of what the claim's own
path would answer otherwise: a key's first answer, a restocked coupon, a paused or expired one,
another region's resident, a caller without a token. The refusal is given before routing and the
dependencies (endpoints.refuse_sold_out_claim, shared/early.py): called directly here, it answers
exactly the rush it should, and lets every other request through to claim_coupon."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request

from services.coupons import public as coupons_public
from services.coupons.endpoints import refuse_sold_out_claim
from shared.auth import Role
from tests.coupons.flows import HANAKO, REGION, TARO, TEAHOUSE, claim, claimed, issue, pay, store_qr
from tests.helpers import assert_problem, idem, snapshot

SACHIKO = "resident-sachiko"
FORGER = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # not the dev issuer's key


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


def claim_request(app, coupon_id: str, headers: dict[str, str] | list[tuple[str, str]]) -> Request:
    """A claim as the early answers see it: matched to claim_coupon's route, nothing else done."""
    path = f"/v1/coupons/{coupon_id}/claims"
    pairs = headers.items() if isinstance(headers, dict) else headers
    return Request({
        "type": "http", "method": "POST", "scheme": "http", "server": ("chiikipay.test", 80), "path": path,
        "raw_path": path.encode(), "root_path": "", "query_string": b"", "app": app,
        "headers": [(k.lower().encode(), v.encode()) for k, v in pairs],
        "path_params": {"coupon_id": uuid.UUID(coupon_id)},
    })


async def test_the_early_refusal_is_the_claims_own_answer_byte_for_byte(app, client, tokens, town, sessionmaker):
    coupon = await issue(client, tokens, town, stock=1)
    await claimed(client, tokens, coupon["id"], TARO)
    own = await claim(client, tokens, coupon["id"], HANAKO)  # claim_coupon's own refusal, which marks it
    assert_problem(own, 409, "coupon-out-of-stock")
    before = await snapshot(sessionmaker)

    early = await refuse_sold_out_claim(claim_request(app, coupon["id"], idem(tokens.resident(SACHIKO))))
    assert early is not None
    assert (early.status_code, early.headers["content-type"], early.headers["cache-control"]) == (
        409, own.headers["content-type"], own.headers["cache-control"])
    assert early.body == own.content and json.loads(early.body)["coupon_id"] == coupon["id"]
    # Through the app (the request middleware, then the early answer): the same again.
    again = await claim(client, tokens, coupon["id"], "resident-new")
    assert (again.status_code, again.headers["content-type"], again.content) == (409, own.headers["content-type"],
                                                                               own.content)
    assert await snapshot(sessionmaker) == before
    assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(1, 0, 1, 1)


@pytest.mark.parametrize("case, status, slug", [
    ("a token of another key", 401, "invalid-token"),
    ("a token expired since it was last accepted", 401, "invalid-token"),
    ("a merchant's token", 403, "forbidden"),
    ("an API key", 401, "invalid-token"),
    ("no Idempotency-Key", 400, "idempotency-key-missing"),
    ("two Idempotency-Keys", 400, "idempotency-key-repeated"),
    ("a malformed Idempotency-Key", 422, "validation-error"),
])
async def test_the_early_refusal_leaves_every_other_caller_to_the_claim(
    app, client, tokens, town, sessionmaker, clock, case, status, slug
):
    coupon = await issue(client, tokens, town, stock=1)  # sold out, and refused once since (marked)
    await claimed(client, tokens, coupon["id"], TARO)
    assert_problem(await claim(client, tokens, coupon["id"], "resident-first-refused"), 409, "coupon-out-of-stock")
    headers = idem(tokens.resident(HANAKO))
    if case == "a token of another key":
        claims = jwt.decode(headers["Authorization"].removeprefix("Bearer "), options={"verify_signature": False})
        headers["Authorization"] = "Bearer " + jwt.encode(claims, FORGER, algorithm="RS256")
    elif case == "a token expired since it was last accepted":
        headers = idem(tokens.mint(Role.RESIDENT, HANAKO, ttl=timedelta(minutes=4)))
        assert_problem(await client.post(f"/v1/coupons/{coupon['id']}/claims", headers=headers), 409,
                       "coupon-out-of-stock")  # accepted, and remembered by the verifier
        clock.advance(timedelta(minutes=4))  # within the verifier's memory of it
        headers = idem(headers)
    elif case == "a merchant's token":
        headers = idem(tokens.merchant_staff(town.merchants[TEAHOUSE]))
    elif case == "an API key":
        headers["X-API-Key"] = "ckpos_not-a-key"
    elif case == "no Idempotency-Key":
        del headers["Idempotency-Key"]
    elif case == "a malformed Idempotency-Key":
        headers["Idempotency-Key"] = "two words"
    sent = [*headers.items(), *([("Idempotency-Key", "another")] if case == "two Idempotency-Keys" else [])]
    assert await refuse_sold_out_claim(claim_request(app, coupon["id"], sent)) is None
    before = await snapshot(sessionmaker)
    assert_problem(await client.post(f"/v1/coupons/{coupon['id']}/claims", headers=sent), status, slug)
    assert await snapshot(sessionmaker) == before


async def test_a_sold_out_coupon_paused_restocked_and_resumed_is_claimable_again(
    app, client, tokens, town, sessionmaker
):
    coupon = await issue(client, tokens, town, stock=1)
    taken = await claimed(client, tokens, coupon["id"], HANAKO)
    paid = await pay(client, tokens, await store_qr(client, tokens, town), 1_000, taken["id"])
    assert paid.status_code == 201, paid.text
    assert_problem(await claim(client, tokens, coupon["id"], TARO), 409, "coupon-out-of-stock")
    admin = tokens.merchant_admin(town.merchants[TEAHOUSE])
    assert (await client.post(f"/v1/coupons/{coupon['id']}/pause", headers=idem(admin))).status_code == 200
    assert_problem(await claim(client, tokens, coupon["id"], TARO), 409, "coupon-not-active")

    refund = await client.post(f"/v1/payments/{paid.json()['payment']['id']}/refunds",
                               headers=idem(tokens.merchant_staff(town.merchants[TEAHOUSE])), json={"amount": 900})
    assert refund.status_code == 201, refund.text
    assert_problem(await claim(client, tokens, coupon["id"], TARO), 409, "coupon-not-active")
    assert (await client.post(f"/v1/coupons/{coupon['id']}/activate", headers=idem(admin))).status_code == 200
    assert await refuse_sold_out_claim(claim_request(app, coupon["id"], idem(tokens.resident(TARO)))) is None
    again = await claimed(client, tokens, coupon["id"], TARO)
    assert again["state"] == "claimed"
    assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(1, 0, 1, 1)
    assert_problem(await claim(client, tokens, coupon["id"], SACHIKO), 409, "coupon-out-of-stock")
