"""Who may do what: token checks, role gates, region and ownership scoping, POS API keys."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from services.wallet.onboarding import create_region
from shared.auth import Role
from tests.helpers import assert_problem, idem, snapshot


def token_with(app, clock, **overrides) -> dict[str, str]:
    now = int(clock.now().timestamp())
    claims = {
        "iss": app.state.settings.jwt_issuer, "aud": app.state.settings.jwt_audience, "sub": "resident-hanako",
        "iat": now, "exp": now + 600, "role": "resident", "region": "aizu",
    }
    key = overrides.pop("key", app.state.dev_issuer.private_key)
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return {"Authorization": "Bearer " + jwt.encode(claims, key, algorithm="RS256")}


async def test_a_good_token_opens_the_wallet(client, app, clock, town):
    response = await client.get("/v1/wallet", headers=token_with(app, clock))
    assert response.status_code == 200 and response.json()["subject"] == "resident-hanako"


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"exp": 0}, id="expired"),
        pytest.param({"iat": "future"}, id="issued-in-the-future"),
        pytest.param({"key": rsa.generate_private_key(public_exponent=65537, key_size=2048)}, id="forged"),
        pytest.param({"iss": "https://evil.example"}, id="wrong-issuer"),
        pytest.param({"aud": "someone-else"}, id="wrong-audience"),
        pytest.param({"exp": None}, id="no-expiry"),
        pytest.param({"role": "mayor"}, id="unknown-role"),
        pytest.param({"region": None}, id="no-region"),
        pytest.param({"role": "merchant_admin"}, id="merchant-role-without-merchant"),
    ],
)
async def test_bad_tokens_are_refused_and_change_nothing(client, app, clock, town, sessionmaker, overrides):
    before = await snapshot(sessionmaker)
    if overrides.get("exp") == 0:
        overrides = {"exp": int(clock.now().timestamp()) - 1}
    if overrides.get("iat") == "future":
        overrides = {"iat": int(clock.now().timestamp()) + 3_600, "exp": int(clock.now().timestamp()) + 7_200}
    response = await client.get("/v1/wallet", headers=token_with(app, clock, **overrides))
    assert_problem(response, 401, "invalid-token")
    assert await snapshot(sessionmaker) == before


MALFORMED_CLAIMS = [
    pytest.param({"exp": "2099-01-01"}, id="exp-a-string"),
    pytest.param({"iat": "yesterday"}, id="iat-a-string"),
    pytest.param({"nbf": "soon"}, id="nbf-a-string"),
    pytest.param({"exp": True}, id="exp-a-boolean"),
    pytest.param({"sub": "resident-\x00hanako"}, id="nul-in-sub"),
    pytest.param({"region": "ai\x00zu"}, id="nul-in-region"),
    pytest.param({"sub": ""}, id="empty-sub"),
    pytest.param({"sub": "r" * 12_000}, id="sub-of-12000-characters"),
    pytest.param({"sub": "resident\nhanako"}, id="newline-in-sub"),
    pytest.param({"sub": "resident hanako"}, id="space-in-sub"),
    pytest.param({"sub": 42}, id="sub-a-number"),
    pytest.param({"region": "Aizu"}, id="region-not-a-code"),
    pytest.param({"region": ["aizu"]}, id="region-a-list"),
    pytest.param({"role": ["resident"]}, id="role-a-list"),
]


@pytest.mark.parametrize("overrides", MALFORMED_CLAIMS)
async def test_a_signed_token_with_malformed_claims_is_refused_and_changes_nothing(
    client, app, clock, town, sessionmaker, overrides
):
    """Signed by the right key, so only the claims' own checks stand between them and the wallet."""
    before = await snapshot(sessionmaker)
    response = await client.get("/v1/wallet", headers=token_with(app, clock, **overrides))
    assert_problem(response, 401, "invalid-token")
    assert await snapshot(sessionmaker) == before


async def test_a_subject_of_255_printable_characters_is_a_resident(client, app, clock, town):
    subject = "auth0|" + "x" * 249
    response = await client.get("/v1/wallet", headers=token_with(app, clock, sub=subject))
    assert response.status_code == 200 and response.json()["subject"] == subject


async def test_a_forged_operator_token_moves_no_money(client, app, clock, tokens, town, sessionmaker):
    hanako = (await client.get("/v1/wallet", headers=tokens.resident())).json()
    before = await snapshot(sessionmaker)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for headers in (
        token_with(app, clock, key=forger, role="operator", sub="operator-aizu"),
        token_with(app, clock, role="operator", sub="operator-aizu", aud="someone-else"),
        token_with(app, clock, role="operator", sub="operator-aizu", exp=int(clock.now().timestamp()) - 1),
    ):
        response = await client.post(f"/v1/wallets/{hanako['id']}/topups", json={"amount": 1_000}, headers=idem(headers))
        assert_problem(response, 401, "invalid-token")
    assert await snapshot(sessionmaker) == before


async def test_token_expires_when_the_clock_passes_its_expiry(client, tokens, clock, town):
    headers = tokens.mint(Role.RESIDENT, "resident-hanako", ttl=timedelta(minutes=5))
    assert (await client.get("/v1/wallet", headers=headers)).status_code == 200
    clock.advance(timedelta(minutes=5))
    assert_problem(await client.get("/v1/wallet", headers=headers), 401, "invalid-token")


async def test_garbage_and_missing_credentials(client, town):
    assert_problem(await client.get("/v1/wallet"), 401, "unauthenticated")
    assert_problem(await client.get("/v1/wallet", headers={"Authorization": "Bearer not.a.jwt"}), 401, "invalid-token")


