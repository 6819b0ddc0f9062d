"""Merchants' settlement cycles (/v1/settlement/merchants/{id}/cycle) and the periods endpoint:
monthly by default, set by the operator, never edited (a change is a new row from its time on),
and the cycle in force at a period's end is the one a run settles the merchant on."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import text

from services.settlement import service
from services.settlement.periods import Cycle
from tests.helpers import assert_problem, idem, snapshot

TEAHOUSE, STORE = "Tsurugajo Teahouse", "Nanokamachi General Store"


def cycle_path(merchant_id: str) -> str:
    return f"/v1/settlement/merchants/{merchant_id}/cycle"


async def test_a_merchant_is_settled_monthly_until_the_operator_says_otherwise(client, tokens, town, clock):
    merchant_id = town.merchants[TEAHOUSE]
    got = await client.get(cycle_path(merchant_id), headers=tokens.merchant_staff(merchant_id))
    assert got.status_code == 200
    assert got.json() | {"current_period": None} == {
        "merchant_id": merchant_id, "cycle": "monthly", "effective_at": None, "set_by": None, "current_period": None}
    assert got.json()["current_period"]["label"] == "2026-04"  # the tests' clock: 1 April 2026, 09:30 JST
    assert got.json()["current_period"]["pay_date"] == "2026-05-15"

    response = await client.put(cycle_path(merchant_id), json={"cycle": "twice_monthly"}, headers=idem(tokens.operator()))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["cycle"], body["set_by"]) == ("twice_monthly", "operator-aizu")
    assert body["effective_at"] == clock.now().isoformat().replace("+00:00", "Z")
    assert body["current_period"] | {"start": None, "end": None, "readable_at": None} == {
        "cycle": "twice_monthly", "label": "2026-04-H1", "first_day": "2026-04-01", "last_day": "2026-04-15",
        "pay_date": "2026-04-30", "start": None, "end": None, "readable_at": None}
    assert (await client.get(cycle_path(merchant_id), headers=tokens.auditor())).json() == body


async def test_the_cycle_in_force_at_a_periods_end_is_the_one_a_run_uses(client, tokens, town, clock, sessionmaker):
    teahouse, store = uuid.UUID(town.merchants[TEAHOUSE]), uuid.UUID(town.merchants[STORE])
    start = clock.now()
    await client.put(cycle_path(str(teahouse)), json={"cycle": "twice_monthly"}, headers=idem(tokens.operator()))
    clock.advance(timedelta(days=20))
    await client.put(cycle_path(str(teahouse)), json={"cycle": "on_demand"}, headers=idem(tokens.operator()))
    changed = clock.now()
    async with sessionmaker() as session:
        async def at(moment):
            return await service.cycles_at(session, region="aizu", merchant_ids=[teahouse, store], at=moment)

        assert await at(start - timedelta(seconds=1)) == {teahouse: Cycle.MONTHLY, store: Cycle.MONTHLY}
        assert await at(start) == {teahouse: Cycle.TWICE_MONTHLY, store: Cycle.MONTHLY}
        assert await at(changed - timedelta(microseconds=1)) == {teahouse: Cycle.TWICE_MONTHLY, store: Cycle.MONTHLY}
        assert await at(changed) == {teahouse: Cycle.ON_DEMAND, store: Cycle.MONTHLY}
        history = await service.cycle_history(session, region="aizu", merchant_id=teahouse)
    assert [(h.cycle, h.effective_at) for h in history] == [(Cycle.ON_DEMAND, changed), (Cycle.TWICE_MONTHLY, start)]


async def test_setting_the_cycle_in_force_again_adds_nothing(client, tokens, town, sessionmaker):
    merchant_id = town.merchants[TEAHOUSE]
    first = await client.put(cycle_path(merchant_id), json={"cycle": "on_demand"}, headers=idem(tokens.operator()))
    before = await snapshot(sessionmaker)
    again = await client.put(cycle_path(merchant_id), json={"cycle": "on_demand"}, headers=idem(tokens.operator()))
    assert again.status_code == 200 and again.json() == first.json()
    after = await snapshot(sessionmaker)
    assert after["rows"] == before["rows"] and after["accounts"] == before["accounts"]
    async with sessionmaker() as session:
        assert (await session.execute(text("SELECT count(*) FROM settlement.merchant_cycles"))).scalar_one() == 1
        assert (await session.execute(text(
            "SELECT count(*) FROM platform.audit_events WHERE action = 'settlement_cycle.set'"))).scalar_one() == 1


async def test_only_the_operator_sets_a_cycle_and_a_shop_reads_only_its_own(client, tokens, town, sessionmaker):
    teahouse, store = town.merchants[TEAHOUSE], town.merchants[STORE]
    before = await snapshot(sessionmaker)
    for caller in (tokens.merchant_admin(teahouse), tokens.auditor(), tokens.resident()):
        assert_problem(await client.put(cycle_path(teahouse), json={"cycle": "on_demand"}, headers=idem(caller)), 403,
                       "forbidden")
    assert_problem(await client.put(cycle_path(str(uuid.uuid4())), json={"cycle": "on_demand"},
                                    headers=idem(tokens.operator())), 404, "merchant-not-found")
    assert_problem(await client.put(cycle_path(teahouse), json={"cycle": "weekly"}, headers=idem(tokens.operator())),
                   422, "validation-error")
    assert await snapshot(sessionmaker) == before
    assert_problem(await client.get(cycle_path(store), headers=tokens.merchant_staff(teahouse)), 404,
                   "merchant-not-found")
    assert_problem(await client.get(cycle_path(teahouse), headers=tokens.resident()), 403, "forbidden")


async def test_the_periods_endpoint_gives_a_days_period_and_pay_date(client, tokens, town):
    got = await client.get("/v1/settlement/periods?cycle=twice_monthly&date=2026-12-10", headers=tokens.operator())
    assert got.status_code == 200
    assert got.json() == {
        "cycle": "twice_monthly", "label": "2026-12-H1", "first_day": "2026-12-01", "last_day": "2026-12-15",
        "start": "2026-11-30T15:00:00Z", "end": "2026-12-15T15:00:00Z", "pay_date": "2027-01-04",
        "readable_at": "2026-12-15T15:10:00Z",
    }
    today = await client.get("/v1/settlement/periods?cycle=on_demand", headers=tokens.merchant_staff(town.merchants[STORE]))
    assert (today.json()["label"], today.json()["pay_date"]) == ("2026-04-01", "2026-04-02")
    assert_problem(await client.get("/v1/settlement/periods?cycle=yearly", headers=tokens.operator()), 422,
                   "validation-error")
    assert_problem(await client.get("/v1/settlement/periods?cycle=monthly&date=2026-02-30", headers=tokens.operator()),
                   422, "validation-error")
    for day in ("0001-01-01", "1999-12-31", "2100-01-01", "9999-12-31"):
        assert_problem(await client.get(f"/v1/settlement/periods?cycle=monthly&date={day}", headers=tokens.operator()),
                       422, "day-out-of-range")
