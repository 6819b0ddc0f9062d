"""Counting for the KPIs (issue 13, item 7): per day, coupon, bundle and fare product, including
the rides a bundle created, and the whole flow the issue names: the operator bundles two shop
coupons with a day pass, a resident in the segment claims it, pays at a shop with a coupon,
boards the bus, and the counters show one redemption, one activation and one created ride."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.clock import TOKYO
from tests.coupons.bundles.test_bundles import IN_THIRTIES, THIRTIES, claim, sent, two_shop_coupons
from tests.coupons.flows import HANAKO, TARO, TEAHOUSE, pay, store_qr
from tests.coupons.segments.test_segments import new_segment, set_profile
from tests.coupons.transit.conftest import buy, codes, scan
from tests.helpers import assert_problem, ledger_violations, snapshot


def jst(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=TOKYO)


async def counts(client, tokens, since: str, until: str) -> dict[str, Any]:
    answer = await client.get("/v1/coupons/counts", params={"since": since, "until": until}, headers=tokens.auditor())
    assert answer.status_code == 200, answer.text
    return answer.json()


async def board(client, tokens, bus, ticket_id: str, clock, subject: str = HANAKO) -> dict[str, Any]:
    code = (await codes(client, tokens, {"id": ticket_id}, subject))[0]["code"]
    answer = await scan(client, bus.validator, code, clock.now())
    assert answer.status_code == 201, answer.text
    return answer.json()


def day_pass(bus) -> dict[str, Any]:
    return {"product_id": bus.products["day"]["id"], "rider_category": "adult", "funded_by": "operator"}


async def test_the_whole_flow_counts_one_redemption_one_activation_and_one_created_ride(
    client, tokens, town, bus, sessionmaker, clock
):
    await set_profile(client, tokens, HANAKO, **IN_THIRTIES)
    segment = await new_segment(client, tokens, THIRTIES)
    teahouse, farm = await two_shop_coupons(client, tokens, town)
    bundle = await sent(client, tokens, [teahouse["id"], farm["id"]], ticket=day_pass(bus), audience="segment",
                        segment_id=segment["id"])
    claimed = await claim(client, tokens, bundle["id"])
    assert claimed.status_code == 201, claimed.text
    made = claimed.json()
    shop_claim = made["claim_ids"][bundle["coupon_ids"].index(teahouse["id"])]

    clock.advance(timedelta(hours=2))
    paid = await pay(client, tokens, await store_qr(client, tokens, town, TEAHOUSE), 800, shop_claim)
    assert paid.status_code == 201, paid.text
    clock.advance(timedelta(hours=1))
    assert (await board(client, tokens, bus, made["ticket_id"], clock))["outcome"] == "activation"

    found = await counts(client, tokens, "2026-04-01", "2026-04-02")
    assert [(c["coupon_id"], c["claims"], c["redemptions"], c["shop_discount"], c["coupon_sales"])
            for c in sorted(found["coupons"], key=lambda c: c["coupon_id"] != teahouse["id"])] == [
        (teahouse["id"], 1, 1, 100, 700), (farm["id"], 1, 0, 0, 0)]
    assert [(b["day"], b["bundle_id"], b["claims"], b["created_rides"]) for b in found["bundles"]] == [
        ("2026-04-01", bundle["id"], 1, 1)]
    assert [(p["product_id"], p["tickets_sold"], p["activations"], p["rides"]) for p in found["products"]] == [
        (bus.products["day"]["id"], 0, 1, 1)]
    assert sum(c["redemptions"] for c in found["coupons"]) == 1
    assert found["window"] == {"created_ride_days": 30, "quiet_days": 90, "set_by": None, "set_at": None}
    assert await ledger_violations(sessionmaker) == []
    # The city's KPI report of the year reads the same counts.
    report = await client.get("/v1/settlement/kpi/2026", headers=tokens.auditor())
    assert report.status_code == 200, report.text
    figures = {k["kpi"]: (k["actual"], k["monthly"]["2026-04"]) for k in report.json()["kpis"]}
    assert figures["coupon_redemptions"] == ("1", "1") and figures["bundle_rides"] == ("1", "1")


async def test_a_created_ride_is_within_n_days_of_the_claim_by_a_resident_quiet_for_m_days(
    client, tokens, town, bus, sessionmaker, clock
):
    window = await client.put("/v1/bundles/ride-window", json={"created_ride_days": 7, "quiet_days": 30},
                              headers=tokens.operator())
    assert window.status_code == 200, window.text
    # Taro rides on 1 April, before claiming: he was riding already, so his bundle creates nothing.
    single = await buy(client, tokens, bus.products["single"], subject=TARO)
    clock.set(jst(2026, 4, 1, 10))
    await board(client, tokens, bus, single["id"], clock, TARO)

    teahouse, farm = await two_shop_coupons(client, tokens, town)
    bundle = await sent(client, tokens, [teahouse["id"], farm["id"]], ticket=day_pass(bus))
    clock.set(jst(2026, 4, 1, 12))
    hanako = (await claim(client, tokens, bundle["id"])).json()
    clock.set(jst(2026, 4, 3, 9))
    taro = (await claim(client, tokens, bundle["id"], TARO)).json()

    # Hanako: the day pass on 3 April and a bought single ride on 7 April are within 7 days of her
    # claim (1 April 12:00); one on 9 April is not. Taro's day pass ride on 4 April is not created.
    clock.set(jst(2026, 4, 3, 8))
    await board(client, tokens, bus, hanako["ticket_id"], clock)
    clock.set(jst(2026, 4, 4, 8))
    await board(client, tokens, bus, taro["ticket_id"], clock, TARO)
    for day in (7, 9):
        ticket = await buy(client, tokens, bus.products["single"])
        clock.set(jst(2026, 4, day, 8))
        await board(client, tokens, bus, ticket["id"], clock)

    found = await counts(client, tokens, "2026-04-01", "2026-04-30")
    assert [(b["day"], b["claims"], b["created_rides"]) for b in found["bundles"]] == [
        ("2026-04-01", 1, 0), ("2026-04-03", 1, 1), ("2026-04-07", 0, 1)]
    # A period that starts after the claim still counts the rides the claim created in it.
    later = await counts(client, tokens, "2026-04-05", "2026-04-30")
    assert [(b["day"], b["claims"], b["created_rides"]) for b in later["bundles"]] == [("2026-04-07", 0, 1)]
    # With a wider N, 9 April is created too.
    await client.put("/v1/bundles/ride-window", json={"created_ride_days": 10, "quiet_days": 30},
                     headers=tokens.operator())
    wider = await counts(client, tokens, "2026-04-01", "2026-04-30")
    assert sum(b["created_rides"] for b in wider["bundles"]) == 3
    assert wider["window"]["created_ride_days"] == 10 and wider["window"]["set_by"] == "operator-aizu"


async def test_refusals_change_nothing(client, tokens, town, sessionmaker):
    before = await snapshot(sessionmaker)
    zero = await client.put("/v1/bundles/ride-window", json={"created_ride_days": 0, "quiet_days": 30},
                            headers=tokens.operator())
    assert zero.status_code == 422
    auditor = await client.put("/v1/bundles/ride-window", json={"created_ride_days": 7, "quiet_days": 30},
                               headers=tokens.auditor())
    assert auditor.status_code == 403
    backwards = await client.get("/v1/coupons/counts", params={"since": "2026-04-02", "until": "2026-04-01"},
                                 headers=tokens.operator())
    assert_problem(backwards, 422, "invalid-count-period")
    too_long = await client.get("/v1/coupons/counts", params={"since": "2025-04-01", "until": "2026-06-01"},
                                headers=tokens.operator())
    assert_problem(too_long, 422, "invalid-count-period")
    resident = await client.get("/v1/coupons/counts", params={"since": "2026-04-01", "until": "2026-04-02"},
                                headers=tokens.resident())
    assert resident.status_code == 403
    assert await snapshot(sessionmaker) == before
    assert (await client.get("/v1/bundles/ride-window", headers=tokens.auditor())).json()["created_ride_days"] == 30
