"""Invariant 6: a retry never moves money twice."""

from __future__ import annotations

import asyncio

from tests.helpers import assert_problem, idem, ledger_violations, snapshot


async def hanako(client, tokens):
    return (await client.get("/v1/wallet", headers=tokens.resident())).json()


async def test_same_key_same_body_returns_the_first_response_and_moves_money_once(client, tokens, town, sessionmaker):
    wallet = await hanako(client, tokens)
    headers = idem(tokens.operator(), "counter-receipt-0001")
    first = await client.post(f"/v1/wallets/{wallet['id']}/topups", json={"amount": 2_000}, headers=headers)
    assert first.status_code == 201
    after_first = await snapshot(sessionmaker)

    # Same body with other key order and spacing is the same request.
    again = await client.post(
        f"/v1/wallets/{wallet['id']}/topups", content=b'{ "amount" : 2000 }',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert again.status_code == 201
    assert again.content == first.content  # the stored first response, byte for byte
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await snapshot(sessionmaker) == after_first
    assert (await hanako(client, tokens))["balance"] == wallet["balance"] + 2_000


async def test_same_key_different_body_is_refused_and_changes_nothing(client, tokens, town, sessionmaker):
    wallet = await hanako(client, tokens)
    headers = idem(tokens.operator(), "counter-receipt-0002")
    assert (await client.post(f"/v1/wallets/{wallet['id']}/topups", json={"amount": 2_000}, headers=headers)).status_code == 201
    before = await snapshot(sessionmaker)
    response = await client.post(f"/v1/wallets/{wallet['id']}/topups", json={"amount": 3_000}, headers=headers)
    assert_problem(response, 422, "idempotency-key-reused")
    # The same key on another endpoint is another request too.
    other = await client.post(
        f"/v1/wallets/{wallet['id']}/cashouts", json={"amount": 2_000, "reason": "moving_away"}, headers=headers
    )
    assert_problem(other, 422, "idempotency-key-reused")
    assert await snapshot(sessionmaker) == before


async def test_keys_are_scoped_per_caller(client, tokens, town):
    wallet = await hanako(client, tokens)
    for operator in ("operator-a", "operator-b"):
        from shared.auth import Role

        headers = idem(tokens.mint(Role.OPERATOR, operator), "shared-key")
        response = await client.post(f"/v1/wallets/{wallet['id']}/topups", json={"amount": 1_000}, headers=headers)
        assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers
    assert (await hanako(client, tokens))["balance"] == wallet["balance"] + 2_000


async def test_a_refused_request_stores_no_key_so_a_corrected_retry_runs(client, tokens, town):
    wallet = await hanako(client, tokens)
    headers = idem(tokens.operator(), "counter-receipt-0003")
    refused = await client.post(f"/v1/wallets/{wallet['id']}/topups", json={"amount": 80_000}, headers=headers)
    assert_problem(refused, 422, "amount-above-maximum")
    # The region raises its maximum; the very same request now succeeds once.
    await client.patch("/v1/region", json={"topup_max": 80_000}, headers=idem(tokens.operator()))
    ok = await client.post(f"/v1/wallets/{wallet['id']}/topups", json={"amount": 80_000}, headers=headers)
    assert_problem(ok, 409, "balance-cap-exceeded")  # 30,000 + 80,000 > 100,000: rules still apply
    ok = await client.post(f"/v1/wallets/{wallet['id']}/topups", json={"amount": 70_000}, headers=idem(tokens.operator()))
    assert ok.status_code == 201 and ok.json()["balance_after"] == 100_000


async def test_the_same_request_fired_concurrently_has_exactly_one_effect(client, tokens, town, sessionmaker):
    wallet = await hanako(client, tokens)
    headers = idem(tokens.operator(), "double-tap")
    responses = await asyncio.gather(
        *[client.post(f"/v1/wallets/{wallet['id']}/topups", json={"amount": 5_000}, headers=headers) for _ in range(20)]
    )
    assert [r.status_code for r in responses] == [201] * 20
    assert len({r.json()["journal_id"] for r in responses}) == 1
    assert sum(1 for r in responses if "Idempotent-Replayed" not in r.headers) == 1
    assert (await hanako(client, tokens))["balance"] == wallet["balance"] + 5_000
    history = (await client.get("/v1/wallet/history", headers=tokens.resident())).json()["items"]
    assert len(history) == 2  # the opening top-up and this one
    assert await ledger_violations(sessionmaker) == []


async def test_a_body_naming_a_key_twice_is_refused_and_changes_nothing(client, tokens, town, sessionmaker):
    """{"amount": 1000, "amount": 50000}: one reader would see ¥1,000, another ¥50,000."""
    wallet = await hanako(client, tokens)
    before = await snapshot(sessionmaker)
    for body in (b'{"amount": 1000, "amount": 50000}', b'{"amount": 1000, "memo": "a", "memo": "b"}'):
        refused = await client.post(
            f"/v1/wallets/{wallet['id']}/topups", content=body,
            headers={**idem(tokens.operator()), "Content-Type": "application/json"},
        )
        assert assert_problem(refused, 400, "duplicate-json-key")["keys"] in (["amount"], ["memo"])
    nested = await client.post(
        "/v1/campaigns", content=b'{"kind": "reward", "name": "A", "name_ja": "A", "reward_rates": '
        b'[{"merchant_class": "shotengai", "rate_bp": 100, "rate_bp": 9000}]}',
        headers={**idem(tokens.operator()), "Content-Type": "application/json"},
    )
    assert assert_problem(nested, 400, "duplicate-json-key")["keys"] == ["rate_bp"]
    assert await snapshot(sessionmaker) == before


async def test_two_idempotency_key_headers_are_refused_and_change_nothing(client, tokens, town, sessionmaker):
    wallet = await hanako(client, tokens)
    before = await snapshot(sessionmaker)
    headers = [*tokens.operator().items(), ("Idempotency-Key", "key-a"), ("Idempotency-Key", "key-b")]
    refused = await client.post(f"/v1/wallets/{wallet['id']}/topups", json={"amount": 1_000}, headers=headers)
    assert_problem(refused, 400, "idempotency-key-repeated")
    assert await snapshot(sessionmaker) == before
