"""Region onboarding by the platform operator: POST and GET /v1/regions, and the platform role
kept out of every region's own endpoints."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest

from app.demo import BANK, MERCHANTS
from shared import emvco
from shared.auth import PLATFORM_REGION, Role
from tests.helpers import assert_problem, idem, snapshot

KITAKATA = {"code": "kitakata", "name": "Kitakata", "name_ja": "喜多方市"}
SETTINGS = {
    "balance_cap": 200_000, "topup_min": 500, "topup_max": 30_000, "topup_step": 500, "refund_window_days": 3,
    "coin_expiry_months": 6, "payment_request_minutes": 10,
}


def platform(tokens, region: str = PLATFORM_REGION) -> dict[str, str]:
    return tokens.mint(Role.PLATFORM_OPERATOR, "platform-ops", region)


async def test_a_platform_operator_onboards_a_region_that_then_works(client, tokens, town, settings):
    key = f"region-{uuid.uuid4()}"
    created = await client.post("/v1/regions", json={**KITAKATA, **SETTINGS}, headers=idem(platform(tokens), key))
    assert created.status_code == 201, created.text
    region = created.json()
    assert {k: region[k] for k in (*KITAKATA, *SETTINGS)} == {**KITAKATA, **SETTINGS}

    # A retry answers the first response and hosts nothing twice; the key with another body is refused.
    again = await client.post("/v1/regions", json={**KITAKATA, **SETTINGS}, headers=idem(platform(tokens), key))
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true" and again.json() == region
    other = await client.post("/v1/regions", json={**KITAKATA, "code": "kitakata2"}, headers=idem(platform(tokens), key))
    assert_problem(other, 422, "idempotency-key-reused")

    # Settings left out take the platform's defaults.
    bare = await client.post("/v1/regions", json={"code": "minami-aizu", "name": "Minami  Aizu", "name_ja": "南会津町"},
                             headers=idem(platform(tokens)))
    assert bare.status_code == 201, bare.text
    assert bare.json()["name"] == "Minami Aizu"  # stored as its QR codes carry it: spaces collapsed
    assert (bare.json()["balance_cap"], bare.json()["topup_min"], bare.json()["topup_max"], bare.json()["topup_step"],
            bare.json()["refund_window_days"], bare.json()["coin_expiry_months"], bare.json()["payment_request_minutes"]) == (
        settings.default_balance_cap, settings.default_topup_min, settings.default_topup_max,
        settings.default_topup_step, settings.default_refund_window_days, None, settings.default_payment_request_minutes,
    )

    listed = (await client.get("/v1/regions", headers=platform(tokens))).json()
    assert [r["code"] for r in listed["items"]] == ["minami-aizu", "kitakata", "aizu"]  # newest first

    # The region's own operator finds its settings, and its rules hold.
    operator = tokens.operator("kitakata")
    assert (await client.get("/v1/region", headers=operator)).json() == region
    wallet = (await client.get("/v1/wallet", headers=tokens.resident("resident-kita", "kitakata"))).json()
    topup = await client.post(f"/v1/wallets/{wallet['id']}/topups", json={"amount": 1_500}, headers=idem(operator))
    assert topup.status_code == 201, topup.text  # a multiple of kitakata's 500, not of aizu's 1,000
    assert_problem(await client.post(f"/v1/wallets/{wallet['id']}/topups", json={"amount": 250}, headers=idem(operator)),
                   422, "amount-below-minimum")

    # Its shops' QR codes carry its names whole.
    shop = await client.post("/v1/merchants", json={**MERCHANTS[0], **BANK, "merchant_class": "small_shop"},
                             headers=idem(operator))
    assert shop.status_code == 201, shop.text
    store = (await client.get(f"/v1/merchants/{shop.json()['id']}/stores", headers=operator)).json()[0]
    qr = emvco.parse_payload((await client.get(f"/v1/stores/{store['id']}/qr", headers=operator)).json()["payload"])
    assert (qr.guid, qr.city, qr.city_ja) == ("jp.chiikipay.kitakata", "Kitakata", "喜多方市")

    # Audited in the new region's own trail, under the platform operator's name.
    events = (await client.get("/v1/audit-events", headers=tokens.auditor("kitakata"))).json()["items"]
    created_event = [e for e in events if e["action"] == "region.create"]
    assert len(created_event) == 1
    assert (created_event[0]["actor_role"], created_event[0]["actor_subject"], created_event[0]["target_id"]) == (
        "platform_operator", "platform-ops", "kitakata"
    )
    assert created_event[0]["after"]["payment_request_minutes"] == 10


REFUSED = [
    # (body change, status, problem slug)
    ({"code": "aizu"}, 409, "region-code-taken"),
    ({"code": "Kitakata"}, 422, "validation-error"),
    ({"code": "k"}, 422, "validation-error"),
    ({"code": "kitakata-"}, 422, "validation-error"),
    ({"code": "kita_kata"}, 422, "validation-error"),
    ({"code": "k" * 20}, 422, "validation-error"),  # its QR GUID would pass EMVCo's 32 characters
    ({"name": "喜多方"}, 422, "invalid-region-name"),  # the QR's city (60) is ASCII
    ({"name": "Kitakata City Hall"}, 422, "invalid-region-name"),  # 18 characters: would be cut
    ({"name": "   "}, 422, "validation-error"),
    ({"name": "Kita\tkata"}, 422, "validation-error"),
    ({"name_ja": "喜多方市喜多方市喜多方市喜多方市"}, 422, "invalid-region-name"),  # 16 characters
    ({"name_ja": "喜多方\u0378"}, 422, "invalid-region-name"),  # unassigned: no reader shows it
    ({"topup_min": 40_000, "topup_max": 30_000}, 422, "invalid-region-settings"),
    ({"topup_max": 300_000}, 422, "invalid-region-settings"),  # above the balance cap
    ({"topup_min": 750}, 422, "invalid-region-settings"),  # not a multiple of the step
    ({"topup_min": 0}, 422, "validation-error"),
    ({"balance_cap": 1000.5}, 422, "validation-error"),
    ({"balance_cap": "200000"}, 422, "validation-error"),
    ({"coin_expiry_months": 0}, 422, "validation-error"),
    ({"refund_window_days": 366}, 422, "validation-error"),
    ({"payment_request_minutes": 0}, 422, "validation-error"),
    ({"payment_request_minutes": 61}, 422, "validation-error"),
    ({"currency": "yen"}, 422, "validation-error"),
]


@pytest.mark.parametrize(("change", "status", "slug"), REFUSED, ids=[str(c) for c, _, _ in REFUSED])
async def test_a_refused_region_hosts_nothing(client, tokens, town, sessionmaker, change, status, slug):
    before = await snapshot(sessionmaker)
    response = await client.post("/v1/regions", json={**KITAKATA, **SETTINGS, **change}, headers=idem(platform(tokens)))
    assert_problem(response, status, slug)
    assert await snapshot(sessionmaker) == before
    assert [r["code"] for r in (await client.get("/v1/regions", headers=platform(tokens))).json()["items"]] == ["aizu"]


async def test_region_requests_without_a_key_or_a_platform_token_are_refused(client, tokens, town, sessionmaker):
    teahouse = town.merchants["Tsurugajo Teahouse"]
    key = await client.post(f"/v1/merchants/{teahouse}/api-keys", json={"name": "register 1"},
                            headers=idem(tokens.merchant_admin(teahouse)))
    before = await snapshot(sessionmaker)
    missing = await client.post("/v1/regions", json=KITAKATA, headers=platform(tokens))
    assert_problem(missing, 400, "idempotency-key-missing")
    assert_problem(await client.post("/v1/regions", json=KITAKATA, headers=idem({})), 401, "unauthenticated")
    others = [tokens.resident(), tokens.operator(), tokens.auditor(), tokens.merchant_admin(teahouse),
              tokens.merchant_staff(teahouse), {"X-API-Key": key.json()["secret"]}]
    for headers in others:
        assert_problem(await client.post("/v1/regions", json=KITAKATA, headers=idem(headers)), 403, "forbidden")
        assert_problem(await client.get("/v1/regions", headers=headers), 403, "forbidden")
    # A platform role in a region's token is no token the platform issues.
    in_a_region = platform(tokens, region="aizu")
    assert_problem(await client.post("/v1/regions", json=KITAKATA, headers=idem(in_a_region)), 401, "invalid-token")
    assert_problem(await client.get("/v1/region", headers=in_a_region), 401, "invalid-token")
    assert await snapshot(sessionmaker) == before


async def test_concurrent_twins_with_one_code_host_one_region(client, tokens, town, sessionmaker):
    answers = await asyncio.gather(*(
        client.post("/v1/regions", json={**KITAKATA, "name": f"Kitakata {n}"}, headers=idem(platform(tokens)))
        for n in range(4)
    ))
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409]
    for refused in (a for a in answers if a.status_code == 409):
        assert_problem(refused, 409, "region-code-taken")
    listed = (await client.get("/v1/regions", headers=platform(tokens))).json()["items"]
    assert [r["code"] for r in listed] == ["kitakata", "aizu"]


async def test_regions_are_listed_a_page_at_a_time(client, tokens, town):
    for n in range(3):
        created = await client.post("/v1/regions", json={"code": f"town-{n}", "name": f"Town {n}", "name_ja": f"町{n}"},
                                    headers=idem(platform(tokens)))
        assert created.status_code == 201, created.text
    first = (await client.get("/v1/regions", params={"limit": 2}, headers=platform(tokens))).json()
    assert [r["code"] for r in first["items"]] == ["town-2", "town-1"] and first["next_cursor"]
    rest = (await client.get("/v1/regions", params={"limit": 2, "cursor": first["next_cursor"]},
                             headers=platform(tokens))).json()
    assert [r["code"] for r in rest["items"]] == ["town-0", "aizu"] and rest["next_cursor"] is None
    assert_problem(await client.get("/v1/regions", params={"cursor": "nope"}, headers=platform(tokens)),
                   422, "validation-error")


async def test_a_platform_token_is_refused_by_every_region_endpoint(app, client, tokens, town, sessionmaker):
    """Every /v1 operation but the platform's own: the platform role is in no region's gate."""
    document = app.openapi()
    before = await snapshot(sessionmaker)
    checked = 0
    for path, operations in document["paths"].items():
        if not path.startswith("/v1/") or path == "/v1/regions":
            continue
        for method, operation in operations.items():
            if not operation.get("security"):  # the bank's signed webhook: no caller identity
                continue
            url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
            response = await client.request(method.upper(), url, json={}, headers=idem(platform(tokens)))
            assert_problem(response, 403, "forbidden")
            checked += 1
    assert checked > 50
    assert await snapshot(sessionmaker) == before


async def test_the_region_patch_takes_the_dynamic_qr_lifetime_by_the_same_rules(client, tokens, town, sessionmaker):
    changed = await client.patch("/v1/region", json={"payment_request_minutes": 15}, headers=idem(tokens.operator()))
    assert changed.status_code == 200 and changed.json()["payment_request_minutes"] == 15
    before = await snapshot(sessionmaker)
    for body in ({"payment_request_minutes": 61}, {"topup_min": 1_500}):
        refused = await client.patch("/v1/region", json=body, headers=idem(tokens.operator()))
        assert refused.status_code == 422 and refused.json()["type"].endswith(("validation-error", "invalid-region-settings"))
    assert await snapshot(sessionmaker) == before
    assert (await client.get("/v1/region", headers=tokens.operator())).json()["payment_request_minutes"] == 15
