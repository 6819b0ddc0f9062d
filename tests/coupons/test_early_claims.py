"""A claim of a coupon offered to all residents, answered before routing and the dependencies
(endpoints.claim_early, shared/early.py) by one statement that commits by itself
(service.claim_at_once, sql/claim_coupon_alone.sql): the same answer as claim_coupon's own path,
byte for byte, for a claim made, its replay (either way round) and every refusal, a refusal
changing nothing (its key's claim undone, so the key runs as the first on a retry); stock and the
per-resident limit exact under concurrency; and every request the early claim may not answer is
left to claim_coupon (None)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from starlette.requests import Request

from services.coupons import public as coupons_public
from services.coupons import service
from services.coupons.endpoints import claim_early
from shared.auth import Role
from tests.coupons.flows import HANAKO, REGION, TARO, TEAHOUSE, claim, claimed, issue
from tests.coupons.segments.test_segments import new_segment, set_profile
from tests.coupons.test_sold_out import FORGER
from tests.coupons.test_sold_out import claim_request as matched
from tests.helpers import assert_problem, idem, snapshot


def claim_request(app, coupon_id: str, headers) -> Request:
    """A claim as the early answers see it (matched to claim_coupon's route), with its empty body."""
    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}
    return Request(matched(app, coupon_id, headers).scope, receive)


async def stock(sessionmaker, coupon_id: str) -> coupons_public.StockState:
    async with sessionmaker() as s:
        return await coupons_public.stock_state(s, region=REGION, coupon_id=coupon_id)


async def seen(client, tokens, town, **changes) -> dict:
    """A coupon claimed once (by Taro, through claim_coupon), so that this process knows its audience."""
    coupon = await issue(client, tokens, town, **changes)
    assert not service.may_claim_at_once(uuid.UUID(coupon["id"]))
    await claimed(client, tokens, coupon["id"], TARO)
    assert service.may_claim_at_once(uuid.UUID(coupon["id"]))
    return coupon


@pytest.fixture
def early_made(monkeypatch) -> list[str]:
    """The outcomes of the claims made early (service.claim_at_once), as they happen."""
    made: list[str] = []
    at_once = service.claim_at_once

    async def counted(*args, **kwargs):
        try:
            answer = await at_once(*args, **kwargs)
        except Exception as refused:
            made.append(type(refused).__name__)
            raise
        made.append(type(answer).__name__)
        return answer
    monkeypatch.setattr(service, "claim_at_once", counted)
    return made


@pytest.fixture
def own_path(monkeypatch):
    """Turn the early answers off, so that the app answers a claim by claim_coupon's own path."""
    def off() -> None:
        monkeypatch.setattr(service, "may_claim_at_once", lambda coupon_id: False)
        monkeypatch.setattr(service, "may_be_sold_out", lambda coupon_id: False)
    return off


def same_answer(early, own) -> None:
    assert early is not None
    assert (early.status_code, early.headers["content-type"], early.body) == (
        own.status_code, own.headers["content-type"], own.content)
    assert early.headers.get("idempotent-replayed") == own.headers.get("idempotent-replayed")
    assert early.headers.get("cache-control") == own.headers.get("cache-control")


@pytest.mark.parametrize("kind", ["yen_off", "free_item"])
async def test_an_early_claim_and_its_replays_are_the_claims_own_answer(
    app, client, tokens, town, sessionmaker, own_path, kind
):
    changes = {"kind": "free_item", "value": None, "min_spend": 0} if kind == "free_item" else {}
    coupon = await seen(client, tokens, town, **changes)
    headers = idem(tokens.resident(HANAKO))
    made = await claim_early(claim_request(app, coupon["id"], headers))
    assert made is not None and made.status_code == 201 and "idempotent-replayed" not in made.headers
    assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(10, 8, 2, 2)
    listed = (await client.get("/v1/coupons/claims", headers=tokens.resident(HANAKO))).json()["items"]
    assert listed == [json.loads(made.body)]
    assert (listed[0]["code"] is not None) == (kind == "free_item")
    before = await snapshot(sessionmaker)

    # Replayed early, then by claim_coupon's own path: the same bytes, nothing more taken.
    again = await claim_early(claim_request(app, coupon["id"], headers))
    own_path()
    own = await client.post(f"/v1/coupons/{coupon['id']}/claims", headers=headers)
    assert (own.status_code, own.headers["idempotent-replayed"], own.content) == (201, "true", made.body)
    same_answer(again, own)
    assert await snapshot(sessionmaker) == before