async def test_wrong_role_is_forbidden_and_changes_nothing(client, tokens, town, sessionmaker):
    hanako = (await client.get("/v1/wallet", headers=tokens.resident())).json()
    before = await snapshot(sessionmaker)
    # A resident cannot top themselves up, nor can an auditor (read-only).
    for headers in (tokens.resident(), tokens.auditor()):
        response = await client.post(
            f"/v1/wallets/{hanako['id']}/topups", json={"amount": 1_000}, headers=idem(headers)
        )
        assert_problem(response, 403, "forbidden")
    assert_problem(await client.get("/v1/wallet", headers=tokens.operator()), 403, "forbidden")
    assert_problem(await client.get("/v1/audit-events", headers=tokens.operator()), 403, "forbidden")
    assert await snapshot(sessionmaker) == before


async def test_a_resident_cannot_read_another_residents_wallet(client, tokens, town, sessionmaker):
    taro = (await client.get("/v1/wallet", headers=tokens.resident("resident-taro"))).json()
    before = await snapshot(sessionmaker)
    for path in (f"/v1/wallets/{taro['id']}", f"/v1/wallets/{taro['id']}/history"):
        assert_problem(await client.get(path, headers=tokens.resident("resident-hanako")), 404, "wallet-not-found")
    assert_problem(await client.get("/v1/wallets", headers=tokens.resident("resident-hanako")), 403, "forbidden")
    own = await client.get(f"/v1/wallets/{taro['id']}", headers=tokens.resident("resident-taro"))
    assert own.status_code == 200 and own.json()["balance"] == taro["balance"]
    assert await snapshot(sessionmaker) == before


async def test_an_operator_cannot_act_on_another_region(client, tokens, town, sessionmaker, settings, clock):

    async with sessionmaker() as s, s.begin():
        await create_region(s, clock, settings, code="kitakata", name="Kitakata", name_ja="喜多方市")
    hanako = (await client.get("/v1/wallet", headers=tokens.resident())).json()
    merchant_id = town.merchants["Aizu Bus"]
    before = await snapshot(sessionmaker)
    other = tokens.operator("kitakata")
    assert_problem(
        await client.post(f"/v1/wallets/{hanako['id']}/topups", json={"amount": 1_000}, headers=idem(other)),
        404, "wallet-not-found",
    )
    assert_problem(
        await client.patch(f"/v1/merchants/{merchant_id}", json={"status": "suspended"}, headers=idem(other)),
        404, "merchant-not-found",
    )
    assert_problem(await client.get(f"/v1/wallets/{hanako['id']}", headers=other), 404, "wallet-not-found")
    assert (await client.get("/v1/merchants", headers=other)).json()["items"] == []
    assert await snapshot(sessionmaker) == before


async def test_a_token_for_an_unhosted_region_is_refused(client, tokens, town, sessionmaker):
    before = await snapshot(sessionmaker)
    assert_problem(await client.get("/v1/wallet", headers=tokens.resident(region="atlantis")), 404, "region-not-found")
    assert await snapshot(sessionmaker) == before


async def test_pos_api_key_lifecycle(client, tokens, town, sessionmaker):
    teahouse = town.merchants["Tsurugajo Teahouse"]
    bus = town.merchants["Aizu Bus"]
    created = await client.post(
        f"/v1/merchants/{teahouse}/api-keys", json={"name": "register 1"}, headers=idem(tokens.merchant_admin(teahouse))
    )
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["secret"].startswith("ckpos_")

    terminal = await client.get("/v1/terminal", headers={"X-API-Key": key["secret"]})
    assert terminal.status_code == 200 and terminal.json()["merchant"]["id"] == teahouse
    # Scoped to its merchant: it cannot read another shop.
    assert_problem(
        await client.get(f"/v1/merchants/{bus}", headers={"X-API-Key": key["secret"]}), 404, "merchant-not-found"
    )
    # The secret is never stored or listed.
    listed = (await client.get(f"/v1/merchants/{teahouse}/api-keys", headers=tokens.merchant_admin(teahouse))).json()
    assert [k["id"] for k in listed] == [key["id"]] and "secret" not in listed[0]
    async with sessionmaker() as s:
        from sqlalchemy import text

        stored = (await s.execute(text("SELECT secret_hash FROM wallet.api_keys"))).scalar_one()
    assert key["secret"] not in stored

    # Staff may not manage keys; another shop's admin may not either.
    assert_problem(
        await client.post(f"/v1/merchants/{teahouse}/api-keys", json={"name": "x"}, headers=idem(tokens.merchant_staff(teahouse))),
        403, "forbidden",
    )
    assert_problem(
        await client.post(f"/v1/merchants/{teahouse}/api-keys", json={"name": "x"}, headers=idem(tokens.merchant_admin(bus))),
        404, "merchant-not-found",
    )

    revoked = await client.delete(
        f"/v1/merchants/{teahouse}/api-keys/{key['id']}", headers=idem(tokens.merchant_admin(teahouse))
    )
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] == "2026-04-01T00:30:00Z"  # the frozen clock
    assert_problem(await client.get("/v1/terminal", headers={"X-API-Key": key["secret"]}), 401, "invalid-token")
    assert_problem(await client.get("/v1/terminal", headers={"X-API-Key": "ckpos_made_up"}), 401, "invalid-token")

    actions = [e["action"] for e in (await client.get("/v1/audit-events", headers=tokens.auditor())).json()["items"]]
    assert actions[:2] == ["api_key.revoke", "api_key.create"]
