"""The demo town's bus company as a bus operator, with fare products and a validator."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.helpers import idem

BUS, OTHER = "Aizu Bus", "Higashiyama Onsen Ryokan"  # the second plays a shuttle bus operator


@dataclass
class Bus:
    merchant_id: str
    products: dict[str, dict[str, Any]]  # single, day, multi
    validator: dict[str, str]  # X-API-Key header


async def mark_operator(client: httpx.AsyncClient, tokens: Any, merchant_id: str) -> None:
    response = await client.post("/v1/transit/operators", json={"merchant_id": merchant_id},
                                 headers=idem(tokens.operator()))
    assert response.status_code == 201, response.text


async def add_validator(client: httpx.AsyncClient, tokens: Any, merchant_id: str, name: str = "bus 101") -> dict[str, str]:
    response = await client.post("/v1/transit/validators", json={"merchant_id": merchant_id, "name": name},
                                 headers=idem(tokens.merchant_admin(merchant_id)))
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["secret"]}


async def add_product(client: httpx.AsyncClient, tokens: Any, merchant_id: str, **details: Any) -> dict[str, Any]:
    response = await client.post("/v1/transit/products", json={"merchant_id": merchant_id, **details},
                                 headers=idem(tokens.merchant_admin(merchant_id)))
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
async def bus(client, tokens, town) -> Bus:
    merchant_id = town.merchants[BUS]
    await mark_operator(client, tokens, merchant_id)
    products = {
        "single": await add_product(client, tokens, merchant_id, name="Single ride", name_ja="1回乗車券",
                                    kind="single_ride", fares={"adult": 200, "child": 100, "elderly": 100}),
        "day": await add_product(client, tokens, merchant_id, name="Day pass", name_ja="1日乗車券", kind="day_pass",
                                 valid_days=30, fares={"adult": 500, "child": 250}),
        "multi": await add_product(client, tokens, merchant_id, name="3-ride ticket", name_ja="3回回数券",
                                   kind="multi_ride", rides=3, fares={"adult": 540}),
    }
    return Bus(merchant_id, products, await add_validator(client, tokens, merchant_id))


async def buy(client, tokens, product: dict[str, Any], category: str = "adult", subject: str = "resident-hanako"
              ) -> dict[str, Any]:
    response = await client.post("/v1/transit/tickets", json={"product_id": product["id"], "rider_category": category},
                                 headers=idem(tokens.resident(subject)))
    assert response.status_code == 201, response.text
    return response.json()


async def codes(client, tokens, ticket: dict[str, Any], subject: str = "resident-hanako") -> list[dict[str, Any]]:
    response = await client.get(f"/v1/me/transit/tickets/{ticket['id']}/code", headers=tokens.resident(subject))
    assert response.status_code == 200, response.text
    return response.json()["codes"]


def scan_body(code: str, at: datetime, scan_id: uuid.UUID | None = None, **more: Any) -> dict[str, Any]:
    return {"scan_id": str(scan_id or uuid.uuid4()), "code": code, "scanned_at": at.isoformat(), **more}


async def scan(client, validator: dict[str, str], code: str, at: datetime, **more: Any) -> httpx.Response:
    return await client.post("/v1/transit/scans", json=scan_body(code, at, **more), headers=validator)


async def ticket(client, tokens, ticket_id: str, subject: str = "resident-hanako") -> dict[str, Any]:
    response = await client.get(f"/v1/me/transit/tickets/{ticket_id}", headers=tokens.resident(subject))
    assert response.status_code == 200, response.text
    return response.json()
