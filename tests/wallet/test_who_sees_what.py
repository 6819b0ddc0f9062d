"""What each role sees of a merchant's bank account and of a resident card's code.

A merchant's payout account: the operator (who pays it out), the auditor (who checks the payouts)
and the merchant's admin see it; its staff and its POS terminals do not. A card's code (with the
PIN, what pays): the resident and the operator (who prints the card) see it; the auditor sees the
card's status and limit only.
"""

from __future__ import annotations

import io

import pytest
import zxingcpp
from PIL import Image

from tests.helpers import assert_problem, idem, snapshot
from tests.wallet.test_payments import TEAHOUSE, terminal_key
from tests.wallet.test_presented_codes import card  # noqa: F401 (a fixture)

BANK = ("bank_code", "branch_code", "account_type", "account_number", "account_holder_kana")


async def test_a_terminal_sees_its_merchant_and_stores_but_not_the_bank_account(client, tokens, town):
    teahouse = town.merchants[TEAHOUSE]
    pos = await terminal_key(client, tokens, teahouse)
    full = (await client.get(f"/v1/merchants/{teahouse}", headers=tokens.operator())).json()
    assert all(full[field] is not None for field in BANK)

    identity = await client.get("/v1/terminal", headers=pos)
    assert identity.status_code == 200, identity.text
    merchant = identity.json()["merchant"]
    assert (merchant["id"], merchant["name"], merchant["name_ja"]) == (teahouse, TEAHOUSE, full["name_ja"])
    assert not set(BANK) & set(merchant), merchant  # not even as empty fields
    assert full["account_number"] not in identity.text
    stores = await client.get(f"/v1/merchants/{teahouse}/stores", headers=pos)
    assert stores.status_code == 200 and [s["merchant_id"] for s in stores.json()] == [teahouse]

    seen = await client.get(f"/v1/merchants/{teahouse}", headers=pos)
    assert seen.status_code == 200 and seen.json()["name"] == TEAHOUSE
    assert all(seen.json()[field] is None for field in BANK), seen.json()


@pytest.mark.parametrize(("role", "sees"), [
    ("operator", True), ("auditor", True), ("merchant_admin", True), ("merchant_staff", False),
])
async def test_who_sees_a_merchants_bank_account(client, tokens, town, role, sees):
    teahouse = town.merchants[TEAHOUSE]
    headers = {
        "operator": tokens.operator(), "auditor": tokens.auditor(), "merchant_admin": tokens.merchant_admin(teahouse),
        "merchant_staff": tokens.merchant_staff(teahouse),
    }[role]
    merchant = (await client.get(f"/v1/merchants/{teahouse}", headers=headers)).json()
    assert merchant["name"] == TEAHOUSE and merchant["address"]
    if sees:
        assert merchant["account_number"].isdigit() and merchant["account_type"] in (1, 2, 4)
    else:
        assert all(merchant[field] is None for field in BANK), merchant




@pytest.mark.parametrize("role", ["resident", "operator"])
async def test_the_resident_and_the_operator_see_the_cards_code_and_its_qr(client, tokens, town, card, role):
    headers = tokens.resident("resident-taro") if role == "resident" else tokens.operator()
    seen = (await client.get(f"/v1/cards/{card['id']}", headers=headers)).json()
    assert seen["code"] == card["code"]
    png = await client.get(f"/v1/cards/{card['id']}/qr.png", headers=headers)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert [d.text for d in zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))] == [card["code"]]


async def test_an_auditor_sees_the_card_but_not_its_code_nor_its_qr(client, tokens, town, card, sessionmaker):
    auditor = tokens.auditor()
    seen = await client.get(f"/v1/cards/{card['id']}", headers=auditor)
    assert seen.status_code == 200, seen.text
    body = seen.json()
    assert body["code"] is None and card["code"] not in seen.text
    assert (body["id"], body["account_id"], body["status"], body["daily_limit"]) == (
        card["id"], card["account_id"], "active", 5_000
    )
    before = await snapshot(sessionmaker)
    assert_problem(await client.get(f"/v1/cards/{card['id']}/qr.png", headers=auditor), 403, "forbidden")
    assert_problem(await client.post(f"/v1/cards/{card['id']}/lost", headers=idem(auditor)), 403, "forbidden")
    assert await snapshot(sessionmaker) == before
    # Nor does the audit trail carry it.
    events = (await client.get("/v1/audit-events", headers=auditor)).json()["items"]
    assert any(e["action"] == "card.issue" for e in events) and card["code"] not in str(events)


async def test_another_resident_and_shops_see_no_card(client, tokens, town, card):
    assert_problem(await client.get(f"/v1/cards/{card['id']}", headers=tokens.resident()), 404, "card-not-found")
    assert_problem(await client.get(f"/v1/cards/{card['id']}/qr.png", headers=tokens.resident()), 404, "card-not-found")
    staff = tokens.merchant_staff(town.merchants[TEAHOUSE])
    assert_problem(await client.get(f"/v1/cards/{card['id']}", headers=staff), 403, "forbidden")
    assert_problem(await client.get(f"/v1/cards/{card['id']}/qr.png", headers=staff), 403, "forbidden")
