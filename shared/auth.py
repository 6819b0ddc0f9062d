"""Who is calling: OAuth2 bearer JWTs for people, API keys for merchant POS terminals, partner
systems and bus validators.

Tokens are RS256, checked for signature, issuer, audience and expiry. In production the keys come
from the city's OpenID Connect provider (a JWKS URL or a configured public key); on the embedded
default a built-in dev issuer signs them with a key kept in the data folder. Claims besides the
standard ones: `role`, `region` (the region code) and, for merchant roles, `merchant` (its id).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.ext.asyncio import AsyncSession

from shared.clock import Clock
from shared.config import Settings
from shared.db import SessionDep
from shared.errors import Forbidden, InvalidToken, Problem, Unauthenticated


class Role(StrEnum):
    RESIDENT = "resident"
    MERCHANT_STAFF = "merchant_staff"
    MERCHANT_ADMIN = "merchant_admin"
    OPERATOR = "operator"
    AUDITOR = "auditor"
    TERMINAL = "terminal"  # a merchant POS terminal authenticated by API key
    PARTNER = "partner"  # a partner system's API key, scoped to one grant campaign
    VALIDATOR = "validator"  # a bus validator device's API key, scoped to one bus operator
    # A partner service's API key (an online shop, a clinic's booking site), scoped to that one
    # partner service: it creates and manages its own checkouts only (services/platform).
    PARTNER_SERVICE = "partner_service"
    # Runs the platform that hosts the regions: onboards a region, lists them. Not of any region:
    # its token's `region` claim is PLATFORM_REGION, and no region's endpoint admits it.
    PLATFORM_OPERATOR = "platform_operator"


# The `region` claim of a platform operator's token: not a region code (codes are lower-case slugs).
PLATFORM_REGION = "*"
MERCHANT_ROLES = frozenset({Role.MERCHANT_STAFF, Role.MERCHANT_ADMIN, Role.TERMINAL})
# Roles that only API keys carry, never a token.
KEY_ROLES = frozenset({Role.TERMINAL, Role.PARTNER, Role.VALIDATOR, Role.PARTNER_SERVICE})


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request, with what the audit trail needs about it."""

    subject: str
    role: Role
    region_code: str
    merchant_id: uuid.UUID | None = None  # a merchant role's merchant; a validator's bus operator
    api_key_id: uuid.UUID | None = None
    campaign_id: uuid.UUID | None = None  # a partner key's one campaign
    partner_service_id: uuid.UUID | None = None  # a partner service key's one partner service
    request_id: str | None = None
    source_address: str | None = None

    @property
    def caller(self) -> str:
        """The scope of this caller's idempotency keys."""
        if self.api_key_id is not None:
            return f"api_key:{self.api_key_id}"
        return f"{self.region_code}:{self.role}:{self.subject}"


# --- tokens -----------------------------------------------------------------------------------

ALGORITHM = "RS256"
CLOCK_SKEW_SECONDS = 60  # tolerated drift between the identity provider's clock and ours


DEV_ISSUER_KEY_FILE = "dev-issuer-key.pem"


class NoDevIssuerKey(Exception):
    """The data folder holds no dev issuer key and this caller may not create one."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"no dev issuer key at {path}")
        self.path = path


def dev_issuer_key_path(settings: Settings) -> Path:
    return settings.data_dir.resolve() / DEV_ISSUER_KEY_FILE


class DevIssuer:
    """The built-in issuer of the embedded default; its private key lives in the data folder.

    The server creates the key on its first start. `chiikipay token` passes `create_key=False`:
    run in the wrong folder, a new key of its own would sign tokens the server refuses."""

    def __init__(self, settings: Settings, clock: Clock, *, create_key: bool = True) -> None:
        self.settings = settings
        self.clock = clock
        self.key_path = dev_issuer_key_path(settings)
        if not create_key and not self.key_path.exists():
            raise NoDevIssuerKey(self.key_path)
        self.private_key = _load_or_create_key(self.key_path)

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    def mint(
        self,
        *,
        subject: str,
        role: Role,
        region: str,
        merchant_id: uuid.UUID | None = None,
        ttl: timedelta | None = None,
    ) -> str:
        now = self.clock.now()
        ttl = ttl or timedelta(seconds=self.settings.dev_token_ttl_seconds)
        claims: dict[str, Any] = {
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "sub": subject,
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
            "role": role.value,
            "region": region,
        }
        if merchant_id is not None:
            claims["merchant"] = str(merchant_id)
        return jwt.encode(claims, self.private_key, algorithm=ALGORITHM)


def create_key_file(path: Path, pem: bytes) -> None:
    """Write a private key's file once (mode 0600), so that concurrent starters (several workers,
    several containers on one volume) all end up with the same key: the first link wins, the
    others' keys are dropped and they read the winner's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    tmp.write_bytes(pem)
    tmp.chmod(0o600)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def _load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    """The data folder's key, created on first use (create_key_file)."""
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        create_key_file(path, key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ))
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


