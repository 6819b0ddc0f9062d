"""Helpers shared by the tests: idempotency headers and a snapshot of everything that holds value or state."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from fastapi.routing import APIRoute
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.payments.notify import channel
from services.wallet.verify import verify_ledger

PROBLEM_JSON = "application/problem+json"


def idem(headers: dict[str, str], key: str | None = None) -> dict[str, str]:
    """The headers plus an Idempotency-Key (a fresh one unless given)."""
    return {**headers, "Idempotency-Key": key or f"test-{uuid.uuid4()}"}


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body = response.json()
    assert body["type"] == f"urn:chiikipay:problem:{slug}", body
    assert body["status"] == status and body["title"] and body["detail"]
    return body


# Counted only: a refused request rightly leaves its audit event (who tried) or its key's answer.
COUNTED = ("platform.audit_events", "platform.idempotency_keys")


async def snapshot(sessionmaker: Any) -> dict[str, Any]:
    """Every account's balance, stored and summed from its entries, and every row of every table
    that holds value or state (all of the services' tables, those added later included; the
    audit trail and idempotency records counted): compare before and after a refused request to
    prove nothing changed."""
    async with sessionmaker() as session:
        session: AsyncSession
        accounts = (
            await session.execute(
                text(
                    "SELECT a.id, a.kind, a.status, a.balance, coalesce(sum(e.amount), 0) "
                    "FROM wallet.accounts a LEFT JOIN wallet.entries e ON e.account_id = a.id "
                    "GROUP BY a.id ORDER BY a.id"
                )
            )
        ).all()
        tables = (await session.execute(text(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
            "WHERE schemaname IN ('wallet', 'coupons', 'settlement', 'platform') AND tablename <> 'alembic_version' "
            "ORDER BY 1"
        ))).scalars().all()
        counts, rows = {}, {}
        for table in tables:
            if table in COUNTED:
                counts[table] = (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
            else:
                rows[table] = (await session.execute(text(f"SELECT t::text FROM {table} t ORDER BY 1"))).scalars().all()
    return {"accounts": [tuple(r) for r in accounts], "counts": counts, "rows": rows}


async def ledger_violations(sessionmaker: Any) -> list[Any]:

    async with sessionmaker() as session:
        return await verify_ledger(session)


class DocumentedResponses:
    """The statuses the app's OpenAPI document declares for each operation: the tests' client
    checks every response it receives against them, so a status the API answers but does not
    declare (a strict generated client raises on it) fails the test that met it."""

    def __init__(self, app: Any) -> None:
        document = app.openapi()
        self.routes = [
            (route, {m.lower(): set(document["paths"][route.path_format][m.lower()]["responses"]) for m in route.methods})
            for route in app.routes
            if isinstance(route, APIRoute) and route.include_in_schema
        ]

    def declared(self, method: str, path: str) -> set[str] | None:
        """The declared statuses, None for a request that no documented operation serves."""
        for route, by_method in self.routes:
            if method.lower() in by_method and route.path_regex.match(path):
                return by_method[method.lower()]
        return None

    async def check(self, response: httpx.Response) -> None:
        declared = self.declared(response.request.method, response.request.url.path)
        if declared is None or str(response.status_code) in declared or "default" in declared:
            return
        await response.aread()
        raise AssertionError(
            f"{response.request.method} {response.request.url.path} answered {response.status_code}, "
            f"which its OpenAPI operation does not declare ({', '.join(sorted(declared))}): {response.text[:300]}"
        )


async def shop_notices(app: Any, merchant_id: str, act: Any) -> list[dict[str, Any]]:
    """The `payment.received` notices the merchant's channel carries while `act()` runs (the
    background task that publishes them runs before the test client's answer returns)."""
    pubsub = app.state.redis.pubsub()
    await pubsub.subscribe(channel(merchant_id))
    try:
        await pubsub.get_message(timeout=1.0)  # the subscription's confirmation
        await act()
        messages = []
        while (message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)) is not None:
            messages.append(json.loads(message["data"]))
        return messages
    finally:
        await pubsub.aclose()
