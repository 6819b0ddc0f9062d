"""Sign-in with the city's ID: chiikipay configured as production is (README "Sign-in with the
city's ID") against a local OpenID Connect provider that these tests start — a real HTTP server
serving its discovery document and its JWK set, signing tokens, and rotating its key mid-test."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.auth import KEY_RECHECK_SECONDS, TokenVerifier, principal_from_claims
from shared.errors import InvalidToken
from tests.helpers import assert_problem, snapshot

# Key generation costs tens of ms each: made once for the module.
KEYS = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]
AUDIENCE = "chiikipay-aizu"
REFETCH_SECONDS = 30


class CityIdProvider:
    """The city's OpenID Connect provider in miniature: it publishes the public halves of its
    current keys and signs with the newest; it counts what it is asked, so a test sees fetches."""

    def __init__(self) -> None:
        self.published: list[tuple[str, rsa.RSAPrivateKey]] = [("city-2026-1", KEYS[0])]
        self.requests: list[str] = []
        self.discovery_issuer: str | None = None  # None: the issuer itself
        self.jwks_uri: str | None = None  # None: its own
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self.server.server_port}/realms/residents"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.requests.append(self.path)
                if self.path == "/realms/residents/.well-known/openid-configuration":
                    body = {"issuer": provider.discovery_issuer or provider.issuer,
                            "jwks_uri": provider.jwks_uri or provider.issuer + "/protocol/openid-connect/certs",
                            "id_token_signing_alg_values_supported": ["RS256"]}
                elif self.path == "/realms/residents/protocol/openid-connect/certs":
                    body = {"keys": [
                        {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), "kid": kid,
                         "use": "sig", "alg": "RS256"}
                        for kid, key in provider.published
                    ]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    @property
    def jwks_fetches(self) -> int:
        return sum(path.endswith("/certs") for path in self.requests)

    def rotate(self, key: rsa.RSAPrivateKey, kid: str) -> None:
        """A new signing key; the old one is withdrawn at once (the hard case)."""
        self.published = [(kid, key)]

    def sign(self, clock, *, kid: str | None = None, key: rsa.RSAPrivateKey | None = None, **claims: Any) -> str:
        current_kid, current_key = self.published[-1]
        now = int(clock.now().timestamp())
        body = {"iss": self.issuer, "aud": AUDIENCE, "sub": "city-id-7f3a9c", "iat": now, "exp": now + 900,
                "given_name": "Hanako", **claims}
        return jwt.encode({k: v for k, v in body.items() if v is not None}, key or current_key, algorithm="RS256",
                          headers={"kid": kid or current_kid})


@pytest.fixture(scope="module")
def provider() -> Iterator[CityIdProvider]:
    city = CityIdProvider()
    yield city
    city.server.shutdown()
    city.server.server_close()


def city_settings(settings, provider: CityIdProvider, **changes):
    """Production's configuration: the city's issuer, discovery, its audience, its claim names,
    residents' tokens without role or region; the dev issuer off."""
    return settings.model_copy(update={
        "jwt_issuer": provider.issuer, "jwt_audience": AUDIENCE, "jwt_discovery": True, "jwt_jwks_url": None,
        "jwt_jwks_refetch_seconds": REFETCH_SECONDS, "jwt_default_role": "resident", "jwt_default_region": "aizu",
        "jwt_data_sharing_claim": "chiikipay_data_sharing", "jwt_area_claim": "district",
        "dev_issuer_enabled": False, **changes,
    })


