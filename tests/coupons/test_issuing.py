"""Issuing coupons and running their lifecycle: who may issue what, the rules between fields, and
what can no longer change once residents may claim a coupon. Every refusal is checked for its
problem type and for leaving nothing changed."""

from __future__ import annotations

import uuid

import pytest

from tests.coupons.flows import FARM, TEAHOUSE, coupon_body, funded_sponsor, issue, stores
from tests.helpers import assert_problem, idem, snapshot


async def test_a_merchant_admin_issues_a_draft_for_its_own_merchant(client, tokens, town):
    admin = tokens.merchant_admin(town.merchants[TEAHOUSE])
    response = await client.post("/v1/coupons", headers=idem(admin), json=coupon_body(image_url="https://example.jp/a.png"))
    assert response.status_code == 201, response.text
    coupon = response.json()
    assert (coupon["merchant_id"], coupon["status"], coupon["stock"], coupon["stock_left"]) == (
        town.merchants[TEAHOUSE], "draft", 10, 10)
    # Moments read in Tokyo time.
    assert (coupon["valid_from"], coupon["valid_until"]) == ("2026-04-01T00:00:00+09:00", "2026-05-01T00:00:00+09:00")
    assert (coupon["funded_by"], coupon["audience"], coupon["image_url"]) == ("shop", "all", "https://example.jp/a.png")

    listed = (await client.get("/v1/coupons", headers=tokens.merchant_staff(town.merchants[TEAHOUSE]))).json()
    assert [c["id"] for c in listed["items"]] == [coupon["id"]]
    # Another merchant sees none of it.
    farm = tokens.merchant_admin(town.merchants[FARM])
    assert (await client.get("/v1/coupons", headers=farm)).json()["items"] == []
    assert_problem(await client.get(f"/v1/coupons/{coupon['id']}", headers=farm), 404, "coupon-not-found")
    assert (await client.get(f"/v1/coupons/{coupon['id']}", headers=tokens.auditor())).status_code == 200


async def test_the_operator_issues_for_a_merchant_or_for_the_whole_region(client, tokens, town):
    for_farm = await issue(client, tokens, town, None, activate=False, merchant_id=town.merchants[FARM])
    region_wide = await issue(client, tokens, town, None, activate=False)
    assert (for_farm["merchant_id"], region_wide["merchant_id"]) == (town.merchants[FARM], None)
    listed = (await client.get("/v1/coupons", headers=tokens.operator())).json()["items"]
    assert {c["id"] for c in listed} == {for_farm["id"], region_wide["id"]}


async def test_a_coupon_goes_draft_active_paused_active_ended(client, tokens, town, sessionmaker):
    admin = tokens.merchant_admin(town.merchants[TEAHOUSE])
    coupon = await issue(client, tokens, town, activate=False)
    statuses = []
    for action in ("activate", "pause", "activate", "end"):
        response = await client.post(f"/v1/coupons/{coupon['id']}/{action}", headers=idem(admin))
        assert response.status_code == 200, response.text
        statuses.append(response.json()["status"])
    assert statuses == ["active", "paused", "active", "ended"]

    before = await snapshot(sessionmaker)
    for action in ("activate", "pause", "end"):
        assert_problem(await client.post(f"/v1/coupons/{coupon['id']}/{action}", headers=idem(admin)), 409,
                       "coupon-not-editable")
    assert await snapshot(sessionmaker) == before


async def test_a_draft_is_editable(client, tokens, town):
    admin = tokens.merchant_admin(town.merchants[TEAHOUSE])
    coupon = await issue(client, tokens, town, activate=False)
    response = await client.patch(f"/v1/coupons/{coupon['id']}", headers=idem(admin),
                                  json={"kind": "percent_off", "value": 1_000, "max_discount": 300, "stock": 50})
    assert response.status_code == 200, response.text
    edited = response.json()
    assert (edited["kind"], edited["value"], edited["max_discount"], edited["stock"], edited["stock_left"]) == (
        "percent_off", 1_000, 300, 50, 50)


@pytest.mark.parametrize("changes", [
    {"value": 200}, {"kind": "percent_off", "value": 500, "max_discount": 100}, {"terms": "Two per visit."},
    {"funded_by": "sponsor"}, {"stock": 20}, {"min_spend": 1_000},
])
async def test_an_active_or_paused_coupons_value_kind_terms_funding_and_stock_cannot_be_edited(
    client, tokens, town, sessionmaker, changes
):
    admin = tokens.merchant_admin(town.merchants[TEAHOUSE])
    coupon = await issue(client, tokens, town)
    for state in ("active", "paused"):
        if state == "paused":
            assert (await client.post(f"/v1/coupons/{coupon['id']}/pause", headers=idem(admin))).status_code == 200
        before = await snapshot(sessionmaker)
        response = await client.patch(f"/v1/coupons/{coupon['id']}", headers=idem(admin), json=changes)
        assert_problem(response, 409, "coupon-not-editable")
        assert await snapshot(sessionmaker) == before


async def test_an_active_coupon_takes_a_new_name_image_and_end(client, tokens, town):
    admin = tokens.merchant_admin(town.merchants[TEAHOUSE])
    coupon = await issue(client, tokens, town)
    response = await client.patch(f"/v1/coupons/{coupon['id']}", headers=idem(admin), json={
        "name": "Matcha set, spring", "image_url": "https://example.jp/spring.png",
        "valid_until": "2026-04-15T00:00:00+09:00",
    })
    assert response.status_code == 200, response.text
    assert (response.json()["name"], response.json()["valid_until"]) == ("Matcha set, spring", "2026-04-15T00:00:00+09:00")


