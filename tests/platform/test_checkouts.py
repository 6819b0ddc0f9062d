"""Online checkouts, end to end, with a partner service simulated by the tests: its API calls, and
its webhook endpoint, a real HTTP server that verifies each request by the documented example."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text

from clients.verify_webhook import InvalidWebhook, verify
from services.platform import jobs as platform_jobs
from services.platform.checkouts import service as checkouts
from shared.webhooks import signature
from tests.helpers import assert_problem, idem, ledger_violations, snapshot
from tests.platform.conftest import POLICY, SHOP, deliver, register
from tests.platform.partner_app import PartnerApp

HANAKO = "resident-hanako"


async def _create(client, partner, **order) -> dict:
    response = await client.post("/v1/platform/checkouts", json=partner.order(**order), headers=idem(partner.key))
    assert response.status_code == 201, response.text
    return response.json()


async def _balance(client, tokens, subject=HANAKO) -> int:
    response = await client.get("/v1/wallet/balance", headers=tokens.resident(subject))
    assert response.status_code == 200
    return response.json()["usable"]["yen"]


async def _payments(sessionmaker) -> int:
    async with sessionmaker() as session:
        return (await session.execute(text("SELECT count(*) FROM wallet.payments"))).scalar_one()


async def test_a_partner_is_paid_notified_and_refunds(client, tokens, sessionmaker, clock, partner, town):
    made = await _create(client, partner)
    assert made["status"] == "open" and made["app_link"] == f"chiikipay://checkout/{made['id']}"
    assert made["callback_url"] == f"http://127.0.0.1:{partner.app.port}/webhooks"

    # The resident opens the link: the partner, the amount, their balance.
    shown = await client.get(f"/v1/me/checkouts/{made['id']}", headers=tokens.resident())
    assert shown.status_code == 200, shown.text
    view = shown.json()
    assert (view["partner_name"], view["merchant_name_ja"], view["amount"]) == ("会津オンライン診療", "鶴ヶ城茶屋", 1_800)
    assert view["balance_yen"] == await _balance(client, tokens) == 30_000

    approve = idem(tokens.resident())
    approved = await client.post(f"/v1/me/checkouts/{made['id']}/approve", headers=approve)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "paid" and approved.json()["return_url"] == partner.order()["success_url"]
    assert approved.json()["balance_yen"] == 28_200
    replayed = await client.post(f"/v1/me/checkouts/{made['id']}/approve", headers=approve)
    assert replayed.json() == approved.json() and await _payments(sessionmaker) == 1

    polled = (await client.get(f"/v1/platform/checkouts/{made['id']}", headers=partner.key)).json()
    assert polled["status"] == "paid"
    # An ordinary payment to the partner's merchant: its fee, its receipt.
    payment = await client.get(f"/v1/payments/{polled['payment_id']}", headers=tokens.merchant_admin(partner.merchant_id))
    assert payment.status_code == 200
    assert payment.json()["merchant_id"] == partner.merchant_id and payment.json()["amount"] == 1_800
    assert payment.json()["fee"] == 36  # 2 %

    await deliver(sessionmaker, clock)
    (paid,) = partner.app.events
    assert paid["type"] == "checkout.paid" and paid["data"]["checkout_id"] == made["id"]
    assert paid["data"]["payment_id"] == polled["payment_id"] and paid["data"]["order_reference"] == "order-1001"

    part = await client.post(f"/v1/platform/checkouts/{made['id']}/refunds", json={"amount": 800, "reason": "一部返金"},
                             headers=idem(partner.key))
    assert part.status_code == 201, part.text
    assert (part.json()["amount"], part.json()["refunded"]) == (800, 800)
    rest = await client.post(f"/v1/platform/checkouts/{made['id']}/refunds", json={"amount": 1_000},
                             headers=idem(partner.key))
    assert rest.status_code == 201 and rest.json()["refunded"] == 1_800
    assert await _balance(client, tokens) == 30_000

    await deliver(sessionmaker, clock)
    assert [e["type"] for e in partner.app.events] == ["checkout.paid", "checkout.refunded", "checkout.refunded"]
    assert [e["data"]["refund"]["amount"] for e in partner.app.events[1:]] == [800, 1_000]
    assert partner.app.events[2]["data"]["refunded"] == 1_800
    assert all(d.verified for d in partner.app.deliveries) and len(partner.app.deliveries) == 3
    assert await ledger_violations(sessionmaker) == []


async def test_two_approvals_at_once_pay_once(client, tokens, sessionmaker, clock, partner):
    made = await _create(client, partner)
    answers = await asyncio.gather(*(
        client.post(f"/v1/me/checkouts/{made['id']}/approve", headers=idem(tokens.resident(subject)))
        for subject in (HANAKO, "resident-taro", HANAKO, "resident-taro")
    ))
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]
    for refused in (a for a in answers if a.status_code == 409):
        assert_problem(refused, 409, "checkout-already-paid")
    assert await _payments(sessionmaker) == 1
    async with sessionmaker() as session:
        events = (await session.execute(text("SELECT event_type FROM platform.outbox_events"))).scalars().all()
    assert events == ["checkout.paid"]
    assert await ledger_violations(sessionmaker) == []


async def _refused(client, sessionmaker, request, status: int, slug: str) -> dict:
    """The request is refused with the problem, and nothing anywhere changed."""
    before = await snapshot(sessionmaker)
    body = assert_problem(await request(), status, slug)
    assert await snapshot(sessionmaker) == before
    return body


async def test_a_checkout_past_its_expiry_is_refused_then_swept_and_announced(client, tokens, sessionmaker, clock, partner):
    made = await _create(client, partner, expires_in_seconds=600)
    clock.advance(timedelta(seconds=600))
    for action in ("approve", "decline"):
        await _refused(client, sessionmaker, lambda action=action: client.post(
            f"/v1/me/checkouts/{made['id']}/{action}", headers=idem(tokens.resident())), 409, "checkout-expired")
    await _refused(client, sessionmaker, lambda: client.post(
        f"/v1/platform/checkouts/{made['id']}/cancel", headers=idem(partner.key)), 409, "checkout-expired")

    async with httpx.AsyncClient() as http:  # the server's worker: the sweep, then the deliveries
        await platform_jobs.tick(sessionmaker, clock, http, POLICY)
        await platform_jobs.tick(sessionmaker, clock, http, POLICY)
    assert [(e["type"], e["data"]["status"]) for e in partner.app.events] == [("checkout.expired", "expired")]
    async with sessionmaker() as session, session.begin():
        assert await checkouts.expire_due(session, clock) == []  # once
    await _refused(client, sessionmaker, lambda: client.post(
        f"/v1/me/checkouts/{made['id']}/approve", headers=idem(tokens.resident())), 409, "checkout-expired")


async def test_a_paid_checkout_cannot_be_paid_again_or_cancelled(client, tokens, sessionmaker, partner):
    made = await _create(client, partner)
    assert (await client.post(f"/v1/me/checkouts/{made['id']}/approve", headers=idem(tokens.resident()))).status_code == 200
    await _refused(client, sessionmaker, lambda: client.post(
        f"/v1/me/checkouts/{made['id']}/approve", headers=idem(tokens.resident("resident-taro"))), 409, "checkout-already-paid")
    await _refused(client, sessionmaker, lambda: client.post(
        f"/v1/platform/checkouts/{made['id']}/cancel", headers=idem(partner.key)), 409, "checkout-already-paid")
    await _refused(client, sessionmaker, lambda: client.post(
        f"/v1/platform/checkouts/{made['id']}/refunds", json={"amount": 1_801}, headers=idem(partner.key)),
        409, "refund-exceeds-remaining")


async def test_a_cancelled_checkout_cannot_be_paid(client, tokens, sessionmaker, clock, partner):
    made = await _create(client, partner)
    cancelled = await client.post(f"/v1/platform/checkouts/{made['id']}/cancel", headers=idem(partner.key))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    await _refused(client, sessionmaker, lambda: client.post(
        f"/v1/me/checkouts/{made['id']}/approve", headers=idem(tokens.resident())), 409, "checkout-cancelled")
    await _refused(client, sessionmaker, lambda: client.post(
        f"/v1/platform/checkouts/{made['id']}/refunds", json={"amount": 100}, headers=idem(partner.key)),
        409, "checkout-not-paid")
    await deliver(sessionmaker, clock)
    assert [e["type"] for e in partner.app.events] == ["checkout.cancelled"]


async def test_a_resident_who_declines_pays_nothing_and_the_partner_is_told(client, tokens, sessionmaker, clock, partner):
    made = await _create(client, partner)
    declined = await client.post(f"/v1/me/checkouts/{made['id']}/decline", headers=idem(tokens.resident()))
    assert declined.status_code == 200
    assert declined.json()["status"] == "declined" and declined.json()["return_url"] == partner.order()["cancel_url"]
    assert await _balance(client, tokens) == 30_000 and await _payments(sessionmaker) == 0
    await _refused(client, sessionmaker, lambda: client.post(
        f"/v1/me/checkouts/{made['id']}/approve", headers=idem(tokens.resident())), 409, "checkout-declined")
    await deliver(sessionmaker, clock)
    assert [(e["type"], e["data"]["status"]) for e in partner.app.events] == [("checkout.declined", "declined")]


async def test_a_payment_the_wallet_refuses_leaves_the_checkout_open(client, tokens, sessionmaker, partner):
    made = await _create(client, partner, amount=5_001)
    await _refused(client, sessionmaker, lambda: client.post(
        f"/v1/me/checkouts/{made['id']}/approve", headers=idem(tokens.resident("resident-sachiko"))), 402,
        "insufficient-balance")
    assert (await client.get(f"/v1/platform/checkouts/{made['id']}", headers=partner.key)).json()["status"] == "open"


@pytest.mark.parametrize("field, url", [
    ("success_url", "https://evil.example/done"),
    ("cancel_url", "http://127.0.0.1:1/shop/cancelled"),  # another port
    ("success_url", "{base}ping/done"),  # /shopping is not under /shop
    ("callback_url", "https://evil.example/webhooks"),
])
async def test_a_url_off_the_partners_list_is_refused(client, sessionmaker, partner, field, url):
    url = url.format(base=partner.base)
    body = await _refused(client, sessionmaker, lambda: client.post(
        "/v1/platform/checkouts", json=partner.order(**{field: url}), headers=idem(partner.key)), 422, "url-not-allowed")
    assert (body["field"], body["url"]) == (field, url)


async def test_a_partner_cannot_refund_or_see_another_partners_checkout(client, tokens, sessionmaker, town, clock, partner):
    other_app = PartnerApp("", now=lambda: clock.now().timestamp()).start()
    try:
        other = await register(client, tokens, town.merchants["Minato Farm"], "会津ファームマーケット", other_app)
        made = await _create(client, partner)
        assert (await client.post(f"/v1/me/checkouts/{made['id']}/approve", headers=idem(tokens.resident()))).status_code == 200
        await _refused(client, sessionmaker, lambda: client.post(
            f"/v1/platform/checkouts/{made['id']}/refunds", json={"amount": 100}, headers=idem(other.key)),
            404, "checkout-not-found")
        await _refused(client, sessionmaker, lambda: client.post(
            f"/v1/platform/checkouts/{made['id']}/cancel", headers=idem(other.key)), 404, "checkout-not-found")
        assert_problem(await client.get(f"/v1/platform/checkouts/{made['id']}", headers=other.key), 404, "checkout-not-found")
    finally:
        other_app.stop()


async def test_a_revoked_or_rotated_key_is_refused(client, tokens, sessionmaker, partner):
    made = await _create(client, partner)
    rotated = await client.post(f"/v1/platform/partners/{partner.id}/api-key", headers=idem(tokens.operator()))
    assert rotated.status_code == 200
    new_key = {"X-API-Key": rotated.json()["api_key"]}
    await _refused(client, sessionmaker, lambda: client.post(
        "/v1/platform/checkouts", json=partner.order(), headers=idem(partner.key)), 401, "invalid-token")
    assert (await client.get(f"/v1/platform/checkouts/{made['id']}", headers=new_key)).status_code == 200

    revoked = await client.post(f"/v1/platform/partners/{partner.id}/revoke", headers=idem(tokens.operator()))
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    await _refused(client, sessionmaker, lambda: client.post(
        "/v1/platform/checkouts", json=partner.order(), headers=idem(new_key)), 401, "invalid-token")
    await _refused(client, sessionmaker, lambda: client.post(
        f"/v1/me/checkouts/{made['id']}/approve", headers=idem(tokens.resident())), 409, "partner-revoked")
    # A partner's key opens the checkout routes only, and no other key or token opens them.
    assert_problem(await client.get("/v1/wallet/balance", headers=new_key), 401, "invalid-token")
    assert_problem(await client.get("/v1/platform/checkouts", headers=tokens.operator()), 403, "forbidden")


async def test_registering_refuses_bad_callback_urls_and_a_taken_name(client, tokens, sessionmaker, town, partner):
    merchant_id = town.merchants[SHOP]
    for urls in (["http://shop.example/webhooks"], ["https://user:pw@shop.example/"], ["https://shop.example/#x"]):
        await _refused(client, sessionmaker, lambda urls=urls: client.post(
            "/v1/platform/partners", headers=idem(tokens.operator()),
            json={"name": "会津観光予約", "merchant_id": merchant_id, "callback_urls": urls}), 422, "callback-url-invalid")
    await _refused(client, sessionmaker, lambda: client.post(
        "/v1/platform/partners", headers=idem(tokens.operator()),
        json={"name": "会津オンライン診療", "merchant_id": merchant_id, "callback_urls": ["https://shop.example/"]}),
        409, "partner-name-taken")


async def test_the_partners_verification_example_refuses_forged_and_stale_webhooks(
    client, tokens, sessionmaker, clock, partner
):
    made = await _create(client, partner)
    await client.post(f"/v1/platform/checkouts/{made['id']}/cancel", headers=idem(partner.key))
    await deliver(sessionmaker, clock)
    (genuine,) = partner.app.deliveries
    timestamp, sent = genuine.headers["X-Chiikipay-Timestamp"], genuine.headers["X-Chiikipay-Signature"]
    now = clock.now().timestamp()
    verify(partner.app.secret, timestamp, sent, genuine.body, now=now)  # the genuine one verifies
    assert sent == signature(partner.app.secret, timestamp, genuine.body)  # the one scheme (shared/webhooks.py)

    forged_body = genuine.body.replace(b'"cancelled"', b'"paid"')
    for secret, stamp, sig, body, at in [
        (partner.app.secret, timestamp, sent, forged_body, now),  # the body changed
        ("whsec_guessed", timestamp, signature("whsec_guessed", timestamp, forged_body), forged_body, now),  # another secret
        (partner.app.secret, str(int(timestamp) - 1), sent, genuine.body, now),  # the timestamp moved
        (partner.app.secret, timestamp, sent, genuine.body, now + 301),  # replayed later: stale
        (partner.app.secret, "yesterday", sent, genuine.body, now),
    ]:
        with pytest.raises(InvalidWebhook):
            verify(partner.app.secret, stamp, sig, body, now=at)

    # Sent to the partner's endpoint, a forged event is answered 400 and changes nothing there.
    events_before = list(partner.app.events)
    async with httpx.AsyncClient() as http:
        forged = await http.post(partner.app.url, content=forged_body, headers={
            "X-Chiikipay-Event-Id": json.loads(forged_body)["id"], "X-Chiikipay-Timestamp": timestamp,
            "X-Chiikipay-Signature": signature("whsec_guessed", timestamp, forged_body),
        })
    assert forged.status_code == 400 and partner.app.events == events_before

    # After the operator rotates the signing secret, events are signed with the new one.
    rotated = await client.post(f"/v1/platform/partners/{partner.id}/signing-secret", headers=idem(tokens.operator()))
    assert rotated.status_code == 200
    old_secret, partner.app.secret = partner.app.secret, rotated.json()["signing_secret"]
    second = await _create(client, partner)
    await client.post(f"/v1/platform/checkouts/{second['id']}/cancel", headers=idem(partner.key))
    await deliver(sessionmaker, clock)
    last = partner.app.deliveries[-1]
    assert last.verified and partner.app.events[-1]["data"]["checkout_id"] == second["id"]
    with pytest.raises(InvalidWebhook):
        verify(old_secret, last.headers["X-Chiikipay-Timestamp"], last.headers["X-Chiikipay-Signature"], last.body,
               now=now)


async def test_a_refund_the_shop_makes_itself_is_the_checkouts_too(client, tokens, sessionmaker, clock, partner):
    """The payment is the shop's like any other: refunded at the wallet's own refund endpoint, the
    checkout keeps the total and the partner is told."""
    made = await _create(client, partner)
    await client.post(f"/v1/me/checkouts/{made['id']}/approve", headers=idem(tokens.resident()))
    payment_id = (await client.get(f"/v1/platform/checkouts/{made['id']}", headers=partner.key)).json()["payment_id"]
    by_shop = await client.post(f"/v1/payments/{payment_id}/refunds", json={"amount": 500},
                                headers=idem(tokens.merchant_staff(partner.merchant_id)))
    assert by_shop.status_code == 201, by_shop.text
    assert (await client.get(f"/v1/platform/checkouts/{made['id']}", headers=partner.key)).json()["refunded"] == 500
    await deliver(sessionmaker, clock)
    assert [(e["type"], e["data"]["refunded"]) for e in partner.app.events] == [("checkout.paid", 0), ("checkout.refunded", 500)]
    assert partner.app.events[1]["data"]["refund"]["amount"] == 500


async def test_the_operator_replaces_a_partners_allowed_urls(client, tokens, sessionmaker, partner):
    before = await _create(client, partner)
    moved = await client.put(f"/v1/platform/partners/{partner.id}/callback-urls", headers=idem(tokens.operator()),
                             json={"callback_urls": ["https://clinic.example/chiikipay"]})
    assert moved.status_code == 200 and moved.json()["callback_urls"] == ["https://clinic.example/chiikipay"]
    await _refused(client, sessionmaker, lambda: client.post(
        "/v1/platform/checkouts", json=partner.order(), headers=idem(partner.key)), 422, "url-not-allowed")
    made = await client.post("/v1/platform/checkouts", headers=idem(partner.key), json=partner.order(
        success_url="https://clinic.example/chiikipay/done", cancel_url="https://clinic.example/chiikipay/no"))
    assert made.status_code == 201 and made.json()["callback_url"] == "https://clinic.example/chiikipay"
    # The checkout made before keeps where its webhooks go.
    kept = (await client.get(f"/v1/platform/checkouts/{before['id']}", headers=partner.key)).json()
    assert kept["callback_url"] == before["callback_url"]
    await _refused(client, sessionmaker, lambda: client.put(
        f"/v1/platform/partners/{partner.id}/callback-urls", headers=idem(tokens.operator()),
        json={"callback_urls": ["http://clinic.example/"]}), 422, "callback-url-invalid")