@pytest.fixture
def city_app(app, settings, clock, provider):
    """The test app's verifier replaced by one configured for the city's provider, fresh per test."""
    provider.published = [("city-2026-1", KEYS[0])]
    provider.requests.clear()
    provider.discovery_issuer = provider.jwks_uri = None
    dev_verifier = app.state.token_verifier
    app.state.token_verifier = TokenVerifier(city_settings(settings, provider), clock, dev_issuer=None)
    yield app
    app.state.token_verifier = dev_verifier


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_city_id_token_without_role_or_region_opens_the_residents_wallet(
    client, city_app, clock, provider, town
):
    response = await client.get("/v1/wallet", headers=bearer(provider.sign(clock)))
    assert response.status_code == 200, response.text
    assert response.json()["subject"] == "city-id-7f3a9c"
    # Discovery first, then the JWK set it names; the next token of the same key needs neither.
    assert provider.requests == ["/realms/residents/.well-known/openid-configuration",
                                 "/realms/residents/protocol/openid-connect/certs"]
    clock.advance(timedelta(seconds=5))
    assert (await client.get("/v1/wallet", headers=bearer(provider.sign(clock)))).status_code == 200
    assert provider.jwks_fetches == 1


async def test_the_claims_are_mapped_to_the_resident(settings, clock, provider, city_app):
    verifier: TokenVerifier = city_app.state.token_verifier
    claims = await verifier.verify(provider.sign(clock, chiikipay_data_sharing=True, district="kitamachi"))
    principal = principal_from_claims(claims)
    assert (principal.subject, principal.role.value, principal.region_code) == ("city-id-7f3a9c", "resident", "aizu")
    assert (principal.data_sharing, principal.area) == (True, "kitamachi")
    # A staff role is asserted by the provider, never defaulted; a region claim wins over the default.
    staff_token = provider.sign(clock, sub="op-1", role="operator", region="kita")
    staff = principal_from_claims(await verifier.verify(staff_token))
    assert (staff.role.value, staff.region_code, staff.data_sharing) == ("operator", "kita", None)


async def test_a_key_rotated_in_after_start_is_taken_and_the_one_rotated_out_refused(
    client, city_app, clock, provider, town, sessionmaker
):
    old_token = provider.sign(clock)
    assert (await client.get("/v1/wallet", headers=bearer(old_token))).status_code == 200
    assert provider.jwks_fetches == 1

    # The provider rotates: a new key id, the old key withdrawn. Its first token prompts one fetch.
    provider.rotate(KEYS[1], "city-2026-2")
    clock.advance(timedelta(seconds=1))
    response = await client.get("/v1/wallet", headers=bearer(provider.sign(clock)))
    assert response.status_code == 200, response.text
    assert provider.jwks_fetches == 2

    # Signed by the withdrawn key: a new token and the one remembered from before are both refused,
    # without asking the provider again (the set was just fetched).
    before = await snapshot(sessionmaker)
    stale = provider.sign(clock, kid="city-2026-1", key=KEYS[0], sub="city-id-other")
    for token in (stale, old_token):
        body = assert_problem(await client.get("/v1/wallet", headers=bearer(token)), 401, "invalid-token")
        assert "does not publish" in body["detail"] and "city-2026-1" in body["detail"]
    assert provider.jwks_fetches == 2
    assert await snapshot(sessionmaker) == before


async def test_unknown_key_ids_prompt_at_most_one_fetch_per_interval(
    client, city_app, clock, provider, town, sessionmaker
):
    assert (await client.get("/v1/wallet", headers=bearer(provider.sign(clock)))).status_code == 200
    before = await snapshot(sessionmaker)
    for n in range(5):  # made-up key ids, signed by a key the provider never had
        token = provider.sign(clock, kid=f"made-up-{n}", key=KEYS[2], sub=f"intruder-{n}")
        assert_problem(await client.get("/v1/wallet", headers=bearer(token)), 401, "invalid-token")
    assert provider.jwks_fetches == 2  # the start's, and one for the first unknown id
    clock.advance(timedelta(seconds=REFETCH_SECONDS))
    assert_problem(await client.get("/v1/wallet", headers=bearer(provider.sign(clock, kid="made-up-9", key=KEYS[2]))),
                   401, "invalid-token")
    assert provider.jwks_fetches == 3
    assert await snapshot(sessionmaker) == before