async def test_a_claim_made_by_the_claims_own_path_is_replayed_early_as_the_same_text(
    app, client, tokens, town, sessionmaker, monkeypatch
):
    coupon = await seen(client, tokens, town)
    headers = idem(tokens.resident(HANAKO))
    with monkeypatch.context() as patched:
        patched.setattr(service, "may_claim_at_once", lambda coupon_id: False)
        first = await client.post(f"/v1/coupons/{coupon['id']}/claims", headers=headers)
    assert first.status_code == 201, first.text
    before = await snapshot(sessionmaker)
    again = await claim_early(claim_request(app, coupon["id"], headers))
    assert again is not None
    assert (again.status_code, again.headers["idempotent-replayed"], again.body) == (201, "true", first.content)
    assert await snapshot(sessionmaker) == before


async def case_for(case: str, client, tokens, town, clock, coupon: dict) -> tuple[str, dict[str, str]]:
    """The coupon's state, or the caller, that makes `case`'s refusal; the claim's headers."""
    admin = tokens.merchant_admin(town.merchants[TEAHOUSE])
    headers = idem(tokens.resident(HANAKO))
    if case == "not yet valid":
        clock.set(datetime(2026, 3, 31, 14, 59, tzinfo=UTC))  # 23:59 on 31 March in Tokyo
    elif case == "expired":
        clock.set(datetime(2026, 4, 30, 15, 0, tzinfo=UTC))
    headers = idem(tokens.resident(HANAKO))  # a token of the clock's time
    if case in ("paused", "ended"):
        action = "pause" if case == "paused" else "end"
        assert (await client.post(f"/v1/coupons/{coupon['id']}/{action}", headers=idem(admin))).status_code == 200
    elif case == "out of stock":
        for i in range(9):
            await claimed(client, tokens, coupon["id"], f"resident-{i}")
    elif case == "limit reached":
        await claimed(client, tokens, coupon["id"], HANAKO)
    elif case == "another region's resident":
        other = await client.post("/v1/regions", headers=idem(tokens.mint(Role.PLATFORM_OPERATOR, "platform-ops", "*")),
                                  json={"code": "kitakata", "name": "Kitakata", "name_ja": "喜多方市"})
        assert other.status_code == 201, other.text
        headers = idem(tokens.resident(HANAKO, "kitakata"))
    elif case == "a key used for another request":
        other = await seen(client, tokens, town)
        assert (await client.post(f"/v1/coupons/{other['id']}/claims", headers=headers)).status_code == 201
    return coupon["id"], headers


@pytest.mark.parametrize("case, status, slug", [
    ("paused", 409, "coupon-not-active"),
    ("ended", 409, "coupon-not-active"),
    ("not yet valid", 409, "coupon-not-yet-valid"),
    ("expired", 409, "coupon-expired"),
    ("out of stock", 409, "coupon-out-of-stock"),
    ("limit reached", 409, "coupon-limit-reached"),
    ("another region's resident", 404, "coupon-not-found"),
    ("a key used for another request", 422, "idempotency-key-reused"),
])
async def test_an_early_refusal_is_the_claims_own_and_changes_nothing(
    app, client, tokens, town, sessionmaker, clock, own_path, case, status, slug
):
    coupon_id, headers = await case_for(case, client, tokens, town, clock, await seen(client, tokens, town))
    before = await snapshot(sessionmaker)
    early = await claim_early(claim_request(app, coupon_id, headers))
    assert await snapshot(sessionmaker) == before
    own_path()
    own = await client.post(f"/v1/coupons/{coupon_id}/claims", headers=headers)
    assert_problem(own, status, slug)
    same_answer(early, own)
    assert await snapshot(sessionmaker) == before


async def test_a_refused_early_claims_key_is_not_kept_and_runs_as_the_first_later(
    app, client, tokens, town, sessionmaker, clock
):
    coupon = await seen(client, tokens, town)
    key = f"test-{uuid.uuid4()}"
    clock.set(datetime(2026, 4, 30, 15, 0, tzinfo=UTC))  # over
    before = await snapshot(sessionmaker)
    assert_problem(await client.post(f"/v1/coupons/{coupon['id']}/claims", headers=idem(tokens.resident(HANAKO), key)),
                   409, "coupon-expired")
    assert await snapshot(sessionmaker) == before
    clock.set(datetime(2026, 4, 2, 0, 0, tzinfo=UTC))  # back within the window: the same key claims
    made = await client.post(f"/v1/coupons/{coupon['id']}/claims", headers=idem(tokens.resident(HANAKO), key))
    assert made.status_code == 201 and "idempotent-replayed" not in made.headers, made.text
    assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(10, 8, 2, 2)


