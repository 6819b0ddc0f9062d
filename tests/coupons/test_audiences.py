"""A coupon for a segment (issue 13, items 1 and 6): offered only to the segment's residents,
checked live whenever they list coupons or claim one, so a resident without the opt-in, or who
opted out a second ago, neither sees it nor gets it, and nothing changes when they try."""

from __future__ import annotations

from services.coupons import public as coupons_public
from tests.coupons.flows import HANAKO, REGION, TARO, TEAHOUSE, claim, claimed, coupon_body, issue
from tests.coupons.segments.test_segments import new_segment, set_profile
from tests.helpers import assert_problem, idem, snapshot

THIRTIES = [{"kind": "age_band", "any_of": ["30s"]}]
IN_THIRTIES = {"segments_consent": True, "personalised_consent": False, "age_band": "30s"}


async def available(client, tokens, subject: str, **params: object) -> dict:
    answer = await client.get("/v1/coupons/available", headers=tokens.resident(subject), params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def stock(sessionmaker, coupon_id: str) -> coupons_public.StockState:
    async with sessionmaker() as s:
        return await coupons_public.stock_state(s, region=REGION, coupon_id=coupon_id)


async def test_a_segments_coupon_is_offered_and_given_only_to_residents_in_it_now(client, tokens, town, sessionmaker):
    await set_profile(client, tokens, HANAKO, **IN_THIRTIES)
    segment = await new_segment(client, tokens, THIRTIES)
    coupon = await issue(client, tokens, town, None, audience="segment", segment_id=segment["id"], per_resident_limit=2)
    assert (coupon["audience"], coupon["segment_id"]) == ("segment", segment["id"])
    assert [c["id"] for c in (await available(client, tokens, HANAKO))["items"]] == [coupon["id"]]
    assert (await available(client, tokens, TARO))["items"] == []

    before = await snapshot(sessionmaker)
    refused = assert_problem(await claim(client, tokens, coupon["id"], TARO), 409, "coupon-not-in-audience")
    assert refused["coupon_id"] == coupon["id"]
    assert await snapshot(sessionmaker) == before

    await claimed(client, tokens, coupon["id"], HANAKO)
    # Opted out a second ago: out of the segment at once, for the listing and the claim.
    await set_profile(client, tokens, HANAKO, segments_consent=False, personalised_consent=False)
    assert (await available(client, tokens, HANAKO))["items"] == []
    before = await snapshot(sessionmaker)
    assert_problem(await claim(client, tokens, coupon["id"], HANAKO), 409, "coupon-not-in-audience")
    assert await snapshot(sessionmaker) == before
    assert await stock(sessionmaker, coupon["id"]) == coupons_public.StockState(10, 9, 1, 1)


async def test_a_draft_turned_to_a_segment_before_activation_is_claimed_by_its_segment_only(
    client, tokens, town, sessionmaker
):
    """A draft's audience may still change (and a draft's claim is refused): what a claim checks
    is the audience it was activated with."""
    segment = await new_segment(client, tokens, THIRTIES)
    draft = await issue(client, tokens, town, None, activate=False)
    assert_problem(await claim(client, tokens, draft["id"], TARO), 409, "coupon-not-active")
    changed = await client.patch(f"/v1/coupons/{draft['id']}", headers=idem(tokens.operator()),
                                 json={"audience": "segment", "segment_id": segment["id"]})
    assert changed.status_code == 200, changed.text
    activated = await client.post(f"/v1/coupons/{draft['id']}/activate", headers=idem(tokens.operator()))
    assert activated.status_code == 200, activated.text
    before = await snapshot(sessionmaker)
    assert_problem(await claim(client, tokens, draft["id"], TARO), 409, "coupon-not-in-audience")
    assert await snapshot(sessionmaker) == before


async def test_a_page_of_available_coupons_is_filled_past_the_ones_not_offered(client, tokens, town):
    segment = await new_segment(client, tokens, THIRTIES)
    everyone = await issue(client, tokens, town, None, name="For all")
    await issue(client, tokens, town, None, name="For the thirties", audience="segment", segment_id=segment["id"])
    page = await available(client, tokens, TARO, limit=1)
    assert ([c["id"] for c in page["items"]], page["next_cursor"]) == ([everyone["id"]], None)


async def test_an_archived_segments_coupon_is_offered_to_no_one(client, tokens, town, sessionmaker):
    await set_profile(client, tokens, HANAKO, **IN_THIRTIES)
    segment = await new_segment(client, tokens, THIRTIES)
    coupon = await issue(client, tokens, town, None, audience="segment", segment_id=segment["id"])
    archived = await client.delete(f"/v1/segments/{segment['id']}", headers=idem(tokens.operator()))
    assert archived.status_code == 200, archived.text
    assert (await available(client, tokens, HANAKO))["items"] == []
    before = await snapshot(sessionmaker)
    assert_problem(await claim(client, tokens, coupon["id"], HANAKO), 409, "coupon-not-in-audience")
    assert await snapshot(sessionmaker) == before


async def test_only_the_operator_offers_a_coupon_to_a_segment(client, tokens, town, sessionmaker):
    segment = await new_segment(client, tokens, THIRTIES)
    before = await snapshot(sessionmaker)
    for body, slug in (({"audience": "segment", "segment_id": segment["id"]}, "invalid-coupon"),
                       ({"audience": "all", "segment_id": segment["id"]}, "invalid-coupon")):
        response = await client.post("/v1/coupons", headers=idem(tokens.merchant_admin(town.merchants[TEAHOUSE])),
                                     json=coupon_body(**body))
        assert_problem(response, 422, slug)
    assert await snapshot(sessionmaker) == before
