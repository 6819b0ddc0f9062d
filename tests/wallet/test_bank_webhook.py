"""Top-up by the bank through its HMAC-signed webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest

from tests.helpers import assert_problem, ledger_violations, snapshot

URL = "/v1/webhooks/bank/topups"


def signed(settings, clock, event: dict, *, secret: str | None = None, at=None) -> tuple[bytes, dict[str, str]]:
    return sign(settings, clock, json.dumps(event).encode(), secret=secret, at=at)


def sign(settings, clock, body: bytes, *, secret: str | None = None, at=None) -> tuple[bytes, dict[str, str]]:
    """The body as sent, with the bank's headers signing exactly these bytes."""
    timestamp = str(int((at or clock.now()).timestamp()))
    digest = hmac.new((secret or settings.bank_webhook_secret).encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return body, {
        "Content-Type": "application/json",
        "X-Chiikipay-Timestamp": timestamp,
        "X-Chiikipay-Signature": "sha256=" + digest.hexdigest(),
    }


@pytest.fixture
async def hanako(client, tokens, town):
    return (await client.get("/v1/wallet", headers=tokens.resident())).json()


def event(wallet_id: str, amount=5_000, event_id="bank-evt-1") -> dict:
    return {"event_id": event_id, "wallet_id": wallet_id, "amount": amount, "occurred_at": "2026-04-01T00:29:00Z"}


async def test_signed_bank_event_tops_up_the_wallet_against_bank_clearing(client, tokens, hanako, settings, clock, sessionmaker):
    body, headers = signed(settings, clock, event(hanako["id"]))
    response = await client.post(URL, content=body, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["balance_after"] == hanako["balance"] + 5_000
    history = (await client.get("/v1/wallet/history", headers=tokens.resident())).json()["items"]
    assert history[0]["kind"] == "topup" and history[0]["reference"] == "bank-evt-1"
    accounts = {a["kind"]: a["balance"] for a in (await client.get("/v1/accounts", headers=tokens.operator())).json()}
    assert accounts["bank_clearing"] == -5_000
    assert await ledger_violations(sessionmaker) == []


async def test_replayed_event_id_moves_no_money(client, hanako, settings, clock, sessionmaker):
    body, headers = signed(settings, clock, event(hanako["id"]))
    assert (await client.post(URL, content=body, headers=headers)).status_code == 201
    before = await snapshot(sessionmaker)
    clock.advance(timedelta(seconds=30))
    body, headers = signed(settings, clock, event(hanako["id"]))  # freshly signed, same event id
    assert_problem(await client.post(URL, content=body, headers=headers), 409, "webhook-replayed")
    assert await snapshot(sessionmaker) == before


async def test_bad_signature_is_refused_and_changes_nothing(client, hanako, settings, clock, sessionmaker):
    before = await snapshot(sessionmaker)
    body, headers = signed(settings, clock, event(hanako["id"]), secret="not-the-bank")
    assert_problem(await client.post(URL, content=body, headers=headers), 401, "webhook-signature-invalid")
    # A body altered after signing fails too.
    body, headers = signed(settings, clock, event(hanako["id"]))
    tampered = body.replace(b"5000", b"9000")
    assert_problem(await client.post(URL, content=tampered, headers=headers), 401, "webhook-signature-invalid")
    assert await snapshot(sessionmaker) == before


async def test_stale_or_future_timestamp_is_refused_and_changes_nothing(client, hanako, settings, clock, sessionmaker):
    before = await snapshot(sessionmaker)
    tolerance = timedelta(seconds=settings.bank_webhook_tolerance_seconds + 1)
    for at in (clock.now() - tolerance, clock.now() + tolerance):
        body, headers = signed(settings, clock, event(hanako["id"]), at=at)
        assert_problem(await client.post(URL, content=body, headers=headers), 401, "webhook-timestamp-stale")
    body, headers = signed(settings, clock, event(hanako["id"]))
    headers["X-Chiikipay-Timestamp"] = "yesterday"
    assert_problem(await client.post(URL, content=body, headers=headers), 401, "webhook-timestamp-stale")
    assert await snapshot(sessionmaker) == before


async def test_bank_event_for_unknown_wallet_or_bad_amount_changes_nothing(client, hanako, settings, clock, sessionmaker):
    before = await snapshot(sessionmaker)
    body, headers = signed(settings, clock, event("01a209ce-0000-7000-8000-000000000000"))
    assert_problem(await client.post(URL, content=body, headers=headers), 404, "wallet-not-found")
    body, headers = signed(settings, clock, event(hanako["id"], amount=1_234))
    assert_problem(await client.post(URL, content=body, headers=headers), 422, "amount-not-multiple-of-step")
    body, headers = signed(settings, clock, event(hanako["id"], amount="5000.5"))
    assert_problem(await client.post(URL, content=body, headers=headers), 422, "validation-error")
    assert await snapshot(sessionmaker) == before
