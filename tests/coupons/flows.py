"""What the coupon tests share: a coupon issued and activated over HTTP, a store's printed code,
a claim, a funded sponsor."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from services.wallet import public
from tests.helpers import idem

REGION = "aizu"
HANAKO, TARO = "resident-hanako", "resident-taro"
TEAHOUSE, FARM = "Tsurugajo Teahouse", "Minato Farm"
CITY = public.Actor("operator-aizu", "operator")
FROM, UNTIL = "2026-04-01T00:00:00+09:00", "2026-05-01T00:00:00+09:00"  # the tests' clock starts at 09:30 on 1 April


def coupon_body(**changes: Any) -> dict[str, Any]:
    """¥100 off from ¥500, at the issuer's stores, April, ten in stock, one each."""
    return {
        "name": "Matcha set ¥100 off", "kind": "yen_off", "value": 100, "min_spend": 500, "valid_from": FROM,
        "valid_until": UNTIL, "stock": 10, "per_resident_limit": 1, "terms": "One per visit.", **changes,
    }


async def stores(client: httpx.AsyncClient, tokens: Any, town: Any, merchant: str = TEAHOUSE) -> list[str]:
    response = await client.get(f"/v1/merchants/{town.merchants[merchant]}/stores", headers=tokens.operator())
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()]


async def add_store(client: httpx.AsyncClient, tokens: Any, town: Any, name: str, merchant: str = TEAHOUSE) -> str:
    response = await client.post(
        f"/v1/merchants/{town.merchants[merchant]}/stores", headers=idem(tokens.operator()),
        json={"name": name, "name_ja": name},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def store_qr(client: httpx.AsyncClient, tokens: Any, town: Any, merchant: str = TEAHOUSE,
                   store_id: str | None = None) -> str:
    store_id = store_id or (await stores(client, tokens, town, merchant))[0]
    response = await client.get(f"/v1/stores/{store_id}/qr", headers=tokens.merchant_staff(town.merchants[merchant]))
    assert response.status_code == 200, response.text
    return response.json()["payload"]


async def issue(client: httpx.AsyncClient, tokens: Any, town: Any, merchant: str | None = TEAHOUSE,
                activate: bool = True, **changes: Any) -> dict[str, Any]:
    """A coupon issued by the merchant's admin (None: a region-wide one by the operator), activated."""
    issuer = tokens.merchant_admin(town.merchants[merchant]) if merchant else tokens.operator()
    response = await client.post("/v1/coupons", headers=idem(issuer), json=coupon_body(**changes))
    assert response.status_code == 201, response.text
    coupon = response.json()
    if activate:
        response = await client.post(f"/v1/coupons/{coupon['id']}/activate", headers=idem(issuer))
        assert response.status_code == 200, response.text
        coupon = response.json()
    return coupon


async def claim(client: httpx.AsyncClient, tokens: Any, coupon_id: str, subject: str = HANAKO) -> httpx.Response:
    return await client.post(f"/v1/coupons/{coupon_id}/claims", headers=idem(tokens.resident(subject)))


async def claimed(client: httpx.AsyncClient, tokens: Any, coupon_id: str, subject: str = HANAKO) -> dict[str, Any]:
    response = await claim(client, tokens, coupon_id, subject)
    assert response.status_code == 201, response.text
    return response.json()


async def pay(client: httpx.AsyncClient, tokens: Any, qr: str, amount: int, claim_id: str,
              subject: str = HANAKO) -> httpx.Response:
    return await client.post("/v1/coupons/payments", headers=idem(tokens.resident(subject)),
                             json={"qr": qr, "amount": amount, "claim_id": claim_id})


async def funded_sponsor(sessionmaker: Any, clock: Any, budget: int, name: str = "City coupon campaign") -> uuid.UUID:
    async with sessionmaker() as s, s.begin():
        created = await public.create_sponsor(s, clock, region=REGION, actor=CITY, name=name, name_ja="市のクーポン")
        if budget:
            await public.fund_sponsor(s, clock, region=REGION, actor=CITY, sponsor_id=created.sponsor_id, amount=budget)
        return created.sponsor_id