async def test_early_claims_take_stock_and_the_limit_exactly_under_concurrency(client, tokens, town, sessionmaker,
                                                                             early_made):
    coupon = await seen(client, tokens, town, stock=6)
    answers = await asyncio.gather(*(claim(client, tokens, coupon["id"], f"resident-{i:03}") for i in range(40)),
                                   *(claim(client, tokens, coupon["id"], HANAKO) for _ in range(10)))
    made = [a for a in answers if a.status_code == 201]
    assert len(made) == 5
    assert {a.status_code for a in answers} == {201, 409}
    assert sum(a.json()["type"].endswith("coupon-out-of-stock") for a in answers if a.status_code == 409) >= 35
    hanako = (await client.get("/v1/coupons/claims", headers=tokens.resident(HANAKO))).json()["items"]
    assert len(hanako) <= 1
    assert early_made.count("StoredAnswer") == 5  # every claim made, made early
    assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(6, 0, 6, 6)


async def test_twins_of_one_key_claim_once_and_answer_the_same(client, tokens, town, sessionmaker, early_made):
    coupon = await seen(client, tokens, town)
    headers = idem(tokens.resident(HANAKO))
    answers = await asyncio.gather(*(client.post(f"/v1/coupons/{coupon['id']}/claims", headers=headers)
                                     for _ in range(8)))
    assert {(a.status_code, a.content) for a in answers} == {(201, answers[0].content)}
    assert sum("idempotent-replayed" in a.headers for a in answers) == 7
    assert sorted(early_made) == ["FirstAnswer"] * 7 + ["StoredAnswer"]
    assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(10, 8, 2, 2)


async def test_twins_of_one_key_refused_are_refused_alike_and_keep_nothing(
    client, tokens, town, sessionmaker, clock, early_made
):
    coupon = await seen(client, tokens, town)
    clock.set(datetime(2026, 4, 30, 15, 0, tzinfo=UTC))
    headers = idem(tokens.resident(HANAKO))
    before = await snapshot(sessionmaker)
    answers = await asyncio.gather(*(client.post(f"/v1/coupons/{coupon['id']}/claims", headers=headers)
                                     for _ in range(8)))
    assert {(a.status_code, a.content) for a in answers} == {(409, answers[0].content)}
    assert_problem(answers[0], 409, "coupon-expired")
    assert early_made == ["CouponExpired"] * 8
    assert await snapshot(sessionmaker) == before


@pytest.mark.parametrize("case", [
    "a coupon not claimed here yet",
    "a segment's coupon",
    "a token of another key",
    "a token expired since it was last accepted",
    "a merchant's token",
    "an API key",
    "no token",
    "no Idempotency-Key",
    "two Idempotency-Keys",
    "a malformed Idempotency-Key",
])
async def test_the_early_claim_leaves_every_other_request_to_the_claim(
    app, client, tokens, town, sessionmaker, clock, case
):
    if case == "a coupon not claimed here yet":
        coupon = await issue(client, tokens, town)
    elif case == "a segment's coupon":
        await set_profile(client, tokens, TARO, segments_consent=True, personalised_consent=False, age_band="30s")
        segment = await new_segment(client, tokens, [{"kind": "age_band", "any_of": ["30s"]}])
        coupon = await issue(client, tokens, town, None, audience="segment", segment_id=segment["id"])
        await claimed(client, tokens, coupon["id"], TARO)
        assert not service.may_claim_at_once(uuid.UUID(coupon["id"]))
    else:
        coupon = await seen(client, tokens, town)
    headers = idem(tokens.resident(HANAKO))
    if case == "a token of another key":
        claims = jwt.decode(headers["Authorization"].removeprefix("Bearer "), options={"verify_signature": False})
        headers["Authorization"] = "Bearer " + jwt.encode(claims, FORGER, algorithm="RS256")
    elif case == "a token expired since it was last accepted":
        headers = idem(tokens.mint(Role.RESIDENT, HANAKO, ttl=timedelta(minutes=4)))
        assert (await client.get("/v1/coupons/claims", headers=headers)).status_code == 200  # remembered
        clock.advance(timedelta(minutes=4))
    elif case == "a merchant's token":
        headers = idem(tokens.merchant_staff(town.merchants[TEAHOUSE]))
    elif case == "an API key":
        headers["X-API-Key"] = "ckpos_not-a-key"
    elif case == "no token":
        del headers["Authorization"]
    elif case == "no Idempotency-Key":
        del headers["Idempotency-Key"]
    elif case == "a malformed Idempotency-Key":
        headers["Idempotency-Key"] = "two words"
    sent = [*headers.items(), *([("Idempotency-Key", "another")] if case == "two Idempotency-Keys" else [])]
    before = await snapshot(sessionmaker)
    assert await claim_early(claim_request(app, coupon["id"], sent)) is None
    assert await snapshot(sessionmaker) == before