@pytest.mark.parametrize("changes, what", [
    ({"value": 500}, "yen_off value reaching the minimum spend"),
    ({"kind": "fixed_price", "value": 600}, "fixed price above the minimum spend"),
    ({"kind": "percent_off", "value": 1_000}, "percent_off without a maximum"),
    ({"kind": "percent_off", "value": 10_000, "max_discount": 100}, "percent_off of 100 %"),
    ({"kind": "percent_off", "value": 10, "max_discount": 100}, "percent_off that rounds to nothing at the minimum"),
    ({"max_discount": 100}, "a maximum on a yen_off coupon"),
    ({"kind": "free_item"}, "a free item with a value"),
    ({"kind": "free_item", "value": None, "funded_by": "sponsor", "sponsor_id": str(uuid.uuid4())},
     "a sponsored free item"),
    ({"valid_until": "2026-04-01T00:00:00+09:00"}, "an empty window"),
    ({"funded_by": "sponsor"}, "a sponsor's coupon without its sponsor"),
    ({"store_ids": [str(uuid.uuid4())]}, "a store that is not one"),
    ({"merchant_id": str(uuid.uuid4())}, "a merchant admin issuing for another merchant"),
    ({"funded_by": "sponsor", "sponsor_id": str(uuid.uuid4())}, "a merchant committing a sponsor's budget"),
])
async def test_invalid_coupon_fields_are_refused(client, tokens, town, sessionmaker, changes, what):
    admin = tokens.merchant_admin(town.merchants[TEAHOUSE])
    before = await snapshot(sessionmaker)
    response = await client.post("/v1/coupons", headers=idem(admin), json=coupon_body(**changes))
    assert_problem(response, 422, "invalid-coupon")
    assert await snapshot(sessionmaker) == before, what


async def test_a_merchants_coupon_is_valid_only_at_its_own_stores(client, tokens, town, sessionmaker):
    farm_store = (await stores(client, tokens, town, FARM))[0]
    before = await snapshot(sessionmaker)
    response = await client.post("/v1/coupons", headers=idem(tokens.merchant_admin(town.merchants[TEAHOUSE])),
                                 json=coupon_body(store_ids=[farm_store]))
    assert_problem(response, 422, "invalid-coupon")
    assert await snapshot(sessionmaker) == before
    # A region-wide coupon may list any stores of the region.
    region_wide = await issue(client, tokens, town, None, activate=False, store_ids=[farm_store])
    assert region_wide["store_ids"] == [farm_store]


@pytest.mark.parametrize("body, status, slug", [
    ({"stock": 0}, 422, "validation-error"),
    ({"value": 1.0}, 422, "validation-error"),
    ({"image_url": "not a url"}, 422, "validation-error"),
    ({"kind": "bogo"}, 422, "validation-error"),
    ({"audience": "segment"}, 422, "invalid-coupon"),
    ({"audience": "segment", "segment_id": "00000000-0000-7000-8000-000000000000"}, 404, "segment-not-found"),
    ({"audience": "everyone"}, 422, "validation-error"),
    ({"funded_by": "sponsor", "sponsor_id": "00000000-0000-7000-8000-000000000000"}, 404, "sponsor-not-found"),
    ({"merchant_id": "00000000-0000-7000-8000-000000000000"}, 404, "merchant-not-found"),
])
async def test_malformed_or_unknown_fields_are_refused(client, tokens, town, sessionmaker, body, status, slug):
    before = await snapshot(sessionmaker)
    response = await client.post("/v1/coupons", headers=idem(tokens.operator()), json=coupon_body(**body))
    assert_problem(response, status, slug)
    assert await snapshot(sessionmaker) == before


async def test_a_sponsored_coupon_names_a_sponsor_of_the_region(client, tokens, town, sessionmaker, clock):
    sponsor_id = await funded_sponsor(sessionmaker, clock, 1_000)
    coupon = await issue(client, tokens, town, None, activate=False, funded_by="sponsor", sponsor_id=str(sponsor_id))
    assert (coupon["funded_by"], coupon["sponsor_id"]) == ("sponsor", str(sponsor_id))


async def test_residents_and_staff_cannot_issue(client, tokens, town, sessionmaker):
    before = await snapshot(sessionmaker)
    for headers in (tokens.resident(), tokens.merchant_staff(town.merchants[TEAHOUSE]), tokens.auditor()):
        assert_problem(await client.post("/v1/coupons", headers=idem(headers), json=coupon_body()), 403, "forbidden")
    assert await snapshot(sessionmaker) == before


async def test_a_patch_cannot_empty_a_required_field(client, tokens, town, sessionmaker):
    coupon = await issue(client, tokens, town, activate=False)
    before = await snapshot(sessionmaker)
    response = await client.patch(f"/v1/coupons/{coupon['id']}", headers=idem(tokens.merchant_admin(town.merchants[TEAHOUSE])),
                                  json={"kind": None})
    assert_problem(response, 422, "invalid-coupon")
    assert await snapshot(sessionmaker) == before
