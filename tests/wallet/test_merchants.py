"""Merchant onboarding (加盟店) and what each role sees of merchants."""

from __future__ import annotations

import pytest

from shared.auth import Role
from tests.helpers import assert_problem, idem, snapshot

FARMER = {
    "name": "Bandai Apple Orchard",
    "name_ja": "磐梯りんご園",
    "sector": "agriculture",
    "mcc": "0763",
    "address": "会津若松市一箕町",
    "bank_code": "0125",
    "branch_code": "102",
    "account_type": 1,
    "account_number": "7654321",
    "account_holder_kana": "ﾊﾞﾝﾀﾞｲﾘﾝｺﾞｴﾝ",
}


async def test_operator_onboards_a_merchant_with_an_empty_account_and_an_audit_record(client, tokens, town):
    response = await client.post("/v1/merchants", json=FARMER, headers=idem(tokens.operator()))
    assert response.status_code == 201, response.text
    merchant = response.json()
    assert merchant["status"] == "active" and merchant["name_ja"] == "磐梯りんご園"

    balance = (await client.get(f"/v1/merchants/{merchant['id']}/balance", headers=tokens.merchant_staff(merchant["id"]))).json()
    assert balance["balance"] == 0 and balance["unit"] == "yen"
    event = (await client.get("/v1/audit-events", headers=tokens.auditor())).json()["items"][0]
    assert event["action"] == "merchant.onboard" and event["target_id"] == merchant["id"]
    assert event["after"]["account_number"] == "7654321"


BAD_MERCHANTS = [
    ({"mcc": "57"}, "validation-error"),
    ({"sector": "casino"}, "validation-error"),
    ({"bank_code": "12a4"}, "validation-error"),
    ({"account_number": "123"}, "validation-error"),
    ({"account_type": 3}, "validation-error"),
    ({"account_holder_kana": "Bandai Ringo-en"}, "validation-error"),  # must be half-width katakana / upper case
    ({"name": ""}, "validation-error"),
    ({"name": "   "}, "validation-error"),
    ({"name": "Minato\x00Farm"}, "validation-error"),  # PostgreSQL text cannot hold NUL
    ({"address": "Sakae 1-1\nAizuwakamatsu"}, "validation-error"),
    ({"unexpected": "field"}, "validation-error"),
]


@pytest.mark.parametrize(("change", "slug"), BAD_MERCHANTS, ids=[next(iter(c)) for c, _ in BAD_MERCHANTS])
async def test_bad_merchant_details_are_refused_and_change_nothing(client, tokens, town, sessionmaker, change, slug):
    before = await snapshot(sessionmaker)
    response = await client.post("/v1/merchants", json={**FARMER, **change}, headers=idem(tokens.operator()))
    assert_problem(response, 422, slug)
    assert await snapshot(sessionmaker) == before


async def test_duplicate_merchant_name_is_refused_and_changes_nothing(client, tokens, town, sessionmaker):
    before = await snapshot(sessionmaker)
    response = await client.post(
        "/v1/merchants", json={**FARMER, "name": "Minato Farm"}, headers=idem(tokens.operator())
    )
    assert_problem(response, 409, "merchant-name-taken")
    assert await snapshot(sessionmaker) == before


async def test_suspending_and_closing_a_merchant_is_audited_and_closed_is_final(client, tokens, town, sessionmaker):
    bus = town.merchants["Aizu Bus"]
    suspended = await client.patch(f"/v1/merchants/{bus}", json={"status": "suspended"}, headers=idem(tokens.operator()))
    assert suspended.status_code == 200 and suspended.json()["status"] == "suspended"
    closed = await client.patch(f"/v1/merchants/{bus}", json={"status": "closed"}, headers=idem(tokens.operator()))
    assert closed.json()["status"] == "closed"
    events = (await client.get("/v1/audit-events", headers=tokens.auditor())).json()["items"]
    assert [(e["before"]["status"], e["after"]["status"]) for e in events[:2]] == [("suspended", "closed"), ("active", "suspended")]

    before = await snapshot(sessionmaker)
    reopen = await client.patch(f"/v1/merchants/{bus}", json={"status": "active"}, headers=idem(tokens.operator()))
    assert_problem(reopen, 409, "account-inactive")
    key = await client.post(f"/v1/merchants/{bus}/api-keys", json={"name": "validator"}, headers=idem(tokens.operator()))
    assert_problem(key, 409, "account-inactive")
    assert await snapshot(sessionmaker) == before


async def test_unknown_merchant_is_not_found_and_changes_nothing(client, tokens, town, sessionmaker):
    before = await snapshot(sessionmaker)
    unknown = "01a209ce-0000-7000-8000-000000000000"
    assert_problem(
        await client.patch(f"/v1/merchants/{unknown}", json={"status": "suspended"}, headers=idem(tokens.operator())),
        404, "merchant-not-found",
    )
    assert_problem(await client.get(f"/v1/merchants/{unknown}", headers=tokens.operator()), 404, "merchant-not-found")
    assert await snapshot(sessionmaker) == before


