"""Health, readiness, metrics, request ids, and logs that keep secrets out."""

from __future__ import annotations

import logging
import traceback

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.helpers import idem


async def test_healthz_and_readyz_report_database_and_redis(client):
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok", "redis": "ok"}


async def test_readyz_says_503_when_redis_is_unreachable(app, client):
    from redis.asyncio import Redis

    working = app.state.redis
    app.state.redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        response = await client.get("/readyz")
    finally:
        await app.state.redis.aclose()
        app.state.redis = working
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "redis": "unavailable"}


async def test_metrics_count_requests_by_route_template(client, tokens, town):
    await client.get("/v1/wallet", headers=tokens.resident())
    body = (await client.get("/metrics")).text
    assert 'chiikipay_http_requests_total{method="GET",route="/v1/wallet",status="200"}' in body
    assert "chiikipay_http_request_seconds_bucket" in body


async def test_request_id_is_echoed_or_made(client):
    assert (await client.get("/healthz", headers={"X-Request-ID": "abc-123"})).headers["x-request-id"] == "abc-123"
    assert len((await client.get("/healthz")).headers["x-request-id"]) == 32


async def test_logs_carry_request_ids_but_no_tokens_or_query_strings(client, tokens, town, caplog):
    headers = tokens.resident()
    token = headers["Authorization"].removeprefix("Bearer ")
    wallet = (await client.get("/v1/wallet", headers=headers)).json()
    with caplog.at_level(logging.INFO, logger="chiikipay.access"):
        await client.get("/v1/wallets", params={"subject": "resident-hanako"}, headers={**tokens.operator(), "X-Request-ID": "rid-1"})
        await client.post(f"/v1/wallets/{wallet['id']}/topups", json={"amount": 1_000}, headers=idem(tokens.operator()))
    records = [r for r in caplog.records if r.name == "chiikipay.access"]
    assert [r.route for r in records] == ["/v1/wallets", "/v1/wallets/{wallet_id}/topups"]
    assert records[0].request_id == "rid-1" and records[0].status == 200
    everything = caplog.text + " ".join(str(r.__dict__) for r in records)
    assert token not in everything and "resident-hanako" not in everything


async def test_unknown_route_and_method_are_problems(client):
    missing = await client.get("/v1/nowhere")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    wrong = await client.put("/healthz")
    assert wrong.status_code == 405 and wrong.json()["type"] == "urn:chiikipay:problem:method-not-allowed"


async def test_a_database_error_logs_no_bind_values(app):
    """A failed statement's error names the statement, never the values bound to it (a resident's
    subject, a shop's name): they would be in the traceback the app logs for a 500."""
    secret = "resident-hanako-secret-subject"
    async with app.state.sessionmaker() as session:
        with pytest.raises(DBAPIError) as failed:
            await session.execute(text("SELECT 1 / 0 WHERE CAST(:subject AS text) IS NOT NULL"), {"subject": secret})
    logged = "".join(traceback.format_exception(failed.value))
    assert "division by zero" in logged
    assert secret not in logged
