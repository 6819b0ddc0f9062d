"""The shop's real-time stream of payments (server-sent events over a real HTTP server), and
what still works when Redis is down."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn

from tests.helpers import assert_problem, idem
from tests.wallet.test_payments import pay, store_of, terminal_key


@pytest.fixture
async def live(app) -> AsyncIterator[str]:
    """The test app behind a real uvicorn on a free loopback port (its lifespan is already on)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)  # uvicorn's own start-up, not a wait for our clock
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    await task


async def events(base: str, path: str, headers: dict[str, str], count: int, received: asyncio.Queue,
                 subscribed: asyncio.Event | None = None) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        async with http.stream("GET", path, headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            event: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line.startswith("retry:") and subscribed is not None:
                    subscribed.set()  # the server sends it once subscribed to the channel
                if line.startswith(("id:", "event:", "data:")):
                    name, _, value = line.partition(":")
                    event[name] = value.strip()
                elif line == "" and "data" in event:
                    await received.put(event)
                    event = {}
                    count -= 1
                    if count == 0:
                        return


async def test_the_shop_hears_each_payment_and_a_reconnect_catches_up(client, tokens, town, live):
    shop = await store_of(client, tokens, town)
    pos = await terminal_key(client, tokens, shop["merchant_id"])
    path = f"/v1/merchants/{shop['merchant_id']}/events"
    received: asyncio.Queue = asyncio.Queue()
    subscribed = asyncio.Event()
    listener = asyncio.create_task(events(live, path, pos, 1, received, subscribed))
    await asyncio.wait_for(subscribed.wait(), timeout=10)
    first = (await pay(client, tokens, shop["payload"], 1_200)).json()
    event = await asyncio.wait_for(received.get(), timeout=10)
    await listener
    assert event["event"] == "payment.received" and event["id"] == first["id"]
    assert json.loads(event["data"])["amount"] == 1_200

    # Offline for two payments; on reconnect with Last-Event-ID they come from the database.
    missed = [(await pay(client, tokens, shop["payload"], amount)).json()["id"] for amount in (300, 400)]
    resumed: asyncio.Queue = asyncio.Queue()
    await asyncio.wait_for(events(live, path, {**pos, "Last-Event-ID": first["id"]}, 2, resumed), timeout=10)
    assert [resumed.get_nowait()["id"] for _ in range(2)] == missed


async def test_another_shop_cannot_listen(client, tokens, town):
    shop = await store_of(client, tokens, town)
    other = tokens.merchant_staff(town.merchants["Aizu Bus"])
    assert_problem(await client.get(f"/v1/merchants/{shop['merchant_id']}/events", headers=other), 404, "merchant-not-found")


async def test_with_redis_down_qr_payments_work_and_the_stream_says_503(client, tokens, town, app, redis_down, sessionmaker):
    shop = await store_of(client, tokens, town)
    pos = await terminal_key(client, tokens, shop["merchant_id"])
    static = await pay(client, tokens, shop["payload"], 1_000)
    assert static.status_code == 201, static.text
    request = (await client.post(
        "/v1/payment-requests", json={"store_id": shop["store_id"], "amount": 700, "order_reference": "r"}, headers=idem(pos)
    )).json()
    dynamic = await pay(client, tokens, request["payload"])
    assert dynamic.status_code == 201, dynamic.text
    stream = await client.get(f"/v1/merchants/{shop['merchant_id']}/events", headers=pos)
    assert_problem(stream, 503, "notifications-unavailable")
    # Both payments are committed and listed, notice or not.
    listed = (await client.get(f"/v1/merchants/{shop['merchant_id']}/payments", headers=pos)).json()["items"]
    assert {p["id"] for p in listed} == {static.json()["id"], dynamic.json()["id"]}