async def test_merchants_see_only_themselves_and_lists_paginate(client, tokens, town):
    teahouse, pharmacy = town.merchants["Tsurugajo Teahouse"], town.merchants["Ekimae Pharmacy"]
    own = await client.get(f"/v1/merchants/{teahouse}", headers=tokens.merchant_staff(teahouse))
    assert own.status_code == 200 and own.json()["name"] == "Tsurugajo Teahouse"
    assert_problem(
        await client.get(f"/v1/merchants/{pharmacy}", headers=tokens.merchant_staff(teahouse)), 404, "merchant-not-found"
    )
    assert_problem(await client.get("/v1/merchants", headers=tokens.merchant_admin(teahouse)), 403, "forbidden")

    seen, cursor = [], None
    while True:
        params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/merchants", params=params, headers=tokens.auditor())).json()
        seen += [m["name"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(town.merchants)
    assert_problem(await client.get("/v1/merchants", params={"cursor": "!!"}, headers=tokens.auditor()), 422, "validation-error")


# --- names a QR code must be able to carry ------------------------------------------------------

UNPRINTABLE_NAMES = [  # (field, value, problem): the schema states what it can, the service the rest
    ("name", "鶴ヶ城 Teahouse", "validation-error"),  # field 59 carries printable ASCII only
    ("name", "Café Nanokamachi", "validation-error"),
    ("name_ja", "茶屋\u0378", "name-not-printable"),  # an unassigned code point
    ("name_ja", "茶屋\ue000", "name-not-printable"),  # private use
    ("name_ja", "茶\u200b屋", "name-not-printable"),  # a zero-width space (a format character)
]


@pytest.mark.parametrize(("field", "value", "slug"), UNPRINTABLE_NAMES, ids=[repr(v) for _, v, _ in UNPRINTABLE_NAMES])
async def test_a_merchant_name_no_qr_code_can_carry_is_refused_at_onboarding_and_edit(
    client, tokens, town, sessionmaker, field, value, slug
):
    before = await snapshot(sessionmaker)
    onboard = await client.post("/v1/merchants", json={**FARMER, field: value}, headers=idem(tokens.operator()))
    teahouse = town.merchants["Tsurugajo Teahouse"]
    edit = await client.patch(f"/v1/merchants/{teahouse}", json={field: value}, headers=idem(tokens.operator()))
    for refused in (assert_problem(onboard, 422, slug), assert_problem(edit, 422, slug)):
        assert refused["errors"][0]["loc"] == ["body", field] if slug == "validation-error" else refused["field"] == field
    assert await snapshot(sessionmaker) == before


@pytest.mark.parametrize(("change", "slug"), [
    ({"name_ja": "二号店\u0378"}, "name-not-printable"),
    ({"terminal_label": "   "}, "validation-error"),  # nothing a code could show
    ({"terminal_label": "レジ1"}, "validation-error"),
])
async def test_a_store_name_or_label_no_qr_code_can_carry_is_refused(client, tokens, town, sessionmaker, change, slug):
    teahouse = town.merchants["Tsurugajo Teahouse"]
    before = await snapshot(sessionmaker)
    response = await client.post(f"/v1/merchants/{teahouse}/stores", json={"name": "Second", "name_ja": "二号店", **change},
                                 headers=idem(tokens.merchant_admin(teahouse)))
    assert_problem(response, 422, slug)
    assert await snapshot(sessionmaker) == before


async def test_a_duplicate_store_name_is_refused_and_changes_nothing(client, tokens, town, sessionmaker):
    teahouse = town.merchants["Tsurugajo Teahouse"]
    admin = tokens.merchant_admin(teahouse)
    body = {"name": "Market stall", "name_ja": "屋台"}
    assert (await client.post(f"/v1/merchants/{teahouse}/stores", json=body, headers=idem(admin))).status_code == 201
    before = await snapshot(sessionmaker)
    assert_problem(await client.post(f"/v1/merchants/{teahouse}/stores", json=body, headers=idem(admin)), 409, "store-name-taken")
    assert await snapshot(sessionmaker) == before


async def test_every_qr_call_answers_for_a_shop_with_the_names_it_was_given(client, tokens, town):
    """What onboarding and store creation accept, every code, image and request can print."""
    created = await client.post(
        "/v1/merchants", json={**FARMER, "name": "  Bandai   Apple Orchard & Cider House of Aizu ", "name_ja": "磐梯りんご園　会津のシードル工房"},
        headers=idem(tokens.operator()),
    )
    assert created.status_code == 201, created.text
    merchant = created.json()["id"]
    admin = tokens.merchant_admin(merchant)
    store = await client.post(f"/v1/merchants/{merchant}/stores", json={
        "name": "Stall", "name_ja": "か\u3099屋台", "terminal_label": "stall 1"}, headers=idem(admin))  # か + combining ゛
    assert store.status_code == 201, store.text
    store_id = store.json()["id"]
    for path in ("qr", "qr.png", "qr.svg", "stand.pdf"):
        assert (await client.get(f"/v1/stores/{store_id}/{path}", headers=admin)).status_code == 200, path
    requested = await client.post("/v1/payment-requests", json={"store_id": store_id, "amount": 500, "order_reference": "o-1"},
                                  headers=idem(tokens.mint(Role.MERCHANT_STAFF, "clerk", merchant=merchant)))
    assert requested.status_code == 201, requested.text
