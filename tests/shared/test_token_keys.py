"""Production token keys: a configured PEM public key, or the JWKS of the city's OpenID Connect
provider (served here from loopback), instead of the dev issuer."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.auth import KEY_RECHECK_SECONDS, TokenVerifier, principal_from_claims
from shared.errors import InvalidToken

PROVIDER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def token(clock, key, kid="city-1", issuer="https://id.city.example") -> str:
    now = int(clock.now().timestamp())
    claims = {"iss": issuer, "aud": "chiikipay", "sub": "resident-42", "iat": now, "exp": now + 300,
              "role": "resident", "region": "aizu"}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def jwks_url():
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(PROVIDER_KEY.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "city-1", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    server.shutdown()


def settings_for(settings, **changes):
    return settings.model_copy(update={"jwt_issuer": "https://id.city.example", **changes})


async def test_jwks_of_the_city_provider_verifies_its_tokens_only(settings, clock, jwks_url):
    verifier = TokenVerifier(settings_for(settings, jwt_jwks_url=jwks_url), clock, dev_issuer=None)
    claims = await verifier.verify(token(clock, PROVIDER_KEY))
    assert principal_from_claims(claims).subject == "resident-42"
    with pytest.raises(InvalidToken):
        await verifier.verify(token(clock, OTHER_KEY))
    with pytest.raises(InvalidToken):
        await verifier.verify(token(clock, PROVIDER_KEY, issuer="chiikipay-dev"))


async def test_a_configured_public_key_verifies_its_tokens_only(settings, clock):
    pem = PROVIDER_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    verifier = TokenVerifier(settings_for(settings, jwt_public_key=pem), clock, dev_issuer=None)
    assert (await verifier.verify(token(clock, PROVIDER_KEY)))["sub"] == "resident-42"
    with pytest.raises(InvalidToken):
        await verifier.verify(token(clock, OTHER_KEY))


def test_no_keys_at_all_is_a_configuration_error(settings, clock):
    with pytest.raises(RuntimeError, match="no token keys"):
        TokenVerifier(settings_for(settings), clock, dev_issuer=None)


async def test_a_remembered_token_is_still_checked_for_its_times_and_its_signature_rechecked_later(settings, clock):
    pem = PROVIDER_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    verifier = TokenVerifier(settings_for(settings, jwt_public_key=pem), clock, dev_issuer=None)
    now = int(clock.now().timestamp())
    genuine = jwt.encode({"iss": "https://id.city.example", "aud": "chiikipay", "sub": "resident-42", "iat": now,
                          "exp": now + 3600, "role": "resident", "region": "aizu"}, PROVIDER_KEY, algorithm="RS256")
    assert (await verifier.verify(genuine))["sub"] == "resident-42"
    # Remembered by its whole text: the same claims under another signature are checked afresh.
    forged = genuine.rsplit(".", 1)[0] + "." + token(clock, OTHER_KEY).rsplit(".", 1)[1]
    with pytest.raises(InvalidToken):
        await verifier.verify(forged)
    assert (await verifier.verify(genuine))["sub"] == "resident-42"
    # The key withdrawn: while remembered, the token is taken (as PyJWKClient's cached key would be);
    # once KEY_RECHECK_SECONDS have passed it is checked again, and refused.
    verifier.static_key = OTHER_KEY.public_key()
    clock.advance(timedelta(seconds=KEY_RECHECK_SECONDS - 60))
    assert (await verifier.verify(genuine))["sub"] == "resident-42"
    clock.advance(timedelta(seconds=60))
    with pytest.raises(InvalidToken, match="rejected"):
        await verifier.verify(genuine)


async def test_a_remembered_token_expires_on_time(settings, clock):
    pem = PROVIDER_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    verifier = TokenVerifier(settings_for(settings, jwt_public_key=pem), clock, dev_issuer=None)
    genuine = token(clock, PROVIDER_KEY)
    await verifier.verify(genuine)
    clock.advance(timedelta(seconds=299))
    assert (await verifier.verify(genuine))["sub"] == "resident-42"
    clock.advance(timedelta(seconds=1))
    with pytest.raises(InvalidToken, match="expired"):
        await verifier.verify(genuine)
