"""The base-date report (issue 14, item 5): the unused paid-in balance at the end of 31 March and
30 September, and the security deposit it requires."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from services.settlement.basedate.service import deposit_for
from services.wallet import public
from shared.audit import Actor
from shared.clock import TOKYO
from tests.helpers import assert_problem, snapshot

REGION = "aizu"
CITY = Actor(subject="operator-aizu", role="operator", request_id="basedate-test")
OPENING = 30_000 + 12_000 + 5_000  # the town's three residents' first top-ups (app/demo.py)


def jst(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=TOKYO)


async def pay(sessionmaker, clock, town, at: datetime, price: int) -> public.PaidPayment:
    clock.set(at)
    async with sessionmaker() as s, s.begin():
        shop = await public.merchant(s, region=REGION, merchant_id=uuid.UUID(town.merchants["Tsurugajo Teahouse"]))
        return await public.pay(s, clock, region=REGION, actor=CITY, payer="resident-hanako",
                                store_id=shop.store_ids[0], price=price)


@pytest.mark.parametrize(("unused", "deposit"), [
    (0, 0), (10_000_000, 0), (10_000_001, 5_000_001), (20_000_000, 10_000_000), (33_333_333, 16_666_667),
])
def test_the_deposit_is_half_of_the_unused_balance_above_ten_million(unused, deposit):
    assert deposit_for(unused) == deposit


async def test_the_unused_balance_is_as_it_stood_at_the_end_of_the_base_date(client, tokens, town, sessionmaker, clock):
    await pay(sessionmaker, clock, town, jst(2026, 9, 30, 23, 59, 59), 5_000)
    await pay(sessionmaker, clock, town, jst(2026, 10, 1, 0, 0, 0), 7_000)  # after the base date
    response = await client.get("/v1/settlement/outstanding", params={"base_date": "2026-09-30"},
                                headers=tokens.auditor())
    assert response.status_code == 200, response.text
    found = response.json()
    assert found["unused_balance"] == OPENING - 5_000
    assert found["wallets"] == 3 and found["deposit_required"] == 0 and found["threshold"] == 10_000_000
    assert {m["kind"]: (m["journals"], m["amount"]) for m in found["movements"]} == {
        "topup": (3, OPENING), "payment": (1, -5_000)}
    assert datetime.fromisoformat(found["measured_at"]) == jst(2026, 10, 1)


async def test_free_points_are_not_paid_in_value(client, tokens, town, sessionmaker, clock):
    made = await client.post("/v1/campaigns", json={"kind": "grant", "name": "Health", "name_ja": "健康"},
                             headers={**tokens.operator(), "Idempotency-Key": str(uuid.uuid4())})
    campaign = made.json()
    await client.post(f"/v1/campaigns/{campaign['id']}/funding", json={"amount": 1_000},
                      headers={**tokens.operator(), "Idempotency-Key": str(uuid.uuid4())})
    granted = await client.post(
        f"/v1/campaigns/{campaign['id']}/grants", headers={**tokens.operator(), "Idempotency-Key": str(uuid.uuid4())},
        json={"wallet_id": town.residents["resident-taro"][0], "amount": 800, "category": "health_event",
              "event_id": "walk", "activity_date": "2026-04-01", "row_key": "row-1"},
    )
    assert granted.status_code == 201, granted.text
    clock.set(jst(2026, 10, 1, 9))
    found = (await client.get("/v1/settlement/outstanding", params={"base_date": "2026-09-30"},
                              headers=tokens.operator())).json()
    assert found["unused_balance"] == OPENING


async def test_refusals_change_nothing(client, tokens, town, sessionmaker, clock):
    clock.set(jst(2026, 9, 30, 18))
    before = await snapshot(sessionmaker)
    not_a_base_date = await client.get("/v1/settlement/outstanding", params={"base_date": "2026-06-30"},
                                       headers=tokens.operator())
    assert_problem(not_a_base_date, 422, "invalid-base-date")
    not_over = await client.get("/v1/settlement/outstanding", params={"base_date": "2026-09-30"},
                                headers=tokens.operator())
    assert_problem(not_over, 422, "base-date-not-passed")
    resident = await client.get("/v1/settlement/outstanding", params={"base_date": "2026-03-31"},
                                headers=tokens.resident())
    assert resident.status_code == 403
    assert await snapshot(sessionmaker) == before
