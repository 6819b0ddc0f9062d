"""Helpers shared by the tests: idempotency headers and a snapshot of everything value-bearing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi.routing import APIRoute
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

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


async def snapshot(sessionmaker: Any) -> dict[str, Any]:
    """Every account's status and balances, and the row count of every table that records value
    or its history: compare before and after a rejected request to prove nothing changed."""
    async with sessionmaker() as session:
        session: AsyncSession
        accounts = (
            await session.execute(
                text(
                    "SELECT a.id, a.status, a.balance, coalesce(sum(e.amount), 0) "
                    "FROM wallet.accounts a LEFT JOIN wallet.entries e ON e.account_id = a.id "
                    "GROUP BY a.id ORDER BY a.id"
                )
            )
        ).all()
        counts = {}
        for table in ("wallet.journals", "wallet.entries", "wallet.bank_events", "wallet.merchants",
                      "wallet.residents", "wallet.api_keys", "platform.audit_events", "platform.idempotency_keys"):
            counts[table] = (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
        for table in ("wallet.payment_lots", "wallet.notices", "wallet.expiry_runs"):
            counts[table] = (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
        lots = (await session.execute(text("SELECT id, remaining, expired FROM wallet.lots ORDER BY id"))).all()
        merchants = (await session.execute(text("SELECT id, status, name FROM wallet.merchants ORDER BY id"))).all()
        regions = (await session.execute(text(
            "SELECT code, balance_cap, topup_min, topup_max, topup_step FROM wallet.regions ORDER BY code"
        ))).all()
        # The facts about payments that refunds, fee caps, rewards and cards change.
        state = {}
        for name, query in _STATE.items():
            state[name] = [tuple(r) for r in (await session.execute(text(query))).all()]
    return {"accounts": [tuple(r) for r in accounts], "counts": counts, "lots": [tuple(r) for r in lots],
            "merchants": [tuple(r) for r in merchants], "regions": [tuple(r) for r in regions], **state}


_STATE = {
    "payments": "SELECT id, amount, fee, point_amount, fee_point, refunded_amount, fee_returned, refunded_point,"
                " fee_returned_point, reward_points FROM wallet.payments ORDER BY id",
    "refunds": "SELECT id, payment_id, amount, fee_returned, point_amount FROM wallet.refunds ORDER BY id",
    "payment_lots": "SELECT payment_id, seq, amount, restored FROM wallet.payment_lots ORDER BY payment_id, seq",
    "fee_years": "SELECT merchant_id, fiscal_year, fees_charged FROM wallet.merchant_fee_years ORDER BY 1, 2",
    "rewards": "SELECT payment_id, campaign_id, points, clawed_back FROM wallet.payment_rewards ORDER BY 1, 2",
    "reward_months": "SELECT campaign_id, resident_id, month, points FROM wallet.reward_months ORDER BY 1, 2, 3",
    "payment_requests": "SELECT id, status, payment_id FROM wallet.payment_requests ORDER BY id",
    "cards": "SELECT id, status, failed_pins FROM wallet.resident_cards ORDER BY id",
    "stores": "SELECT id, merchant_id, name, name_ja, terminal_label FROM wallet.stores ORDER BY id",
}


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
