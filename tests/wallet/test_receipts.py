"""The receipt (領収書): the shop's address and qualified-invoice registration number, and what the
payment was paid in (coin, points) and what refunds gave back of each."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from services.wallet.directory.service import corporate_number_check_digit
from tests.helpers import assert_problem, idem, snapshot
from tests.wallet.test_merchants import FARMER
from tests.wallet.test_payments import TEAHOUSE, pay, store_of
from tests.wallet.test_rewards import reward_campaign

# 123456789012 is the 基礎番号 of the worked example that comes with the 法人番号 rule: check digit 7.
REGISTERED = "T7123456789012"


class _Rows(HTMLParser):
    """The receipt's table as a person reads it: label → value."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, str] = {}
        self._cell: str | None = None
        self._label = ""
        self._text = ""

    def handle_starttag(self, tag, attrs):
        if tag in ("th", "td"):
            self._cell, self._text = tag, ""

    def handle_data(self, data):
        if self._cell:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "th":
            self._label = self._text.strip()
        elif tag == "td":
            self.rows[self._label] = self._text.strip()
        if tag in ("th", "td"):
            self._cell = None


async def receipt_rows(client, headers, payment_id) -> dict[str, str]:
    response = await client.get(f"/v1/payments/{payment_id}/receipt.html", headers=headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html"), response.text
    parser = _Rows()
    parser.feed(response.text)
    return parser.rows


def test_the_check_digit_follows_the_rule_of_the_corporate_number():
    # The worked example of the rule (7 123456789012), and the digit is never 0: 9 − (sum mod 9).
    assert corporate_number_check_digit("123456789012") == 7
    assert corporate_number_check_digit("000000000000") == 9
    assert corporate_number_check_digit("900000000000") == 9  # 9 × 2 = 18, a multiple of 9
    assert corporate_number_check_digit("000000000001") == 8


async def test_the_receipt_shows_the_shops_address_number_and_the_coin_and_point_split(client, tokens, town):
    teahouse = await store_of(client, tokens, town, TEAHOUSE)
    merchant_id = teahouse["merchant_id"]
    registered = await client.patch(
        f"/v1/merchants/{merchant_id}", json={"invoice_registration_number": REGISTERED}, headers=idem(tokens.operator())
    )
    assert registered.status_code == 200, registered.text
    assert registered.json()["invoice_registration_number"] == REGISTERED
    address = registered.json()["address"]

    # 400 points from a first payment (20 % of 2,000 at a shopping-street shop), then a payment of
    # 1,000 that spends them first: 400 in points and 600 in coin.
    await reward_campaign(client, tokens, budget=10_000)
    assert (await pay(client, tokens, teahouse["payload"], 2_000)).json()["reward_points"] == 400
    payment = (await pay(client, tokens, teahouse["payload"], 1_000)).json()
    assert (payment["amount"], payment["point_amount"]) == (1_000, 400)
    staff = tokens.merchant_staff(merchant_id)
    refund = await client.post(f"/v1/payments/{payment['id']}/refunds", json={"amount": 700}, headers=idem(staff))
    assert refund.status_code == 201, refund.text

    # Coin comes back first: 600 to coin, 100 to points.
    rows = await receipt_rows(client, tokens.resident(), payment["id"])
    assert rows["お店 / Shop"] == "鶴ヶ城茶屋"
    assert rows["所在地 / Address"] == address
    assert rows["登録番号 / Registration No."] == REGISTERED
    assert (rows["金額 / Amount"], rows["うちコイン / in coin"], rows["うちポイント / in points"]) == ("¥1,000", "¥600", "¥400")
    assert (rows["返金 / Refunded"], rows["うちコイン / to coin"], rows["うちポイント / to points"]) == ("¥700", "¥600", "¥100")
    assert rows["差引 / Net"] == "¥300"
    assert rows["取引番号 / Payment id"] == payment["id"]

    # The same facts in the API, for the app that draws its own receipt; the shop sees them too.
    for headers in (tokens.resident(), staff, tokens.auditor()):
        detail = (await client.get(f"/v1/payments/{payment['id']}", headers=headers)).json()
        assert (detail["amount"], detail["coin_amount"], detail["point_amount"]) == (1_000, 600, 400)
        assert (detail["refunded_amount"], detail["refunded_coin"], detail["refunded_point"]) == (700, 600, 100)
        assert detail["shop"] == {
            "store_name_ja": "鶴ヶ城茶屋", "merchant_name": TEAHOUSE, "merchant_name_ja": registered.json()["name_ja"],
            "address": address, "invoice_registration_number": REGISTERED,
        }


async def test_a_shop_without_a_registration_number_prints_none(client, tokens, town):
    onboarded = await client.post("/v1/merchants", json=FARMER, headers=idem(tokens.operator()))
    assert onboarded.status_code == 201 and onboarded.json()["invoice_registration_number"] is None
    teahouse = await store_of(client, tokens, town, TEAHOUSE)
    payment = (await pay(client, tokens, teahouse["payload"], 1_234)).json()
    rows = await receipt_rows(client, tokens.resident(), payment["id"])
    assert "登録番号 / Registration No." not in rows and "返金 / Refunded" not in rows
    assert (rows["金額 / Amount"], rows["うちコイン / in coin"], rows["うちポイント / in points"]) == ("¥1,234", "¥1,234", "¥0")
    assert rows["所在地 / Address"]
    detail = (await client.get(f"/v1/payments/{payment['id']}", headers=tokens.resident())).json()
    assert detail["shop"]["invoice_registration_number"] is None and detail["coin_amount"] == 1_234


async def test_onboarding_takes_a_registration_number_and_a_null_clears_it(client, tokens, town):
    operator = tokens.operator()
    onboarded = await client.post(
        "/v1/merchants", json={**FARMER, "invoice_registration_number": "T2120901007402"}, headers=idem(operator)
    )
    assert onboarded.status_code == 201, onboarded.text
    merchant = onboarded.json()
    assert merchant["invoice_registration_number"] == "T2120901007402"
    renamed = await client.patch(f"/v1/merchants/{merchant['id']}", json={"name": "Bandai Orchard"}, headers=idem(operator))
    assert renamed.json()["invoice_registration_number"] == "T2120901007402"  # not sent: kept
    cleared = await client.patch(
        f"/v1/merchants/{merchant['id']}", json={"invoice_registration_number": None}, headers=idem(operator)
    )
    assert cleared.status_code == 200 and cleared.json()["invoice_registration_number"] is None
    assert cleared.json()["name"] == "Bandai Orchard"
    event = (await client.get("/v1/audit-events", headers=tokens.auditor())).json()["items"][0]
    assert event["action"] == "merchant.update"
    assert (event["before"]["invoice_registration_number"], event["after"]["invoice_registration_number"]) == (
        "T2120901007402", None
    )


BAD_NUMBERS = [
    ("wrong-check-digit", "T8123456789012", "invalid-registration-number"),
    ("swapped-digits", "T7213456789012", "invalid-registration-number"),
    ("lower-case-t", "t7123456789012", "validation-error"),
    ("no-t", "7123456789012", "validation-error"),
    ("twelve-digits", "T712345678901", "validation-error"),
    ("fourteen-digits", "T71234567890123", "validation-error"),
    ("check-digit-zero", "T0123456789012", "validation-error"),
    ("full-width", "Ｔ７１２３４５６７８９０１２", "validation-error"),
    ("hyphens", "T7-1234-5678-9012", "validation-error"),
    ("space", "T7123456789012 ", "validation-error"),
    ("a-number", 7123456789012, "validation-error"),
]


@pytest.mark.parametrize(("case", "number", "slug"), BAD_NUMBERS, ids=[c for c, _, _ in BAD_NUMBERS])
async def test_a_bad_registration_number_is_refused_and_changes_nothing(
    client, tokens, town, sessionmaker, case, number, slug
):
    operator = tokens.operator()
    teahouse = town.merchants[TEAHOUSE]
    shown = (await client.get(f"/v1/merchants/{teahouse}", headers=operator)).json()
    before = await snapshot(sessionmaker)
    onboarding = await client.post("/v1/merchants", json={**FARMER, "invoice_registration_number": number}, headers=idem(operator))
    problem = assert_problem(onboarding, 422, slug)
    if slug == "validation-error":
        assert any("invoice_registration_number" in e["loc"] for e in problem["errors"]), problem
    else:
        assert "check digit" in problem["detail"]
    editing = await client.patch(f"/v1/merchants/{teahouse}", json={"invoice_registration_number": number}, headers=idem(operator))
    assert_problem(editing, 422, slug)
    assert await snapshot(sessionmaker) == before
    assert (await client.get(f"/v1/merchants/{teahouse}", headers=operator)).json() == shown