# Verified tokens remembered per process, by their text: a resident's app sends the same token with
# every request for its lifetime, and checking its RS256 signature and its encoding (PyJWT walks
# the token character by character) costs about 60 µs of app CPU each time. Bounded (LRU), and an
# entry is trusted for KEY_RECHECK_SECONDS at most, the lifetime of PyJWKClient's key cache, so
# that a key the provider withdraws stops being accepted as soon as it would without the cache.
# Times (expiry, not-before) are checked against the clock on every use, never remembered.
VERIFIED_TOKENS = 4096
KEY_RECHECK_SECONDS = 300


class TokenVerifier:
    """Checks bearer tokens: the signature, issuer and audience once per token (then remembered,
    see VERIFIED_TOKENS), its times against the clock on every use."""

    def __init__(self, settings: Settings, clock: Clock, dev_issuer: DevIssuer | None) -> None:
        self.settings = settings
        self.clock = clock
        self._verified: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self.static_key: Any = None
        self.jwks: jwt.PyJWKClient | None = None
        if settings.jwt_jwks_url:
            self.jwks = jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True)
        elif settings.jwt_public_key:
            self.static_key = serialization.load_pem_public_key(settings.jwt_public_key.encode())
        elif dev_issuer is not None:
            self.static_key = dev_issuer.public_key
        else:
            raise RuntimeError("no token keys: set JWT_JWKS_URL or JWT_PUBLIC_KEY, or enable the dev issuer")

    async def verify(self, token: str) -> dict[str, Any]:
        now = self.clock.now().timestamp()
        claims = self._remembered(token, now)
        if claims is None:
            claims = await self._signed_claims(token)
            self._remember(token, claims, now)
        for claim in ("exp", "iat", "nbf"):
            # NumericDate (RFC 7519): a number of seconds. A signed token may still carry a string.
            if claim in claims and (isinstance(claims[claim], bool) or not isinstance(claims[claim], (int, float))):
                raise InvalidToken(f"The token's `{claim}` is not a time in seconds.")
        if claims["exp"] <= now:
            raise InvalidToken("The bearer token has expired.")
        if claims["iat"] > now + CLOCK_SKEW_SECONDS or claims.get("nbf", 0) > now + CLOCK_SKEW_SECONDS:
            raise InvalidToken("The bearer token is not valid yet.")
        return claims

    def _remembered(self, token: str, now: float) -> dict[str, Any] | None:
        found = self._verified.get(token)
        if found is None:
            return None
        checked_at, claims = found
        if not checked_at <= now < checked_at + KEY_RECHECK_SECONDS:
            del self._verified[token]
            return None
        self._verified.move_to_end(token)
        return claims

    def _remember(self, token: str, claims: dict[str, Any], now: float) -> None:
        self._verified[token] = (now, claims)
        if len(self._verified) > VERIFIED_TOKENS:
            self._verified.popitem(last=False)

    async def _signed_claims(self, token: str) -> dict[str, Any]:
        """The token's claims once its signature, issuer, audience and required claims are checked."""
        try:
            key = self.static_key
            if self.jwks is not None:
                # PyJWKClient fetches over blocking HTTP (and caches); keep it off the event loop.
                key = (await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)).key
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                # Times are checked in `verify` against the injectable clock, so tests move time, not wait.
                options={"require": ["exp", "iat", "sub", "iss", "aud"], "verify_exp": False,
                         "verify_iat": False, "verify_nbf": False},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"The bearer token was rejected: {exc}.") from None
        return claims


# OpenID Connect Core: `sub` is a case-sensitive string of at most 255 ASCII characters. Only
# printable ones without spaces are taken: a subject is stored, logged and used as a key, and an
# empty one would be a wallet every such token shared.
SUBJECT = re.compile(r"[!-~]{1,255}")
# A region's code names it in tokens and URLs, and its QR GUID is "jp.chiikipay.<code>", which
# EMVCo caps at 32 characters: hence 2 to 19 characters.
REGION_CODE = re.compile(r"[a-z][a-z0-9-]{0,17}[a-z0-9]")


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    try:
        role = Role(claims.get("role"))
    except ValueError:
        raise InvalidToken("The token carries no known role.") from None
    if role in KEY_ROLES:
        raise InvalidToken("Terminals, partner systems and validators authenticate with an API key, not a token.")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not SUBJECT.fullmatch(subject):
        raise InvalidToken("The token's subject must be 1 to 255 printable ASCII characters without spaces.")
    region = claims.get("region")
    if role is Role.PLATFORM_OPERATOR:
        if region != PLATFORM_REGION:
            raise InvalidToken(f"A platform operator's token carries the region claim {PLATFORM_REGION!r}.")
    elif not isinstance(region, str) or not REGION_CODE.fullmatch(region):
        raise InvalidToken("The token names no region code (lower-case letters, digits, '-').")
    merchant_id = None
    if role in MERCHANT_ROLES:
        try:
            merchant_id = uuid.UUID(str(claims.get("merchant")))
        except ValueError:
            raise InvalidToken("A merchant role needs the merchant's id in the `merchant` claim.") from None
    return Principal(subject=subject, role=role, region_code=region, merchant_id=merchant_id)