async def test_the_key_set_is_fetched_again_when_old_and_a_withdrawn_key_is_then_refused(
    client, city_app, clock, provider, town, sessionmaker
):
    """A rotation whose new key is not used yet: the old key's withdrawal is seen at the next
    scheduled fetch, and the token remembered before it is checked afresh and refused."""
    token = provider.sign(clock, exp=int(clock.now().timestamp()) + 3600)
    assert (await client.get("/v1/wallet", headers=bearer(token))).status_code == 200
    provider.rotate(KEYS[1], "city-2026-2")
    clock.advance(timedelta(seconds=KEY_RECHECK_SECONDS - 1))
    assert (await client.get("/v1/wallet", headers=bearer(token))).status_code == 200
    before = await snapshot(sessionmaker)
    clock.advance(timedelta(seconds=1))
    assert_problem(await client.get("/v1/wallet", headers=bearer(token)), 401, "invalid-token")
    assert provider.jwks_fetches == 2
    assert await snapshot(sessionmaker) == before


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"aud": "another-city-service"}, id="wrong-audience"),
        pytest.param({"iss": "https://id.other-city.example"}, id="wrong-issuer"),
        pytest.param({"exp": "expired"}, id="expired"),
        pytest.param({"chiikipay_data_sharing": "yes"}, id="opt-in-not-a-boolean"),
        pytest.param({"district": "Kita Machi"}, id="area-not-a-code"),
        pytest.param({"role": "terminal"}, id="a-key-role"),
    ],
)
async def test_city_tokens_with_bad_claims_are_refused_and_change_nothing(
    client, city_app, clock, provider, town, sessionmaker, claims
):
    if claims.get("exp") == "expired":
        claims = {"iat": int(clock.now().timestamp()) - 1000, "exp": int(clock.now().timestamp()) - 1}
    before = await snapshot(sessionmaker)
    assert_problem(await client.get("/v1/wallet", headers=bearer(provider.sign(clock, **claims))), 401, "invalid-token")
    assert await snapshot(sessionmaker) == before


async def test_a_discovery_document_of_another_issuer_is_not_trusted(settings, clock, provider):
    provider.discovery_issuer = "https://id.attacker.example"
    provider.requests.clear()
    try:
        verifier = TokenVerifier(city_settings(settings, provider), clock, dev_issuer=None)
        with pytest.raises(InvalidToken, match="could not be fetched.*issuer"):
            await verifier.verify(provider.sign(clock))
        # Refused without a fetch per token while the provider's document stays wrong.
        with pytest.raises(InvalidToken):
            await verifier.verify(provider.sign(clock, sub="someone-else"))
        assert provider.requests == ["/realms/residents/.well-known/openid-configuration"] * 2
    finally:
        provider.discovery_issuer = None


async def test_a_discovery_document_naming_a_file_as_its_keys_is_not_followed(settings, clock, provider):
    provider.jwks_uri = "file:///etc/passwd"
    provider.requests.clear()
    try:
        verifier = TokenVerifier(city_settings(settings, provider), clock, dev_issuer=None)
        with pytest.raises(InvalidToken, match="no HTTP\\(S\\) jwks_uri"):
            await verifier.verify(provider.sign(clock))
    finally:
        provider.jwks_uri = None


async def test_an_explicit_jwks_url_needs_no_discovery(settings, clock, provider):
    provider.published = [("city-2026-1", KEYS[0])]
    provider.requests.clear()
    verifier = TokenVerifier(
        city_settings(settings, provider, jwt_discovery=False,
                      jwt_jwks_url=provider.issuer + "/protocol/openid-connect/certs"),
        clock, dev_issuer=None,
    )
    assert (await verifier.verify(provider.sign(clock)))["sub"] == "city-id-7f3a9c"
    assert provider.requests == ["/realms/residents/protocol/openid-connect/certs"]
