"""The outbox: an event exists if and only if its change committed, reaches its destination
signed, in order per stream, once at the receiver (by its event id) however often it is sent:
with the receiver down and back, after every attempt failed and the operator re-sent it, and
with a worker killed mid-delivery."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text

from services.platform.outbox import public as outbox
from services.platform.outbox import tasks
from services.platform.outbox.models import EventStatus
from services.platform.outbox.service import RetryPolicy
from services.wallet import public as wallet
from shared.clock import SystemClock
from tests.helpers import assert_problem, idem, snapshot
from tests.platform.partner_app import PartnerApp

KIND = "test_partner"
SECRET = "whsec_test-outbox-secret"
POLICY = RetryPolicy(max_attempts=3, backoff_seconds=2, backoff_cap_seconds=60, timeout_seconds=5)


@pytest.fixture(scope="module", autouse=True)
def destination():
    async def sign(session, message: outbox.Message) -> str | None:
        return None if message.destination.key == "withdrawn" else SECRET

    outbox.register_destination(KIND, sign)


@pytest.fixture
def partner(clock):
    receiver = PartnerApp(SECRET, now=lambda: clock.now().timestamp()).start()
    yield receiver
    receiver.stop()


async def _enqueue(sessionmaker, clock, region_id, url, stream, event_type, key="p1", **payload):
    async with sessionmaker() as session, session.begin():
        return await outbox.enqueue(
            session, clock, region_id=region_id, event_type=event_type, stream=stream,
            destination=outbox.Destination(KIND, key, url), payload=payload,
        )


async def _region(sessionmaker) -> uuid.UUID:
    async with sessionmaker() as session:
        return await wallet.region_id(session, region="aizu")


async def _status(sessionmaker, event_id):
    async with sessionmaker() as session:
        return (await session.execute(text("SELECT status, attempts, last_error FROM platform.outbox_events "
                                           "WHERE id = :id"), {"id": event_id})).one()


async def test_an_event_of_a_rolled_back_change_is_never_written(sessionmaker, clock, town, partner):
    region_id = await _region(sessionmaker)
    async with sessionmaker() as session:
        await outbox.enqueue(session, clock, region_id=region_id, event_type="checkout.paid", stream="s",
                             destination=outbox.Destination(KIND, "p1", partner.url), payload={})
        await session.rollback()
    async with httpx.AsyncClient() as http:
        assert await tasks.deliver_all_due(sessionmaker, clock, http, POLICY) == []
    assert partner.deliveries == []


async def test_every_event_arrives_once_in_order_per_stream_after_the_receiver_was_down(sessionmaker, clock, town, partner):
    region_id = await _region(sessionmaker)
    partner.stop()  # down
    a = [await _enqueue(sessionmaker, clock, region_id, partner.url, "checkout:a", t, n=i)
         for i, t in enumerate(["checkout.paid", "checkout.refunded", "checkout.refunded"])]
    b = [await _enqueue(sessionmaker, clock, region_id, partner.url, "checkout:b", t)
         for t in ["checkout.paid", "checkout.cancelled"]]
    async with httpx.AsyncClient() as http:
        made = await tasks.deliver_all_due(sessionmaker, clock, http, POLICY)
        # Only each stream's first event was tried: the others wait behind it.
        assert sorted(m.event_id for m in made) == sorted([a[0], b[0]])
        assert {m.status for m in made} == {EventStatus.PENDING}
        status, attempts, error = await _status(sessionmaker, a[0])
        assert (status, attempts) == ("pending", 1) and "ConnectError" in error
        # Not due again before its back-off.
        assert await tasks.deliver_all_due(sessionmaker, clock, http, POLICY) == []
        partner.start()  # back, on the same port
        clock.advance(timedelta(seconds=2))
        await tasks.deliver_all_due(sessionmaker, clock, http, POLICY)
    assert [e["id"] for e in partner.events if e["id"] in map(str, a)] == [str(i) for i in a]
    assert [e["id"] for e in partner.events if e["id"] in map(str, b)] == [str(i) for i in b]
    assert len(partner.deliveries) == 5 and all(d.verified for d in partner.deliveries)
    first = partner.deliveries[0]
    assert first.headers["X-Chiikipay-Event-Id"] == partner.events[0]["id"]
    assert first.headers["X-Chiikipay-Event-Type"] == partner.events[0]["type"]
    for event_id in a + b:
        assert (await _status(sessionmaker, event_id))[0] == "delivered"


async def test_a_failed_event_holds_its_stream_until_the_operator_resends_it(
    client, tokens, sessionmaker, clock, town, partner
):
    region_id = await _region(sessionmaker)
    partner.answer = 503
    first = await _enqueue(sessionmaker, clock, region_id, partner.url, "checkout:c", "checkout.paid")
    second = await _enqueue(sessionmaker, clock, region_id, partner.url, "checkout:c", "checkout.refunded")
    async with httpx.AsyncClient() as http:
        for _ in range(POLICY.max_attempts):
            await tasks.deliver_all_due(sessionmaker, clock, http, POLICY)
            clock.advance(timedelta(seconds=60))
        assert (await _status(sessionmaker, first))[:2] == ("failed", 3)
        assert (await _status(sessionmaker, second))[:2] == ("pending", 0)  # never tried: held back

        failed = await client.get("/v1/platform/outbox?status=failed", headers=tokens.auditor())
        assert failed.status_code == 200
        (shown,) = failed.json()["items"]
        assert shown["id"] == str(first) and shown["last_status"] == 503 and shown["last_error"].startswith("HTTP 503")

        # A pending event is on its way: re-sending it is refused, and changes nothing.
        before = await snapshot(sessionmaker)
        refused = await client.post(f"/v1/platform/outbox/{second}/resend", headers=idem(tokens.operator()))
        assert_problem(refused, 409, "outbox-event-pending")
        assert await snapshot(sessionmaker) == before
        missing = await client.post(f"/v1/platform/outbox/{uuid.uuid4()}/resend", headers=idem(tokens.operator()))
        assert_problem(missing, 404, "outbox-event-not-found")
        assert await snapshot(sessionmaker) == before

        partner.answer = 200
        resent = await client.post(f"/v1/platform/outbox/{first}/resend", headers=idem(tokens.operator()))
        assert resent.status_code == 200 and resent.json()["status"] == "pending" and resent.json()["attempts"] == 0
        await tasks.deliver_all_due(sessionmaker, clock, http, POLICY)
    assert partner.event_ids() == [str(first), str(second)]
    assert (await _status(sessionmaker, second))[0] == "delivered"


async def test_an_event_its_destination_withdrew_is_never_sent(client, tokens, sessionmaker, clock, town, partner):
    region_id = await _region(sessionmaker)
    withdrawn = await _enqueue(sessionmaker, clock, region_id, partner.url, "results:r", "payment.result", key="withdrawn")
    after = await _enqueue(sessionmaker, clock, region_id, partner.url, "results:r", "payment.result")
    async with httpx.AsyncClient() as http:
        await tasks.deliver_all_due(sessionmaker, clock, http, POLICY)
    assert partner.event_ids() == [str(after)]  # the stream goes on past it
    assert (await _status(sessionmaker, withdrawn))[0] == "withdrawn"
    before = await snapshot(sessionmaker)
    refused = await client.post(f"/v1/platform/outbox/{withdrawn}/resend", headers=idem(tokens.operator()))
    assert_problem(refused, 409, "outbox-event-withdrawn")
    assert await snapshot(sessionmaker) == before


async def test_a_worker_killed_mid_delivery_loses_nothing_and_the_receiver_sees_the_event_once(
    settings, sessionmaker, clock, town, tmp_path
):
    """`chiikipay webhooks deliver` is killed (SIGKILL) while the receiver holds its request,
    after the receiver has processed the event: the event stays pending, is sent again by the
    next worker, and the receiver's deduplication by event id keeps its effect single."""
    hold = threading.Event()
    partner = PartnerApp(SECRET, now=time.time, hold=hold).start()  # the CLI signs with the real clock
    try:
        region_id = await _region(sessionmaker)
        event_id = await _enqueue(sessionmaker, clock, region_id, partner.url, "checkout:k", "checkout.paid")
        env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
               "DATA_DIR": str(tmp_path)}
        worker = subprocess.Popen(
            [sys.executable, "-c", WORKER], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        try:
            assert await asyncio.to_thread(partner.received.wait, 60), worker.stderr.read1() if worker.poll() else ""
            assert partner.event_ids() == [str(event_id)]  # processed by the receiver …
            os.kill(worker.pid, signal.SIGKILL)  # … and the worker dies before it hears the answer
            worker.wait(10)
        finally:
            hold.set()
            if worker.poll() is None:
                worker.kill()
        assert (await _status(sessionmaker, event_id))[:2] == ("pending", 0)  # its attempt rolled back
        partner.hold = None
        async with httpx.AsyncClient() as http:
            for _ in range(50):  # the killed worker's connection is gone once PostgreSQL notices it
                made = await tasks.deliver_all_due(sessionmaker, SystemClock(), http, POLICY)  # the next worker
                if made:
                    break
                await asyncio.sleep(0.1)
        assert (await _status(sessionmaker, event_id))[0] == "delivered"
        assert len(partner.deliveries) == 2 and all(d.verified for d in partner.deliveries)
        assert partner.event_ids() == [str(event_id)]  # one effect
    finally:
        partner.stop()


# The worker the test kills: `chiikipay webhooks deliver` with the test's destination kind signed
# by the test's secret (what app/wiring.py does for partner services).
WORKER = f"""
import sys
from app import wiring
from services.platform.outbox import public as outbox

wire = wiring.wire
def wire_with_test_destination():
    wire()
    async def sign(session, message):
        return {SECRET!r}
    outbox.register_destination({KIND!r}, sign)
wiring.wire = wire_with_test_destination
from app.cli import app
sys.argv = ["chiikipay", "webhooks", "deliver"]
app()
"""


async def test_a_receiver_down_for_an_hour_gets_every_event_in_order_when_it_is_back(
    settings, sessionmaker, clock, town, partner
):
    """With the server's own retry policy, the worker ticking every few seconds for an hour."""
    policy = RetryPolicy.of(settings)
    region_id = await _region(sessionmaker)
    partner.stop()
    stream = [await _enqueue(sessionmaker, clock, region_id, partner.url, "checkout:h", t)
              for t in ("checkout.paid", "checkout.refunded", "checkout.refunded")]
    other = await _enqueue(sessionmaker, clock, region_id, partner.url, "checkout:i", "checkout.cancelled")
    start, tried = clock.now(), 0
    async with httpx.AsyncClient() as http:
        while clock.now() - start < timedelta(hours=1):
            tried += len(await tasks.deliver_all_due(sessionmaker, clock, http, policy))
            clock.advance(timedelta(seconds=settings.platform_every_seconds * 15))
        status, attempts, _ = await _status(sessionmaker, stream[0])
        assert status == "pending" and 10 <= attempts < policy.max_attempts  # still trying, with back-off
        assert tried == 2 * attempts and partner.deliveries == []
        partner.start()
        clock.advance(policy.delay(attempts))
        await tasks.deliver_all_due(sessionmaker, clock, http, policy)
    assert [e for e in partner.event_ids() if e in map(str, stream)] == [str(e) for e in stream]
    assert sorted(partner.event_ids()) == sorted(str(e) for e in [*stream, other])
