"""A partner service of the demo town (the teahouse's online shop, say) registered by the
operator, with its webhook receiver running (tests/platform/partner_app.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.platform.outbox import tasks
from services.platform.outbox.service import RetryPolicy
from tests.helpers import idem
from tests.platform.partner_app import PartnerApp

SHOP = "Tsurugajo Teahouse"
POLICY = RetryPolicy(max_attempts=5, backoff_seconds=2, backoff_cap_seconds=60, timeout_seconds=5)


@dataclass
class Partner:
    id: str
    merchant_id: str
    key: dict[str, str]  # its X-API-Key header
    app: PartnerApp
    base: str  # its allowed URL

    def order(self, amount: int = 1_800, **extra: Any) -> dict[str, Any]:
        return {"amount": amount, "order_reference": "order-1001", "description": "オンライン診療 初診料",
                "success_url": f"{self.base}/done?order=1001", "cancel_url": f"{self.base}/cancelled", **extra}


async def register(client: httpx.AsyncClient, tokens: Any, merchant_id: str, name: str, app: PartnerApp) -> Partner:
    base = f"http://127.0.0.1:{app.port}/shop"
    response = await client.post(
        "/v1/platform/partners", headers=idem(tokens.operator()),
        json={"name": name, "merchant_id": merchant_id, "callback_urls": [f"http://127.0.0.1:{app.port}/webhooks",
                                                                          base]},
    )
    assert response.status_code == 201, response.text
    made = response.json()
    app.secret = made["signing_secret"]
    return Partner(made["id"], merchant_id, {"X-API-Key": made["api_key"]}, app, base)


@pytest.fixture
async def partner(client, tokens, town, clock):
    app = PartnerApp("", now=lambda: clock.now().timestamp()).start()
    try:
        yield await register(client, tokens, town.merchants[SHOP], "会津オンライン診療", app)
    finally:
        app.stop()


async def deliver(sessionmaker: Any, clock: Any) -> list[tasks.Attempt]:
    async with httpx.AsyncClient() as http:
        return await tasks.deliver_all_due(sessionmaker, clock, http, POLICY)
