"""Segments (issue 13, item 6) against real PostgreSQL: residents' consents decide what may be used
and take effect at once; segments are versioned and audited; the audience is a count for the
operator and a list only for the coupons service; announcements make one wallet notice per
resident in the segment. Every refusal is checked for its problem and for leaving nothing behind."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.coupons.segments import public as segments
from services.wallet import public as wallet
from services.wallet.payments import repository as payments_repo
from shared.audit import Actor
from tests.helpers import assert_problem, idem, snapshot

REGION = "aizu"
HANAKO, TARO, SACHIKO = "resident-hanako", "resident-taro", "resident-sachiko"
TEAHOUSE, STORE, BUS = "Tsurugajo Teahouse", "Nanokamachi General Store", "Aizu Bus"
CITY = Actor("operator-aizu", "operator")
SHOP = Actor("test:payments", "resident")

PROFILE = {"segments_consent": True, "personalised_consent": True, "age_band": "30s", "area": "tsuruga",
           "interests": ["food", "culture"], "transport_mode": "bus"}
FOOD_30 = [{"kind": "paid_at_sector", "sectors": ["food_service"], "days": 30}]


async def set_profile(client, tokens, subject: str, **body: Any) -> dict[str, Any]:
    answer = await client.put("/v1/coupons/me/profile", json=body, headers=idem(tokens.resident(subject)))
    assert answer.status_code == 200, answer.text
    return answer.json()


async def new_segment(client, tokens, filters: list[dict[str, Any]], name: str = "Teahouse regulars") -> dict[str, Any]:
    answer = await client.post("/v1/segments", json={"name": name, "filters": filters},
                               headers=idem(tokens.operator()))
    assert answer.status_code == 201, answer.text
    return answer.json()


async def audience(client, tokens, segment_id: str) -> int:
    answer = await client.get(f"/v1/segments/{segment_id}/audience", headers=tokens.operator())
    assert answer.status_code == 200, answer.text
    return answer.json()["residents"]


async def members(sessionmaker, clock, segment_id: str, version: int | None = None) -> list[str]:
    async with sessionmaker() as s:
        return await segments.members(s, region=REGION, segment_id=uuid.UUID(segment_id), at=clock.now(),
                                      version=version)


async def pay(sessionmaker, clock, town, payer: str, merchant: str, price: int) -> wallet.PaidPayment:
    """A real payment; then a minute passes, as it would before anyone asks who paid."""
    async with sessionmaker() as s, s.begin():
        store = (await payments_repo.stores(s, uuid.UUID(town.merchants[merchant])))[0].id
        paid = await wallet.pay(s, clock, region=REGION, actor=SHOP, payer=payer, store_id=store, price=price)
    clock.advance(timedelta(minutes=1))
    return paid


async def stored_profile(sessionmaker, subject: str) -> tuple | None:
    async with sessionmaker() as s:
        return (await s.execute(text(
            "SELECT segments_consent, personalised_consent, age_band, area, interests, transport_mode"
            " FROM coupons.resident_profiles WHERE subject = :subject"), {"subject": subject})).first()


# --- profiles and consents ----------------------------------------------------------------------


async def test_a_resident_shares_attributes_with_consent_and_reads_them_back(client, tokens, sessionmaker, town):
    empty = (await client.get("/v1/coupons/me/profile", headers=tokens.resident())).json()
    assert empty == {"segments_consent": False, "personalised_consent": False, "age_band": None, "area": None,
                     "interests": [], "transport_mode": None, "updated_at": None}
    saved = await set_profile(client, tokens, HANAKO, **{**PROFILE, "interests": ["food", "culture", "food"]})
    assert {k: saved[k] for k in PROFILE} == {**PROFILE, "interests": ["culture", "food"]}
    assert (await client.get("/v1/coupons/me/profile", headers=tokens.resident())).json() == saved
    # Another resident sees only their own (empty) profile.
    assert (await client.get("/v1/coupons/me/profile", headers=tokens.resident(TARO))).json()["age_band"] is None
    # The audit trail has the consents given, never the attributes (it is append-only).
    events = (await client.get("/v1/audit-events", headers=tokens.auditor())).json()["items"]
    consent = [e for e in events if e["action"] == "segments.consent.update"]
    assert [(e["target_id"], e["before"], e["after"]) for e in consent] == [
        (HANAKO, {"segments": False, "personalised": False}, {"segments": True, "personalised": True})]
    assert "30s" not in str(events) and "tsuruga" not in str(events)


async def test_attributes_without_the_segments_consent_are_refused_and_nothing_changes(
    client, tokens, sessionmaker, town
):
    await set_profile(client, tokens, HANAKO, segments_consent=False, personalised_consent=True)
    before = await snapshot(sessionmaker)
    refused = await client.put("/v1/coupons/me/profile", headers=idem(tokens.resident()), json={
        "segments_consent": False, "personalised_consent": True, "interests": ["food"]})
    assert_problem(refused, 422, "consent-required")
    assert await snapshot(sessionmaker) == before


@pytest.mark.parametrize("change", [
    {"age_band": "10s"}, {"interests": ["gambling"]}, {"area": "Tsuruga Castle"}, {"area": "a" * 33},
    {"transport_mode": "rocket"}, {"segments_consent": "yes"}, {"interests": ["food"] * 8}, {"income": "high"},
])
async def test_profile_fields_outside_the_vocabulary_are_refused(client, tokens, sessionmaker, town, change):
    before = await snapshot(sessionmaker)
    refused = await client.put("/v1/coupons/me/profile", json={**PROFILE, **change}, headers=idem(tokens.resident()))
    assert_problem(refused, 422, "validation-error")
    assert await snapshot(sessionmaker) == before


async def test_only_the_resident_reads_or_sets_their_profile(client, tokens, sessionmaker, town):
    before = await snapshot(sessionmaker)
    for headers in (tokens.operator(), tokens.auditor(), tokens.merchant_admin(town.merchants[TEAHOUSE])):
        assert_problem(await client.get("/v1/coupons/me/profile", headers=headers), 403, "forbidden")
        assert_problem(await client.put("/v1/coupons/me/profile", json=PROFILE, headers=idem(headers)), 403, "forbidden")
    assert await snapshot(sessionmaker) == before


async def test_withdrawing_the_segments_consent_deletes_the_attributes_and_takes_effect_at_once(
    client, tokens, sessionmaker, clock, town
):
    await set_profile(client, tokens, HANAKO, **PROFILE)
    by_age = await new_segment(client, tokens, [{"kind": "age_band", "any_of": ["30s", "40s"]}], "Thirties")
    assert await audience(client, tokens, by_age["id"]) == 1
    assert await members(sessionmaker, clock, by_age["id"]) == [HANAKO]

    await set_profile(client, tokens, HANAKO, segments_consent=False, personalised_consent=True)
    assert await stored_profile(sessionmaker, HANAKO) == (False, True, None, None, [], None)
    assert await audience(client, tokens, by_age["id"]) == 0
    assert await members(sessionmaker, clock, by_age["id"]) == []
    # The database itself refuses an attribute kept without the consent.
    async with sessionmaker() as s:
        with pytest.raises(DBAPIError, match="attributes_need_consent"):
            await s.execute(text("UPDATE coupons.resident_profiles SET age_band = '30s' WHERE subject = :s"), {"s": HANAKO})


async def test_withdrawing_both_consents_deletes_the_profile_and_the_activity_filters_stop_matching(
    client, tokens, sessionmaker, clock, town
):
    await set_profile(client, tokens, HANAKO, **PROFILE)
    await pay(sessionmaker, clock, town, HANAKO, TEAHOUSE, 800)
    regulars = await new_segment(client, tokens, FOOD_30)
    assert await members(sessionmaker, clock, regulars["id"]) == [HANAKO]

    await set_profile(client, tokens, HANAKO, segments_consent=True, personalised_consent=False, age_band="30s")
    assert await members(sessionmaker, clock, regulars["id"]) == []
    assert await audience(client, tokens, regulars["id"]) == 0

    await set_profile(client, tokens, HANAKO, segments_consent=False, personalised_consent=False)
    assert await stored_profile(sessionmaker, HANAKO) is None
    async with sessionmaker() as s:
        assert sorted(await segments.everyone(s, region=REGION)) == sorted([HANAKO, TARO, SACHIKO])


# --- who is in a segment ----------------------------------------------------------------------------


async def test_a_resident_without_opt_in_is_only_in_all_residents(client, tokens, sessionmaker, clock, town):
    await set_profile(client, tokens, HANAKO, **PROFILE)
    for subject in (HANAKO, TARO):  # both paid at the teahouse; only Hanako agreed to it being used
        await pay(sessionmaker, clock, town, subject, TEAHOUSE, 500)
    everything_hanako_matches = await new_segment(client, tokens, [
        {"kind": "age_band", "any_of": ["30s"]}, {"kind": "area", "any_of": ["tsuruga", "kitaaizu"]},
        {"kind": "interest", "any_of": ["food"]}, {"kind": "transport_mode", "any_of": ["bus", "walk"]},
        *FOOD_30, {"kind": "paid", "days": 1},
    ])
    assert await members(sessionmaker, clock, everything_hanako_matches["id"]) == [HANAKO]
    assert await audience(client, tokens, everything_hanako_matches["id"]) == 1
    for filters in ([{"kind": "paid", "days": 30}], [{"kind": "interest", "any_of": ["food", "shopping", "tourism",
                                                                                  "culture", "health", "sports",
                                                                                  "nature"]}]):
        segment = await new_segment(client, tokens, filters, f"any {filters[0]['kind']}")
        assert await members(sessionmaker, clock, segment["id"]) == [HANAKO]
    async with sessionmaker() as s:
        assert sorted(await segments.everyone(s, region=REGION)) == sorted([HANAKO, TARO, SACHIKO])


async def test_each_attribute_filter_needs_one_of_its_values_and_every_filter_must_match(
    client, tokens, sessionmaker, clock, town
):
    await set_profile(client, tokens, HANAKO, **PROFILE)
    await set_profile(client, tokens, TARO, segments_consent=True, personalised_consent=False, age_band="60s",
                      interests=["nature", "food"], transport_mode="car")
    await set_profile(client, tokens, SACHIKO, segments_consent=True, personalised_consent=False, area="tsuruga")
    cases = [
        ([{"kind": "interest", "any_of": ["food"]}], [HANAKO, TARO]),
        ([{"kind": "interest", "any_of": ["nature", "culture"]}], [HANAKO, TARO]),
        ([{"kind": "area", "any_of": ["tsuruga"]}], [HANAKO, SACHIKO]),
        ([{"kind": "area", "any_of": ["tsuruga"]}, {"kind": "age_band", "any_of": ["30s", "60s"]}], [HANAKO]),
        ([{"kind": "transport_mode", "any_of": ["car", "bus"]}], [HANAKO, TARO]),
        ([{"kind": "age_band", "any_of": ["under_20", "70_plus"]}], []),
        ([{"kind": "interest", "any_of": ["food"]}, {"kind": "paid", "days": 30}], []),  # no one paid
    ]
    for n, (filters, expected) in enumerate(cases):
        segment = await new_segment(client, tokens, filters, f"case {n}")
        assert sorted(await members(sessionmaker, clock, segment["id"])) == sorted(expected), filters
        assert await audience(client, tokens, segment["id"]) == len(expected), filters


async def test_activity_filters_count_real_payments_in_the_last_n_tokyo_days(client, tokens, sessionmaker, clock, town):
    for subject in (HANAKO, TARO, SACHIKO):
        await set_profile(client, tokens, subject, segments_consent=False, personalised_consent=True)
    start = clock.now()  # 09:30 on 1 April in Tokyo
    await pay(sessionmaker, clock, town, TARO, TEAHOUSE, 1_200)  # 1 April
    clock.advance(timedelta(days=31))  # 2 May: 1 April is 31 days back, outside "the last 30 days"
    await pay(sessionmaker, clock, town, SACHIKO, STORE, 700)
    refunded = await pay(sessionmaker, clock, town, HANAKO, TEAHOUSE, 900)
    food = await new_segment(client, tokens, FOOD_30, "Food, 30 days")
    food_or_retail = await new_segment(
        client, tokens, [{"kind": "paid_at_sector", "sectors": ["food_service", "retail"], "days": 31}], "Two sectors")
    anywhere = await new_segment(client, tokens, [{"kind": "paid", "days": 31}], "Anywhere")
    assert await members(sessionmaker, clock, food["id"]) == [HANAKO]
    assert sorted(await members(sessionmaker, clock, food_or_retail["id"])) == sorted([HANAKO, SACHIKO, TARO])
    assert sorted(await members(sessionmaker, clock, anywhere["id"])) == sorted([HANAKO, SACHIKO, TARO])
    # A payment refunded in full is as if it had not been made.
    async with sessionmaker() as s, s.begin():
        await wallet.refund(s, clock, region=REGION, actor=SHOP, payment_id=refunded.id, amount=900)
    assert await members(sessionmaker, clock, food["id"]) == []
    assert await audience(client, tokens, food["id"]) == 0
    # Seen from 1 April (as `at`), only Taro had paid.
    async with sessionmaker() as s:
        assert await segments.members(s, region=REGION, segment_id=uuid.UUID(anywhere["id"]),
                                      at=start + timedelta(hours=1)) == [TARO]


async def test_the_audience_preview_equals_the_members_and_a_suspended_wallet_is_in_no_audience(
    client, tokens, sessionmaker, clock, town
):
    for subject in (HANAKO, TARO, SACHIKO):
        await set_profile(client, tokens, subject, **PROFILE)
    busy = await new_segment(client, tokens, [{"kind": "interest", "any_of": ["culture"]}])
    assert await audience(client, tokens, busy["id"]) == len(await members(sessionmaker, clock, busy["id"])) == 3
    taro_wallet = town.residents[TARO][0]
    suspended = await client.patch(f"/v1/wallets/{taro_wallet}", json={"status": "suspended"}, headers=idem(tokens.operator()))
    assert suspended.status_code == 200, suspended.text
    assert sorted(await members(sessionmaker, clock, busy["id"])) == sorted([HANAKO, SACHIKO])
    assert await audience(client, tokens, busy["id"]) == 2
    async with sessionmaker() as s:
        assert sorted(await segments.everyone(s, region=REGION)) == sorted([HANAKO, SACHIKO])


async def test_the_auditor_sees_the_count_and_no_one_sees_who(client, tokens, sessionmaker, town):
    await set_profile(client, tokens, HANAKO, **PROFILE)
    segment = await new_segment(client, tokens, [{"kind": "area", "any_of": ["tsuruga"]}])
    counted = await client.get(f"/v1/segments/{segment['id']}/audience", headers=tokens.auditor())
    assert counted.status_code == 200 and counted.json()["residents"] == 1 and counted.json()["version"] == 1
    assert HANAKO not in counted.text
    before = await snapshot(sessionmaker)
    for headers in (tokens.resident(), tokens.merchant_admin(town.merchants[TEAHOUSE])):
        assert_problem(await client.get(f"/v1/segments/{segment['id']}/audience", headers=headers),
                       403, "forbidden")
    assert await snapshot(sessionmaker) == before


# --- segments: CRUD, versions, audit ------------------------------------------------------------------


async def test_new_filters_make_a_new_version_and_the_old_one_still_answers(client, tokens, sessionmaker, clock, town):
    await set_profile(client, tokens, HANAKO, **PROFILE)
    await set_profile(client, tokens, TARO, segments_consent=True, personalised_consent=False, age_band="60s")
    created = await new_segment(client, tokens, [{"kind": "age_band", "any_of": ["30s"]}], "Age")
    assert (created["version"], created["archived_at"]) == (1, None)
    changed = await client.patch(f"/v1/segments/{created['id']}", headers=idem(tokens.operator()),
                                 json={"filters": [{"kind": "age_band", "any_of": ["60s"]}]})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["version"], changed.json()["filters"]) == (2, [{"kind": "age_band", "any_of": ["60s"]}])
    assert await members(sessionmaker, clock, created["id"]) == [TARO]
    assert await members(sessionmaker, clock, created["id"], version=1) == [HANAKO]
    # A rename, or the same filters again, is no new version.
    renamed = await client.patch(f"/v1/segments/{created['id']}", headers=idem(tokens.operator()),
                                 json={"name": "Sixties", "filters": [{"kind": "age_band", "any_of": ["60s"]}]})
    assert (renamed.json()["name"], renamed.json()["version"]) == ("Sixties", 2)
    listed = (await client.get("/v1/segments", headers=tokens.auditor())).json()
    assert [(s["name"], s["version"]) for s in listed["items"]] == [("Sixties", 2)]
    events = (await client.get("/v1/audit-events", headers=tokens.auditor())).json()["items"]
    trail = [(e["action"], (e["before"] or {}).get("version"), e["after"]["version"], e["after"]["name"])
             for e in events if e["action"].startswith("segment.")]
    assert trail == [("segment.update", 2, 2, "Sixties"), ("segment.update", 1, 2, "Age"),
                     ("segment.create", None, 1, "Age")]
    # A version is never changed, whatever code tries.
    async with sessionmaker() as s:
        with pytest.raises(DBAPIError, match="append-only"):
            await s.execute(text("UPDATE coupons.segment_versions SET filters = '[]' WHERE version = 1"))


async def test_an_archived_segment_is_gone_for_every_use_and_its_name_free(client, tokens, sessionmaker, clock, town):
    segment = await new_segment(client, tokens, [{"kind": "paid", "days": 7}])
    archived = await client.delete(f"/v1/segments/{segment['id']}", headers=idem(tokens.operator()))
    assert archived.status_code == 200 and archived.json()["archived_at"] is not None
    before = await snapshot(sessionmaker)
    for method, path, body in (("GET", "", None), ("GET", "/audience", None), ("PATCH", "", {"name": "again"}),
                               ("DELETE", "", None), ("POST", "/announcements", {"title": "t", "body": "b"})):
        answer = await client.request(method, f"/v1/segments/{segment['id']}{path}", json=body,
                                      headers=idem(tokens.operator()))
        assert_problem(answer, 404, "segment-not-found")
    async with sessionmaker() as s:
        with pytest.raises(segments.SegmentNotFound):
            await segments.members(s, region=REGION, segment_id=uuid.UUID(segment["id"]), at=clock.now())
    assert await snapshot(sessionmaker) == before
    assert (await new_segment(client, tokens, [{"kind": "paid", "days": 7}]))["version"] == 1


@pytest.mark.parametrize("body", [
    {"name": "x", "filters": []},
    {"name": "x", "filters": [{"kind": "rode_the_moon", "days": 3}]},
    {"name": "x", "filters": [{"kind": "age_band", "any_of": []}]},
    {"name": "x", "filters": [{"kind": "age_band", "any_of": ["teens"]}]},
    {"name": "x", "filters": [{"kind": "paid", "days": 0}]},
    {"name": "x", "filters": [{"kind": "paid", "days": 1.5}]},
    {"name": "x", "filters": [{"kind": "paid_at_sector", "sectors": ["casino"], "days": 30}]},
    {"name": "x", "filters": [{"kind": "paid_at_sector", "days": 30}]},
    {"name": "x", "filters": [{"kind": "area", "any_of": ["Not A Code"]}]},
    {"name": "x", "filters": [{"kind": "paid", "days": 30, "sectors": ["retail"]}]},
    {"name": "", "filters": [{"kind": "paid", "days": 30}]},
])
async def test_invalid_filters_are_refused(client, tokens, sessionmaker, town, body):
    before = await snapshot(sessionmaker)
    refused = await client.post("/v1/segments", json=body, headers=idem(tokens.operator()))
    assert_problem(refused, 422, "validation-error")
    assert await snapshot(sessionmaker) == before


async def test_segment_refusals_change_nothing(client, tokens, sessionmaker, town):
    first = await new_segment(client, tokens, FOOD_30, "Regulars")
    other = await new_segment(client, tokens, FOOD_30, "Others")
    before = await snapshot(sessionmaker)
    operator = tokens.operator()
    taken = await client.post("/v1/segments", json={"name": "Regulars", "filters": FOOD_30}, headers=idem(operator))
    assert_problem(taken, 409, "segment-name-taken")
    renamed = await client.patch(f"/v1/segments/{other['id']}", json={"name": "Regulars"}, headers=idem(operator))
    assert_problem(renamed, 409, "segment-name-taken")
    unknown = uuid.uuid4()
    assert_problem(await client.get(f"/v1/segments/{unknown}", headers=operator), 404, "segment-not-found")
    assert_problem(await client.patch(f"/v1/segments/{unknown}", json={"name": "n"}, headers=idem(operator)),
                   404, "segment-not-found")
    # Another region's operator does not see this region's segments.
    assert_problem(await client.get(f"/v1/segments/{first['id']}", headers=tokens.operator("other")),
                   404, "region-not-found")
    # Only the operator changes segments; the auditor reads them.
    for headers in (tokens.auditor(), tokens.resident()):
        assert_problem(await client.post("/v1/segments", json={"name": "n", "filters": FOOD_30},
                                         headers=idem(headers)), 403, "forbidden")
        assert_problem(await client.delete(f"/v1/segments/{first['id']}", headers=idem(headers)),
                       403, "forbidden")
    assert await snapshot(sessionmaker) == before


async def test_creating_a_segment_twice_with_one_key_creates_it_once(client, tokens, sessionmaker, town):
    headers = idem(tokens.operator())
    first = await client.post("/v1/segments", json={"name": "Once", "filters": FOOD_30}, headers=headers)
    again = await client.post("/v1/segments", json={"name": "Once", "filters": FOOD_30}, headers=headers)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len((await client.get("/v1/segments", headers=tokens.operator())).json()["items"]) == 1


# --- notices and announcements --------------------------------------------------------------------------


async def notices(client, tokens, subject: str) -> list[dict[str, Any]]:
    answer = await client.get("/v1/wallet/notices", headers=tokens.resident(subject))
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


async def test_an_announcement_makes_one_notice_per_resident_in_the_segment(client, tokens, sessionmaker, clock, town):
    for subject in (HANAKO, SACHIKO):
        await set_profile(client, tokens, subject, **PROFILE)
    segment = await new_segment(client, tokens, [{"kind": "interest", "any_of": ["culture"]}])
    headers = idem(tokens.operator())
    body = {"title": "鶴ヶ城の夜祭り", "body": "Lanterns in the castle park on Saturday."}
    sent = await client.post(f"/v1/segments/{segment['id']}/announcements", json=body, headers=headers)
    assert sent.status_code == 201, sent.text
    assert (sent.json()["recipients"], sent.json()["segment_version"]) == (2, 1)
    replayed = await client.post(f"/v1/segments/{segment['id']}/announcements", json=body, headers=headers)
    assert replayed.json() == sent.json()
    for subject in (HANAKO, SACHIKO):
        got = await notices(client, tokens, subject)
        assert [(n["kind"], n["payload"]) for n in got] == [
            ("announcement", {"announcement_id": sent.json()["id"], **body})]
    assert await notices(client, tokens, TARO) == []
    events = (await client.get("/v1/audit-events", headers=tokens.auditor())).json()["items"]
    assert [(e["action"], e["after"]["recipients"]) for e in events if "recipients" in (e["after"] or {})] == [
        ("segment.announce", 2), ("notices.post", 2)]


async def test_an_announcement_to_an_empty_segment_is_refused_and_nothing_is_sent(client, tokens, sessionmaker, town):
    segment = await new_segment(client, tokens, [{"kind": "transport_mode", "any_of": ["train"]}])
    before = await snapshot(sessionmaker)
    refused = await client.post(f"/v1/segments/{segment['id']}/announcements",
                                json={"title": "Hello", "body": "Nobody"}, headers=idem(tokens.operator()))
    assert_problem(refused, 409, "segment-empty")
    assert await snapshot(sessionmaker) == before


@pytest.mark.parametrize("body", [{"title": "", "body": "b"}, {"title": "t"}, {"title": "t", "body": "x" * 2001},
                                  {"title": "t\x07", "body": "b"}])
async def test_an_announcement_without_a_proper_title_and_body_is_refused(client, tokens, sessionmaker, town, body):
    segment = await new_segment(client, tokens, FOOD_30)
    before = await snapshot(sessionmaker)
    refused = await client.post(f"/v1/segments/{segment['id']}/announcements", json=body,
                                headers=idem(tokens.operator()))
    assert_problem(refused, 422, "validation-error")
    assert await snapshot(sessionmaker) == before


async def test_notify_reaches_all_residents_or_a_segment_and_refuses_an_empty_one(
    client, tokens, sessionmaker, clock, town
):
    await set_profile(client, tokens, TARO, segments_consent=True, personalised_consent=False, area="kitaaizu")
    north = await new_segment(client, tokens, [{"kind": "area", "any_of": ["kitaaizu"]}])
    nobody = await new_segment(client, tokens, [{"kind": "area", "any_of": ["minato"]}], "Nobody")
    async with sessionmaker() as s, s.begin():
        everyone = await segments.notify(s, clock, region=REGION, actor=CITY, audience=segments.ALL, kind="coupon",
                                         payload={"coupon": "spring"})
        north_only = await segments.notify(s, clock, region=REGION, actor=CITY, audience=uuid.UUID(north["id"]),
                                           kind="bundle", payload={"bundle": "bus"})
    assert (everyone, north_only) == (3, 1)
    assert [n["kind"] for n in await notices(client, tokens, TARO)] == ["bundle", "coupon"]
    assert [n["kind"] for n in await notices(client, tokens, HANAKO)] == ["coupon"]
    before = await snapshot(sessionmaker)
    async with sessionmaker() as s:
        with pytest.raises(segments.SegmentEmpty):
            await segments.notify(s, clock, region=REGION, actor=CITY, audience=uuid.UUID(nobody["id"]), kind="coupon",
                                  payload={})
        await s.commit()
    assert await snapshot(sessionmaker) == before
