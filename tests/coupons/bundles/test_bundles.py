"""Bundles (issue 13, item 5) against real PostgreSQL: the operator bundles shop coupons with a bus
ticket and sends the bundle to a segment; a resident in it claims the whole bundle once, or
nothing of it. Every refusal is checked for its problem and for leaving nothing behind."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta
from typing import Any

import pytest

from services.coupons import public as coupons_public
from services.coupons.bundles import public as bundles_public
from services.coupons.bundles import service as bundles
from services.coupons.bundles.errors import BundlePartRefused
from services.coupons.transit import public as transit_public
from services.wallet import public as wallet
from shared.errors import Problem
from tests.coupons.flows import (
    CITY,
    FARM,
    FROM,
    HANAKO,
    REGION,
    TARO,
    TEAHOUSE,
    claimed,
    funded_sponsor,
    issue,
    pay,
    store_qr,
)
from tests.coupons.segments.test_segments import new_segment, set_profile
from tests.coupons.transit.conftest import BUS, codes, scan
from tests.helpers import assert_problem, idem, ledger_violations, snapshot

SACHIKO = "resident-sachiko"
UNTIL_START = "2026-04-20T00:00:00+09:00"  # a bundle's period: the tests' clock starts on 1 April
THIRTIES = [{"kind": "age_band", "any_of": ["30s"]}]
IN_THIRTIES = {"segments_consent": True, "personalised_consent": False, "age_band": "30s"}


def bundle_body(coupon_ids: list[str], **changes: Any) -> dict[str, Any]:
    return {"name": "Ride to the castle", "terms": "One per resident.", "coupon_ids": coupon_ids,
            "starts_at": FROM, "ends_at": UNTIL_START, **changes}


async def make(client, tokens, coupon_ids: list[str], **changes: Any) -> dict[str, Any]:
    answer = await client.post("/v1/bundles", json=bundle_body(coupon_ids, **changes), headers=idem(tokens.operator()))
    assert answer.status_code == 201, answer.text
    return answer.json()


async def distribute(client, tokens, bundle_id: str) -> Any:
    return await client.post(f"/v1/bundles/{bundle_id}/distribute", headers=idem(tokens.operator()))


async def sent(client, tokens, coupon_ids: list[str], **changes: Any) -> dict[str, Any]:
    bundle = await make(client, tokens, coupon_ids, **changes)
    answer = await distribute(client, tokens, bundle["id"])
    assert answer.status_code == 200, answer.text
    return answer.json()


async def claim(client, tokens, bundle_id: str, subject: str = HANAKO, key: str | None = None) -> Any:
    return await client.post(f"/v1/bundles/{bundle_id}/claims", headers=idem(tokens.resident(subject), key))


async def two_shop_coupons(client, tokens, town, **changes: Any) -> list[dict[str, Any]]:
    return [await issue(client, tokens, town, TEAHOUSE, **changes),
            await issue(client, tokens, town, FARM, name="Farm box ¥100 off", **changes)]


async def stock(sessionmaker, coupon_id: str) -> coupons_public.StockState:
    async with sessionmaker() as s:
        return await coupons_public.stock_state(s, region=REGION, coupon_id=coupon_id)


async def notices(client, tokens, subject: str) -> list[dict[str, Any]]:
    answer = await client.get("/v1/wallet/notices", headers=tokens.resident(subject))
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


# --- the whole flow ------------------------------------------------------------------------------------


async def test_a_resident_in_the_segment_claims_the_bundle_its_coupons_and_a_day_pass_at_once(
    client, tokens, town, bus, sessionmaker, clock
):
    await set_profile(client, tokens, HANAKO, **IN_THIRTIES)
    segment = await new_segment(client, tokens, THIRTIES)
    shop, farm = await two_shop_coupons(client, tokens, town)
    ride = await issue(client, tokens, town, None, name="Bus stop café ¥100 off")
    ticket = {"product_id": bus.products["day"]["id"], "rider_category": "adult", "funded_by": "operator"}
    bundle = await make(client, tokens, [farm["id"], shop["id"], ride["id"]], ticket=ticket, audience="segment",
                        segment_id=segment["id"])
    assert (bundle["status"], bundle["coupon_ids"], bundle["ticket"]["sponsor_id"]) == (
        "draft", [farm["id"], shop["id"], ride["id"]], None)

    distributed = await distribute(client, tokens, bundle["id"])
    assert distributed.status_code == 200, distributed.text
    assert (distributed.json()["status"], distributed.json()["recipients"], distributed.json()["segment_version"]) == (
        "distributed", 1, 1)
    assert [(n["kind"], n["payload"]) for n in await notices(client, tokens, HANAKO)] == [
        ("bundle-distributed", {"bundle_id": bundle["id"], "name": "Ride to the castle", "starts_at": bundle["starts_at"]})]
    assert await notices(client, tokens, TARO) == []  # not in the segment

    offered = (await client.get("/v1/bundles/available", headers=tokens.resident())).json()["items"]
    assert [b["id"] for b in offered] == [bundle["id"]]
    answer = await claim(client, tokens, bundle["id"])
    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert made["bundle_name"] == "Ride to the castle" and len(made["claim_ids"]) == 3 and made["ticket_id"]

    mine = (await client.get("/v1/coupons/claims", headers=tokens.resident())).json()["items"]
    assert {(c["id"], c["coupon_id"], c["state"]) for c in mine} == {
        (claim_id, coupon_id, "claimed") for claim_id, coupon_id in zip(made["claim_ids"], bundle["coupon_ids"])}
    tickets = (await client.get("/v1/me/transit/tickets", headers=tokens.resident())).json()["items"]
    assert [(t["id"], t["funded_by"], t["fare"], t["payment_id"], t["bundle_claim_id"], t["state"]) for t in tickets] == [
        (made["ticket_id"], "operator", 0, None, made["id"], "unused")]
    assert (await client.get("/v1/bundles/claims", headers=tokens.resident())).json()["items"] == [made]
    assert (await client.get("/v1/bundles/available", headers=tokens.resident())).json()["items"] == []
    for coupon in (shop, farm, ride):
        assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(10, 9, 1, 1)

    # She pays at the teahouse with its coupon from the bundle; then boards the bus with the day pass,
    # which rides like a bought one: a ride is counted, the grant is no ticket sale.
    teahouse_claim = made["claim_ids"][bundle["coupon_ids"].index(shop["id"])]
    paid = await pay(client, tokens, await store_qr(client, tokens, town), 1000, teahouse_claim)
    assert (paid.status_code, paid.json()["payment"]["amount"]) == (201, 900), paid.text
    boarded = await scan(client, bus.validator, (await codes(client, tokens, {"id": made["ticket_id"]}))[0]["code"],
                         clock.now())
    assert (boarded.status_code, boarded.json()["outcome"]) == (201, "activation")
    async with sessionmaker() as s:
        day = clock.now().date()
        counted = (await bundles_public.bundle_claims(s, region=REGION, since=day, until=day + timedelta(days=1)))
        rides = await transit_public.counts(s, region=REGION, since=day, until=day + timedelta(days=1))
        used = await coupons_public.daily_counts(s, region=REGION, since=day, until=day + timedelta(days=1))
    assert [(str(c.bundle_id), c.subject, [str(i) for i in c.claim_ids], str(c.ticket_id)) for c in counted] == [
        (bundle["id"], HANAKO, made["claim_ids"], made["ticket_id"])]
    assert [(p.tickets_sold, p.sales, p.activations, p.rides) for p in rides.products] == [(0, 0, 1, 1)]
    assert sorted((str(c.coupon_id), c.claims, c.redemptions) for c in used) == sorted(
        [(shop["id"], 1, 1), (farm["id"], 1, 0), (ride["id"], 1, 0)])
    assert await ledger_violations(sessionmaker) == []


async def test_a_claim_replayed_with_its_key_answers_the_first_and_claims_nothing_more(client, tokens, town, sessionmaker):
    shop, farm = await two_shop_coupons(client, tokens, town)
    bundle = await sent(client, tokens, [shop["id"], farm["id"]])
    first = await claim(client, tokens, bundle["id"], key="bundle-claim-1")
    again = await claim(client, tokens, bundle["id"], key="bundle-claim-1")
    assert (first.status_code, again.status_code, again.json()) == (201, 201, first.json())
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert await stock(sessionmaker, shop["id"]) == coupons_public.StockState(10, 9, 1, 1)


# --- all or nothing ------------------------------------------------------------------------------------


async def test_a_part_sold_out_refuses_the_whole_bundle_and_nothing_is_claimed(client, tokens, town, bus, sessionmaker):
    shop = await issue(client, tokens, town, TEAHOUSE, stock=5)
    farm = await issue(client, tokens, town, FARM, name="Farm box ¥100 off", stock=1)
    ticket = {"product_id": bus.products["single"]["id"], "rider_category": "child", "funded_by": "operator"}
    bundle = await sent(client, tokens, [shop["id"], farm["id"]], ticket=ticket)
    await claimed(client, tokens, farm["id"], TARO)  # the farm's only coupon, claimed on its own
    before = await snapshot(sessionmaker)
    refused = assert_problem(await claim(client, tokens, bundle["id"]), 409, "bundle-part-refused")
    assert (refused["part"], refused["coupon_id"], refused["part_problem"]) == (
        "coupon", farm["id"], "urn:chiikipay:problem:coupon-out-of-stock")
    assert "Farm box ¥100 off" in refused["detail"] and "Nothing was claimed" in refused["detail"]
    assert await snapshot(sessionmaker) == before  # the teahouse's coupon, the ticket, the bundle claim: none
    assert await stock(sessionmaker, shop["id"]) == coupons_public.StockState(5, 5, 0, 0)


async def test_a_part_whose_limit_the_resident_reached_refuses_the_bundle(client, tokens, town, sessionmaker):
    shop, farm = await two_shop_coupons(client, tokens, town)
    bundle = await sent(client, tokens, [shop["id"], farm["id"]])
    await claimed(client, tokens, shop["id"])  # one each, and Hanako has hers
    before = await snapshot(sessionmaker)
    refused = assert_problem(await claim(client, tokens, bundle["id"]), 409, "bundle-part-refused")
    assert (refused["coupon_id"], refused["part_problem"]) == (shop["id"], "urn:chiikipay:problem:coupon-limit-reached")
    assert await snapshot(sessionmaker) == before


async def test_one_bundle_claim_per_resident_even_when_sent_at_once(client, tokens, town, sessionmaker):
    shop, farm = await two_shop_coupons(client, tokens, town, per_resident_limit=5)
    bundle = await sent(client, tokens, [shop["id"], farm["id"]])
    answers = await asyncio.gather(*(claim(client, tokens, bundle["id"]) for _ in range(6)))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 5
    for answer in answers:
        if answer.status_code == 409:
            assert_problem(answer, 409, "bundle-already-claimed")
    before = await snapshot(sessionmaker)
    assert_problem(await claim(client, tokens, bundle["id"]), 409, "bundle-already-claimed")
    assert await snapshot(sessionmaker) == before
    for coupon in (shop, farm):
        assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(10, 9, 1, 1)


async def test_concurrent_residents_claim_exactly_as_many_bundles_as_the_scarcest_part_allows(
    client, tokens, town, bus, sessionmaker
):
    plenty = await issue(client, tokens, town, TEAHOUSE, stock=30)
    scarce = await issue(client, tokens, town, FARM, name="Farm box ¥100 off", stock=12)
    ticket = {"product_id": bus.products["day"]["id"], "rider_category": "adult", "funded_by": "operator"}
    # Listed scarce first: claims take stock in coupon-id order whatever the listing.
    bundle = await sent(client, tokens, [scarce["id"], plenty["id"]], ticket=ticket)
    answers = await asyncio.gather(*(claim(client, tokens, bundle["id"], f"resident-{i:03}") for i in range(60)))
    assert sorted(a.status_code for a in answers) == [201] * 12 + [409] * 48
    for answer in answers:
        if answer.status_code == 409:
            body = assert_problem(answer, 409, "bundle-part-refused")
            assert (body["coupon_id"], body["part_problem"]) == (scarce["id"], "urn:chiikipay:problem:coupon-out-of-stock")
    # No partial claim anywhere: the plentiful coupon gave exactly one unit per bundle claimed.
    assert await stock(sessionmaker, scarce["id"]) == coupons_public.StockState(12, 0, 12, 12)
    assert await stock(sessionmaker, plenty["id"]) == coupons_public.StockState(30, 18, 12, 12)
    async with sessionmaker() as s:
        day = date.fromisoformat(FROM[:10])
        found = await bundles_public.bundle_claims(s, region=REGION, since=day, until=day + timedelta(days=1))
    winners = {a.json()["id"] for a in answers if a.status_code == 201}
    assert {str(c.id) for c in found} == winners and len({c.subject for c in found}) == 12
    assert all(len(c.claim_ids) == 2 and c.ticket_id is not None for c in found)
    assert await ledger_violations(sessionmaker) == []


# --- audiences -----------------------------------------------------------------------------------------


async def test_a_resident_not_in_the_segment_neither_sees_nor_claims_it(client, tokens, town, sessionmaker):
    await set_profile(client, tokens, HANAKO, **IN_THIRTIES)
    await set_profile(client, tokens, SACHIKO, segments_consent=True, personalised_consent=False, age_band="60s")
    segment = await new_segment(client, tokens, THIRTIES)
    shop, farm = await two_shop_coupons(client, tokens, town)
    bundle = await sent(client, tokens, [shop["id"], farm["id"]], audience="segment", segment_id=segment["id"])
    before = await snapshot(sessionmaker)
    for subject in (TARO, SACHIKO):  # no opt-in at all; opted in but not in their thirties
        assert (await client.get("/v1/bundles/available", headers=tokens.resident(subject))).json()["items"] == []
        assert_problem(await claim(client, tokens, bundle["id"], subject), 409, "bundle-not-in-audience")
    assert await snapshot(sessionmaker) == before

    # An opt-out takes effect at once: a second ago in the segment, now refused.
    await set_profile(client, tokens, HANAKO, segments_consent=False, personalised_consent=False)
    before = await snapshot(sessionmaker)
    assert (await client.get("/v1/bundles/available", headers=tokens.resident())).json()["items"] == []
    assert_problem(await claim(client, tokens, bundle["id"]), 409, "bundle-not-in-audience")
    assert await snapshot(sessionmaker) == before


async def test_distribution_to_an_empty_segment_is_refused_and_nothing_is_sent(client, tokens, town, sessionmaker):
    segment = await new_segment(client, tokens, THIRTIES)  # no one has opted in
    shop, farm = await two_shop_coupons(client, tokens, town)
    bundle = await make(client, tokens, [shop["id"], farm["id"]], audience="segment", segment_id=segment["id"])
    before = await snapshot(sessionmaker)
    assert_problem(await distribute(client, tokens, bundle["id"]), 409, "segment-empty")
    assert await snapshot(sessionmaker) == before
    assert (await client.get(f"/v1/bundles/{bundle['id']}", headers=tokens.operator())).json()["status"] == "draft"


async def test_a_bundle_for_all_residents_notifies_each_resident_with_a_wallet(client, tokens, town):
    shop, farm = await two_shop_coupons(client, tokens, town)
    bundle = await sent(client, tokens, [shop["id"], farm["id"]])
    assert bundle["recipients"] == 3
    for subject in (HANAKO, TARO, SACHIKO):
        assert [n["kind"] for n in await notices(client, tokens, subject)] == ["bundle-distributed"]


# --- a sponsor pays the ride -----------------------------------------------------------------------------


async def test_a_sponsor_pays_the_bus_operator_the_fare_and_its_budget_never_goes_negative(
    client, tokens, town, bus, sessionmaker, clock
):
    sponsor_id = await funded_sponsor(sessionmaker, clock, 500)  # one adult day pass
    shop, farm = await two_shop_coupons(client, tokens, town)
    ticket = {"product_id": bus.products["day"]["id"], "rider_category": "adult", "funded_by": "sponsor",
              "sponsor_id": str(sponsor_id)}
    bundle = await sent(client, tokens, [shop["id"], farm["id"]], ticket=ticket)
    made = await claim(client, tokens, bundle["id"])
    assert made.status_code == 201, made.text
    tickets = (await client.get("/v1/me/transit/tickets", headers=tokens.resident())).json()["items"]
    assert [(t["funded_by"], t["fare"], t["payment_id"]) for t in tickets] == [("sponsor", 500, None)]
    async with sessionmaker() as s:
        assert (await wallet.sponsor(s, region=REGION, sponsor_id=sponsor_id)).budget == 0
        day = clock.now()
        lines = [line async for line in wallet.statement_lines(
            s, region=REGION, since=day - timedelta(hours=1), until=day + timedelta(hours=1),
            merchant_id=uuid.UUID(town.merchants[BUS]))]
    assert [(line.kind, line.amount, line.fee, line.net) for line in lines] == [
        (wallet.LineKind.SPONSOR_PAYMENT, 500, 0, 500)]
    assert await ledger_violations(sessionmaker) == []

    # The budget is spent: the next resident's claim is refused whole, the budget stays at 0.
    before = await snapshot(sessionmaker)
    refused = assert_problem(await claim(client, tokens, bundle["id"], TARO), 409, "bundle-part-refused")
    assert (refused["part"], refused["part_problem"]) == ("ticket", "urn:chiikipay:problem:sponsor-budget-exhausted")
    assert await snapshot(sessionmaker) == before
    assert await ledger_violations(sessionmaker) == []


async def test_sponsor_pays_moves_yen_from_the_budget_and_refuses_what_it_cannot_cover(
    client, town, sessionmaker, clock
):
    sponsor_id = await funded_sponsor(sessionmaker, clock, 300)
    bus = uuid.UUID(town.merchants[BUS])
    async with sessionmaker() as s, s.begin():
        paid = await wallet.sponsor_pays(s, clock, region=REGION, actor=CITY, sponsor_id=sponsor_id, merchant_id=bus,
                                         amount=200, reference="ticket:x")
    assert (paid.amount, paid.budget, paid.merchant_id) == (200, 100, bus)
    before = await snapshot(sessionmaker)
    for amount, slug in ((101, "sponsor-budget-exhausted"), (0, "invalid-amount")):
        async with sessionmaker() as s, s.begin():
            with pytest.raises(Problem) as refused:
                await wallet.sponsor_pays(s, clock, region=REGION, actor=CITY, sponsor_id=sponsor_id,
                                          merchant_id=bus, amount=amount)
        assert refused.value.slug == slug
        assert await snapshot(sessionmaker) == before
    async with sessionmaker() as s:
        assert (await wallet.sponsor(s, region=REGION, sponsor_id=sponsor_id)).budget == 100
    assert await ledger_violations(sessionmaker) == []


# --- lifecycle, periods and roles ------------------------------------------------------------------------


async def test_the_lifecycle_and_the_claiming_period_are_kept(client, tokens, town, sessionmaker, clock):
    shop, farm = await two_shop_coupons(client, tokens, town)
    later = await make(client, tokens, [shop["id"], farm["id"]], starts_at="2026-04-10T00:00:00+09:00")
    before = await snapshot(sessionmaker)
    assert_problem(await claim(client, tokens, later["id"]), 409, "bundle-not-available")  # a draft
    assert await snapshot(sessionmaker) == before
    assert (await distribute(client, tokens, later["id"])).status_code == 200
    before = await snapshot(sessionmaker)
    assert_problem(await claim(client, tokens, later["id"]), 409, "bundle-not-started")
    assert_problem(await distribute(client, tokens, later["id"]), 409, "bundle-not-editable")
    assert await snapshot(sessionmaker) == before

    clock.advance(timedelta(days=9))
    assert (await claim(client, tokens, later["id"])).status_code == 201
    ended = await client.post(f"/v1/bundles/{later['id']}/end", headers=idem(tokens.operator()))
    assert (ended.status_code, ended.json()["status"]) == (200, "ended")
    before = await snapshot(sessionmaker)
    assert_problem(await claim(client, tokens, later["id"], TARO), 409, "bundle-not-available")
    assert_problem(await client.post(f"/v1/bundles/{later['id']}/end", headers=idem(tokens.operator())),
                   409, "bundle-not-editable")
    assert await snapshot(sessionmaker) == before

    clock.advance(timedelta(days=11))  # past the end of a bundle sent in time
    over = await sent(client, tokens, [shop["id"], farm["id"]], ends_at="2026-04-25T00:00:00+09:00")
    clock.advance(timedelta(days=5))
    before = await snapshot(sessionmaker)
    assert_problem(await claim(client, tokens, over["id"], TARO), 409, "bundle-expired")
    assert await snapshot(sessionmaker) == before


async def test_a_bundle_is_sent_only_when_its_parts_are_on_offer(client, tokens, town, bus, sessionmaker):
    shop = await issue(client, tokens, town, TEAHOUSE)
    draft = await issue(client, tokens, town, FARM, activate=False)
    bundle = await make(client, tokens, [shop["id"], draft["id"]])
    before = await snapshot(sessionmaker)
    refused = assert_problem(await distribute(client, tokens, bundle["id"]), 409, "bundle-part-not-ready")
    assert refused["coupon_id"] == draft["id"]
    assert await snapshot(sessionmaker) == before


@pytest.mark.parametrize("change, status, slug", [
    ({"coupon_ids": []}, 422, "validation-error"),
    ({"starts_at": UNTIL_START, "ends_at": FROM}, 422, "invalid-bundle"),
    ({"audience": "segment"}, 422, "invalid-bundle"),
    ({"segment_id": "00000000-0000-7000-8000-000000000000", "audience": "segment"}, 404, "segment-not-found"),
    ({"coupon_ids": ["00000000-0000-7000-8000-000000000000"]}, 404, "coupon-not-found"),
    ({"ticket": {"product_id": "00000000-0000-7000-8000-000000000000", "rider_category": "adult",
                 "funded_by": "operator"}}, 404, "fare-product-not-found"),
    ({"ticket": {"product_id": "day", "rider_category": "elderly", "funded_by": "operator"}}, 422,
     "rider-category-not-offered"),
    ({"ticket": {"product_id": "day", "rider_category": "adult", "funded_by": "sponsor"}}, 422, "invalid-bundle"),
    ({"ticket": {"product_id": "day", "rider_category": "adult", "funded_by": "sponsor",
                 "sponsor_id": "00000000-0000-7000-8000-000000000000"}}, 404, "sponsor-not-found"),
])
async def test_a_bundle_that_does_not_fit_together_is_refused(client, tokens, town, bus, sessionmaker, change, status,
                                                              slug):
    shop, farm = await two_shop_coupons(client, tokens, town)
    body = {**bundle_body([shop["id"], farm["id"]]), **change}
    if body.get("ticket", {}).get("product_id") == "day":
        body["ticket"]["product_id"] = bus.products["day"]["id"]
    before = await snapshot(sessionmaker)
    assert_problem(await client.post("/v1/bundles", json=body, headers=idem(tokens.operator())), status, slug)
    assert await snapshot(sessionmaker) == before


async def test_a_coupon_listed_twice_is_refused(client, tokens, town, sessionmaker):
    shop = await issue(client, tokens, town, TEAHOUSE)
    before = await snapshot(sessionmaker)
    assert_problem(await client.post("/v1/bundles", json=bundle_body([shop["id"], shop["id"]]),
                                     headers=idem(tokens.operator())), 422, "invalid-bundle")
    assert await snapshot(sessionmaker) == before


async def test_only_the_operator_makes_and_sends_bundles_auditors_read_them(client, tokens, town, sessionmaker):
    shop, farm = await two_shop_coupons(client, tokens, town)
    bundle = await make(client, tokens, [shop["id"], farm["id"]])
    before = await snapshot(sessionmaker)
    for headers in (tokens.resident(), tokens.auditor(), tokens.merchant_admin(town.merchants[TEAHOUSE])):
        assert_problem(await client.post("/v1/bundles", json=bundle_body([shop["id"]]), headers=idem(headers)),
                       403, "forbidden")
        assert_problem(await client.post(f"/v1/bundles/{bundle['id']}/distribute", headers=idem(headers)),
                       403, "forbidden")
    for headers in (tokens.operator(), tokens.auditor()):
        assert [b["id"] for b in (await client.get("/v1/bundles", headers=headers)).json()["items"]] == [bundle["id"]]
        assert (await client.get(f"/v1/bundles/{bundle['id']}", headers=headers)).json() == bundle
    assert_problem(await client.get("/v1/bundles", headers=tokens.resident()), 403, "forbidden")
    assert_problem(await client.post(f"/v1/bundles/{bundle['id']}/claims", headers=idem(tokens.operator())),
                   403, "forbidden")
    assert await snapshot(sessionmaker) == before


async def test_an_unknown_bundle_is_not_found(client, tokens, town, sessionmaker):
    before = await snapshot(sessionmaker)
    unknown = "00000000-0000-7000-8000-000000000000"
    assert_problem(await client.get(f"/v1/bundles/{unknown}", headers=tokens.operator()), 404, "bundle-not-found")
    assert_problem(await claim(client, tokens, unknown), 404, "bundle-not-found")
    assert_problem(await distribute(client, tokens, unknown), 404, "bundle-not-found")
    assert await snapshot(sessionmaker) == before


async def test_concurrent_sponsored_claims_stop_exactly_where_the_budget_does(client, tokens, town, bus, sessionmaker,
                                                                              clock):
    sponsor_id = await funded_sponsor(sessionmaker, clock, 5 * 500)  # five adult day passes
    coupon = await issue(client, tokens, town, TEAHOUSE, stock=20)
    ticket = {"product_id": bus.products["day"]["id"], "rider_category": "adult", "funded_by": "sponsor",
              "sponsor_id": str(sponsor_id)}
    bundle = await sent(client, tokens, [coupon["id"]], ticket=ticket)
    answers = await asyncio.gather(*(claim(client, tokens, bundle["id"], f"resident-{i:03}") for i in range(15)))
    assert sorted(a.status_code for a in answers) == [201] * 5 + [409] * 10
    for answer in answers:
        if answer.status_code == 409:
            assert assert_problem(answer, 409, "bundle-part-refused")["part_problem"] == (
                "urn:chiikipay:problem:sponsor-budget-exhausted")
    async with sessionmaker() as s:
        assert (await wallet.sponsor(s, region=REGION, sponsor_id=sponsor_id)).budget == 0
    assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(20, 15, 5, 5)
    assert await ledger_violations(sessionmaker) == []


async def test_a_refused_bundle_claim_leaves_nothing_in_the_callers_transaction(client, tokens, town, sessionmaker,
                                                                                clock):
    """The claim runs in a savepoint: a caller that goes on and commits after the refusal (a job,
    the CLI) commits none of the parts claimed before the one that refused."""
    plenty = await issue(client, tokens, town, TEAHOUSE)
    gone = await issue(client, tokens, town, FARM, name="Farm box ¥100 off", stock=1)
    bundle = await sent(client, tokens, [plenty["id"], gone["id"]])
    await claimed(client, tokens, gone["id"], TARO)
    before = await snapshot(sessionmaker)
    async with sessionmaker() as s, s.begin():
        with pytest.raises(BundlePartRefused):
            await bundles.claim(s, clock, region=REGION, actor=CITY, subject=HANAKO, bundle_id=uuid.UUID(bundle["id"]))
    assert await snapshot(sessionmaker) == before