# --- API keys ---------------------------------------------------------------------------------

API_KEY_PREFIX = "ckpos_"
PARTNER_KEY_PREFIX = "ckgrant_"  # a partner system's key for one grant campaign
VALIDATOR_KEY_PREFIX = "ckbus_"  # a bus validator's key for one bus operator
PARTNER_SERVICE_KEY_PREFIX = "ckpay_"  # a partner service's key for its checkouts


def new_api_key_secret() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(secret: str) -> str:
    # The secret has 256 random bits, so a plain SHA-256 suffices; no slow hash needed.
    return hashlib.sha256(secret.encode()).hexdigest()


# The service that owns merchants resolves a presented key to its principal (None: no such key).
ApiKeyResolver = Callable[[AsyncSession, str], Awaitable[Principal | None]]


# --- dependencies -----------------------------------------------------------------------------

bearer_scheme = HTTPBearer(auto_error=False, description="OAuth2 bearer JWT")
api_key_scheme = APIKeyHeader(
    name="X-API-Key", auto_error=False,
    description="Merchant POS terminal key, a partner system's grant key, a bus validator's key, or a partner service's checkout key",
)


async def token_principal(request: Request, token: str) -> Principal:
    """The person a bearer token names, once the app's verifier has checked it."""
    verifier: TokenVerifier = request.app.state.token_verifier
    return principal_from_claims(await verifier.verify(token))


async def current_principal(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Principal:
    if api_key:
        resolver: ApiKeyResolver = request.app.state.api_key_resolver
        found = await resolver(session, api_key)
        if found is None:
            raise InvalidToken("The API key is unknown or revoked.")
        principal = found
    elif credentials is not None:
        principal = await token_principal(request, credentials.credentials)
    else:
        raise Unauthenticated("Send `Authorization: Bearer <token>` (or `X-API-Key` from a terminal).")
    return replace(
        principal,
        request_id=request.scope.get("state", {}).get("request_id"),
        source_address=request.client.host if request.client else None,
    )


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(*roles: Role) -> Any:
    """A dependency admitting only the given roles; every endpoint declares its roles with it.

    A partner key may grant points in its one campaign and read its own grants, nothing else: it
    passes only gates that name `Role.PARTNER` among a chosen few, never an "every role" gate; a
    validator key likewise only the transit gates that name `Role.VALIDATOR`, and a partner
    service's key only the checkout gates that name `Role.PARTNER_SERVICE`. Nor does a platform
    operator, whose work is hosting regions, not acting inside one."""
    allowed = frozenset(roles)
    if allowed == frozenset(Role):
        allowed -= {Role.PARTNER, Role.VALIDATOR, Role.PARTNER_SERVICE, Role.PLATFORM_OPERATOR}

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if principal.role not in allowed:
            raise Forbidden(
                f"Role {principal.role.value} may not do this; allowed: {', '.join(sorted(allowed))}."
            )
        return principal

    dependency.admitted_roles = allowed  # type: ignore[attr-defined]  # see gate_roles
    return Depends(dependency)


async def admitted_by_token(request: Request, gate: Any) -> Principal | None:
    """The caller that the `require(...)` gate `gate` would admit by a bearer token, for an answer
    given before the request's dependencies (shared/early.py); None wherever the gate's own path
    must answer instead: an API key sent, no bearer token, a token refused, a role not admitted."""
    headers = request.headers
    if api_key_scheme.model.name.lower() in headers:
        return None
    scheme, token = get_authorization_scheme_param(headers.get("authorization"))
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        principal = await token_principal(request, token)
    except Problem:
        return None
    admitted = gate_roles(gate.dependency)
    assert admitted is not None, "a gate made by require(...)"
    return principal if principal.role in admitted else None


def gate_roles(call: Any) -> frozenset[Role] | None:
    """The roles a `require(...)` gate admits, None for any other dependency: the OpenAPI
    document declares each operation's security from its gates (shared/openapi.py)."""
    return getattr(call, "admitted_roles", None)
