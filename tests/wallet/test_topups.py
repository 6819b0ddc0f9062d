"""Counter top-ups (チャージ) and cash-outs: the effect when valid, and nothing at all when not."""

from __future__ import annotations

import pytest

from tests.helpers import assert_problem, idem, ledger_violations, snapshot

HANAKO_OPENING = 30_000  # app.demo: resident-hanako's opening balance


async def wallet_of(client, tokens, subject="resident-hanako"):
    response = await client.get("/v1/wallet", headers=tokens.resident(subject))
    assert response.status_code == 200, response.text
    return response.json()


async def test_counter_topup_credits_wallet_and_records_one_balanced_journal(client, tokens, town, sessionmaker):
    wallet = await wallet_of(client, tokens)
    assert wallet["balance"] == HANAKO_OPENING

    response = await client.post(
        f"/v1/wallets/{wallet['id']}/topups", json={"amount": 3_000, "memo": "counter 2"},
        headers=idem(tokens.operator()),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["amount"] == 3_000
    assert body["balance_after"] == HANAKO_OPENING + 3_000
    assert (await wallet_of(client, tokens))["balance"] == HANAKO_OPENING + 3_000

    history = (await client.get("/v1/wallet/history", headers=tokens.resident())).json()["items"]
    assert [(h["kind"], h["amount"], h["balance_after"]) for h in history] == [
        ("topup", 3_000, HANAKO_OPENING + 3_000),
        ("topup", HANAKO_OPENING, HANAKO_OPENING),
    ]
    assert history[0]["journal_id"] == body["journal_id"] and history[0]["memo"] == "counter 2"

    # The counter's cash account mirrors what entered circulation; the ledger still verifies.
    accounts = {a["kind"]: a["balance"] for a in (await client.get("/v1/accounts", headers=tokens.operator())).json()}
    assert accounts["counter_cash"] == -(30_000 + 12_000 + 5_000 + 3_000)
    assert await ledger_violations(sessionmaker) == []


async def test_topup_is_in_the_audit_trail_with_who_what_and_where(client, tokens, town):
    wallet = await wallet_of(client, tokens)
    response = await client.post(
        f"/v1/wallets/{wallet['id']}/topups", json={"amount": 2_000},
        headers={**idem(tokens.operator()), "X-Request-ID": "req-topup-1"},
    )
    assert response.status_code == 201
    events = (await client.get("/v1/audit-events", headers=tokens.auditor())).json()["items"]
    latest = events[0]
    assert latest["action"] == "wallet.topup.counter"
    assert latest["actor_subject"] == "operator-aizu" and latest["actor_role"] == "operator"
    assert latest["target_id"] == wallet["id"]
    assert latest["after"]["amount"] == 2_000 and latest["after"]["balance_after"] == HANAKO_OPENING + 2_000
    assert latest["request_id"] == "req-topup-1"
    assert latest["source_address"] == "203.0.113.7"


BAD_AMOUNTS = [
    (0, 422, "validation-error"),
    (-1_000, 422, "validation-error"),
    ("100.5", 422, "validation-error"),
    (100.5, 422, "validation-error"),
    (1000.000001, 422, "validation-error"),
    ("1000", 422, "validation-error"),  # a string is not an amount, even if it looks like one
    ("abc", 422, "validation-error"),
    (True, 422, "validation-error"),
    (1_500, 422, "amount-not-multiple-of-step"),
    (500, 422, "amount-below-minimum"),
    (51_000, 422, "amount-above-maximum"),
]


@pytest.mark.parametrize(("amount", "status", "slug"), BAD_AMOUNTS, ids=[repr(a[0]) for a in BAD_AMOUNTS])
async def test_bad_topup_amount_is_refused_and_changes_nothing(client, tokens, town, sessionmaker, amount, status, slug):
    wallet = await wallet_of(client, tokens)
    before = await snapshot(sessionmaker)
    response = await client.post(
        f"/v1/wallets/{wallet['id']}/topups", json={"amount": amount}, headers=idem(tokens.operator())
    )
    assert_problem(response, status, slug)
    assert await snapshot(sessionmaker) == before


# Numbers with a fraction or an exponent, written as a client would send them: each is refused,
# however it rounds in floating point (999.99999999999999999 is the float 1000.0).
INEXACT = ["999.99999999999999999", "100.0000000000000001", "3000.0", "3e3", "3E+3", "1000e0", "-0.0"]


@pytest.mark.parametrize("number", INEXACT)
async def test_an_amount_with_a_fraction_or_exponent_is_refused_however_it_rounds(
    client, tokens, town, sessionmaker, number
):
    wallet = await wallet_of(client, tokens)
    before = await snapshot(sessionmaker)
    response = await client.post(
        f"/v1/wallets/{wallet['id']}/topups", content=f'{{"amount": {number}}}'.encode(),
        headers={**idem(tokens.operator()), "Content-Type": "application/json"},
    )
    assert assert_problem(response, 422, "validation-error")["errors"][0]["loc"] == ["body", "amount"]
    assert await snapshot(sessionmaker) == before


async def test_topup_past_the_balance_cap_is_refused_and_changes_nothing(client, tokens, town, sessionmaker):
    wallet = await wallet_of(client, tokens)
    for _ in range(7):  # 30,000 + 7 × 10,000 = 100,000: exactly the cap, allowed
        ok = await client.post(f"/v1/wallets/{wallet['id']}/topups", json={"amount": 10_000}, headers=idem(tokens.operator()))
        assert ok.status_code == 201, ok.text
    assert ok.json()["balance_after"] == 100_000
    before = await snapshot(sessionmaker)
    response = await client.post(
        f"/v1/wallets/{wallet['id']}/topups", json={"amount": 1_000}, headers=idem(tokens.operator())
    )
    body = assert_problem(response, 409, "balance-cap-exceeded")
    assert body["balance"] == 100_000 and body["balance_cap"] == 100_000
    assert await snapshot(sessionmaker) == before


async def test_topup_of_unknown_wallet_is_refused(client, tokens, town, sessionmaker):
    before = await snapshot(sessionmaker)
    response = await client.post(
        "/v1/wallets/01a209ce-0000-7000-8000-000000000000/topups", json={"amount": 1_000},
        headers=idem(tokens.operator()),
    )
    assert_problem(response, 404, "wallet-not-found")
    assert await snapshot(sessionmaker) == before


@pytest.mark.parametrize("status", ["suspended", "closed"])
async def test_topup_of_suspended_or_closed_wallet_is_refused(client, tokens, town, sessionmaker, status):
    wallet = await wallet_of(client, tokens)
    changed = await client.patch(f"/v1/wallets/{wallet['id']}", json={"status": status}, headers=idem(tokens.operator()))
    assert changed.status_code == 200 and changed.json()["status"] == status
    before = await snapshot(sessionmaker)
    response = await client.post(
        f"/v1/wallets/{wallet['id']}/topups", json={"amount": 1_000}, headers=idem(tokens.operator())
    )
    assert_problem(response, 409, "account-inactive")
    assert await snapshot(sessionmaker) == before


async def test_region_settings_change_the_rules_and_are_audited(client, tokens, town, sessionmaker):
    wallet = await wallet_of(client, tokens)
    changed = await client.patch(
        "/v1/region", json={"topup_step": 500, "topup_min": 500}, headers=idem(tokens.operator())
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["topup_step"] == 500
    ok = await client.post(f"/v1/wallets/{wallet['id']}/topups", json={"amount": 1_500}, headers=idem(tokens.operator()))
    assert ok.status_code == 201
    event = (await client.get("/v1/audit-events", headers=tokens.auditor())).json()["items"][1]
    assert event["action"] == "region.settings.update"
    assert event["before"]["topup_step"] == 1_000 and event["after"]["topup_step"] == 500

    before = await snapshot(sessionmaker)
    refused = await client.patch("/v1/region", json={"topup_min": 60_000}, headers=idem(tokens.operator()))
    assert_problem(refused, 422, "invalid-region-settings")
    assert await snapshot(sessionmaker) == before


async def test_cashout_returns_prepaid_value_to_the_bank_and_refuses_overdraft(client, tokens, town, sessionmaker):
    wallet = await wallet_of(client, tokens)
    out = await client.post(
        f"/v1/wallets/{wallet['id']}/cashouts", json={"amount": 10_000, "reason": "moving_away"},
        headers=idem(tokens.operator()),
    )
    assert out.status_code == 201, out.text
    assert out.json()["balance_after"] == HANAKO_OPENING - 10_000
    accounts = {a["kind"]: a["balance"] for a in (await client.get("/v1/accounts", headers=tokens.operator())).json()}
    assert accounts["bank_clearing"] == 10_000

    before = await snapshot(sessionmaker)
    refused = await client.post(
        f"/v1/wallets/{wallet['id']}/cashouts", json={"amount": 20_001, "reason": "moving_away"},
        headers=idem(tokens.operator()),
    )
    body = assert_problem(refused, 402, "insufficient-balance")
    assert body["balance"] == 20_000 and body["required"] == 20_001
    not_allowed = await client.post(
        f"/v1/wallets/{wallet['id']}/cashouts", json={"amount": 1_000, "reason": "changed_my_mind"},
        headers=idem(tokens.operator()),
    )
    assert_problem(not_allowed, 422, "validation-error")
    assert await snapshot(sessionmaker) == before
    assert await ledger_violations(sessionmaker) == []


async def test_malformed_json_is_refused_and_changes_nothing(client, tokens, town, sessionmaker):
    wallet = await wallet_of(client, tokens)
    before = await snapshot(sessionmaker)
    response = await client.post(
        f"/v1/wallets/{wallet['id']}/topups", content=b'{"amount": 1000',
        headers={**idem(tokens.operator()), "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "malformed-json")
    assert await snapshot(sessionmaker) == before


async def test_oversized_body_is_refused_and_changes_nothing(client, tokens, town, sessionmaker, settings):
    wallet = await wallet_of(client, tokens)
    before = await snapshot(sessionmaker)
    huge = b'{"amount": 1000, "memo": "' + b"x" * settings.max_body_bytes + b'"}'
    response = await client.post(
        f"/v1/wallets/{wallet['id']}/topups", content=huge,
        headers={**idem(tokens.operator()), "Content-Type": "application/json"},
    )
    assert_problem(response, 413, "payload-too-large")

    async def chunked():  # no Content-Length: the limit holds for streamed bodies too
        for _ in range(settings.max_body_bytes // 1024 + 2):
            yield b" " * 1024

    streamed = await client.post(
        f"/v1/wallets/{wallet['id']}/topups", content=chunked(),
        headers={**idem(tokens.operator()), "Content-Type": "application/json"},
    )
    assert_problem(streamed, 413, "payload-too-large")
    assert await snapshot(sessionmaker) == before


async def test_missing_idempotency_key_is_refused_and_changes_nothing(client, tokens, town, sessionmaker):
    wallet = await wallet_of(client, tokens)
    before = await snapshot(sessionmaker)
    response = await client.post(
        f"/v1/wallets/{wallet['id']}/topups", json={"amount": 1_000}, headers=tokens.operator()
    )
    assert_problem(response, 400, "idempotency-key-missing")
    assert await snapshot(sessionmaker) == before
