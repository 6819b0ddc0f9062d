"""Who is calling: OAuth2 bearer JWTs for people, API keys for merchant POS terminals, partner
systems and bus validators.

Tokens are RS256, checked for signature, issuer, audience and expiry. In production the keys come
from the city's OpenID Connect provider (its JWKS, named by a URL or found through the issuer's
discovery document, or a configured public key); on the embedded default a built-in dev issuer
signs them with a key kept in the data folder. Claims besides the standard ones: `role`, `region`
(the region code) and, for merchant roles, `merchant` (its id); a resident's token may carry the
data-sharing opt-in and an area attribute. A provider that names them otherwise is mapped by the
settings (`JWT_*_CLAIM`, README "Sign-in with the city's ID").
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
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
from urllib.parse import urlsplit
from urllib.request import Request as HttpRequest
from urllib.request import urlopen

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
    # A resident's token from the city's ID: their opt-in to share payment results with the city's
    # data platform and their area attribute, as the provider asserts them (None: not asserted).
    data_sharing: bool | None = None
    area: str | None = None

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


log = logging.getLogger(__name__)

# Verified tokens remembered per process, by their text: a resident's app sends the same token with
# every request for its lifetime, and checking its RS256 signature and its encoding (PyJWT walks
# the token character by character) costs about 60 µs of app CPU each time. Bounded (LRU), and an
# entry is trusted for KEY_RECHECK_SECONDS at most, the lifetime of the provider's fetched keys
# (ProviderKeys), so that a key the provider withdraws stops being accepted at the next fetch of
# its JWKS at the latest: a remembered token whose key is no longer published is checked afresh.
# Times (expiry, not-before) are checked against the clock on every use, never remembered.
VERIFIED_TOKENS = 4096
KEY_RECHECK_SECONDS = 300
# What the provider's discovery document and JWKS may be: a few keys, never megabytes.
PROVIDER_DOCUMENT_BYTES = 256 * 1024
PROVIDER_TIMEOUT_SECONDS = 5.0


class ProviderKeyError(Exception):
    """The provider's discovery document or JWKS could not be fetched or made no sense."""


def _fetch_json(url: str) -> dict[str, Any]:
    """One GET of a provider's JSON document (blocking: run it in a thread)."""
    request = HttpRequest(url, headers={"Accept": "application/json", "User-Agent": "chiikipay"})
    try:
        with urlopen(request, timeout=PROVIDER_TIMEOUT_SECONDS) as response:
            body = response.read(PROVIDER_DOCUMENT_BYTES + 1)
    except OSError as exc:  # URLError, HTTPError and timeouts are all OSErrors
        raise ProviderKeyError(f"GET {url} failed: {exc}") from None
    if len(body) > PROVIDER_DOCUMENT_BYTES:
        raise ProviderKeyError(f"GET {url}: the document is larger than {PROVIDER_DOCUMENT_BYTES} bytes")
    try:
        document = json.loads(body)
    except ValueError:
        raise ProviderKeyError(f"GET {url}: not JSON") from None
    if not isinstance(document, dict):
        raise ProviderKeyError(f"GET {url}: not a JSON object")
    return document


class ProviderKeys:
    """The signing keys the city's OpenID Connect provider publishes in its JWKS, by key id.

    Fetched on first use and again once KEY_RECHECK_SECONDS old (the clock's time, so tests move
    time instead of waiting). A token naming a key id not in the set prompts one fetch at once —
    the provider has rotated its key and signs with the new one — but at most one such fetch per
    `jwt_jwks_refetch_seconds`, so that tokens with made-up key ids cannot make the server hammer
    the provider; within that interval an unknown key id is refused without a fetch. With
    `jwt_discovery`, the JWKS URL is read from the issuer's discovery document
    (`<issuer>/.well-known/openid-configuration`) at each fetch, its `issuer` checked against ours
    (OpenID Connect Discovery 1.0, section 4.3). A failed fetch keeps the keys already known."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        assert settings.jwt_jwks_url or settings.jwt_discovery
        self.settings = settings
        self.clock = clock
        self.keys: dict[str, Any] = {}  # kid -> public key
        self.fetched_at: float | None = None
        self.last_error: str | None = None
        self._unknown_kid_fetch_at = -math.inf
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> Any:
        now = self.clock.now().timestamp()
        refreshed = not self._fresh(now)
        if refreshed:
            await self._refresh(now, force=False)
        if kid is None:
            # A provider with one key may leave `kid` out (RFC 7515 makes it optional).
            if len(self.keys) == 1:
                return next(iter(self.keys.values()))
            if not self.keys:
                raise InvalidToken(f"The identity provider's keys could not be fetched: {self.last_error}.")
            raise InvalidToken("The token names no key (`kid`) and the identity provider publishes several.")
        if kid not in self.keys and self._lock.locked():
            # A fetch is in flight (a rotation's first tokens arrive together): its keys decide.
            async with self._lock:
                pass
        if (kid not in self.keys and not refreshed
                and now >= self._unknown_kid_fetch_at + self.settings.jwt_jwks_refetch_seconds):
            self._unknown_kid_fetch_at = now
            await self._refresh(now, force=True)
        found = self.keys.get(kid)
        if found is None:
            if self.last_error is not None and not self.keys:
                raise InvalidToken(f"The identity provider's keys could not be fetched: {self.last_error}.")
            raise InvalidToken(f"The token is signed by a key the identity provider does not publish (kid {kid!r}).")
        return found

    def _fresh(self, now: float) -> bool:
        return self.fetched_at is not None and self.fetched_at <= now < self.fetched_at + KEY_RECHECK_SECONDS

    async def _refresh(self, now: float, *, force: bool) -> None:
        async with self._lock:
            if not force and self._fresh(now):
                return  # fetched by another request while this one waited for the lock
            try:
                self.keys = await asyncio.to_thread(self._fetch_keys)
                self.last_error = None
            except ProviderKeyError as exc:
                # The known keys stay (a provider's brief outage must not sign everyone out), and
                # the next try waits as a fresh fetch would: no fetch per request while it is down.
                self.last_error = str(exc)
                log.warning("identity provider keys not refreshed, %d known kept: %s", len(self.keys), exc)
            self.fetched_at = now

    def _fetch_keys(self) -> dict[str, Any]:
        jwks_url = self.settings.jwt_jwks_url
        if jwks_url is None:
            discovery = _fetch_json(discovery_url(self.settings.jwt_issuer))
            if discovery.get("issuer") != self.settings.jwt_issuer:
                raise ProviderKeyError(
                    f"the discovery document's issuer {discovery.get('issuer')!r} is not {self.settings.jwt_issuer!r}"
                )
            jwks_url = discovery.get("jwks_uri")
            # Fetched like the configured URLs: only over HTTP(S), never a file or another scheme.
            if not isinstance(jwks_url, str) or urlsplit(jwks_url).scheme not in ("https", "http"):
                raise ProviderKeyError(f"the discovery document names no HTTP(S) jwks_uri: {jwks_url!r}")
        document = _fetch_json(jwks_url)
        if not isinstance(document.get("keys"), list):
            raise ProviderKeyError(f"{jwks_url} is not a JWK set")
        keys = {}
        for jwk in document["keys"]:
            # Only RS256 signing keys with an id: an encryption key, or another algorithm's, is
            # not one a token of ours may be signed with.
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig" or jwk.get("alg", ALGORITHM) != ALGORITHM:
                continue
            if jwk.get("kty") != "RSA" or not isinstance(jwk.get("kid"), str):
                continue
            try:
                keys[jwk["kid"]] = jwt.PyJWK(jwk, algorithm=ALGORITHM).key
            except jwt.PyJWTError:
                continue
        if not keys:
            raise ProviderKeyError(f"{jwks_url} publishes no RS256 signing key")
        return keys


def discovery_url(issuer: str) -> str:
    """OpenID Connect Discovery 1.0, section 4: the issuer with the well-known path appended."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


class TokenVerifier:
    """Checks bearer tokens: the signature, issuer and audience once per token (then remembered,
    see VERIFIED_TOKENS), its times against the clock on every use."""

    def __init__(self, settings: Settings, clock: Clock, dev_issuer: DevIssuer | None) -> None:
        self.settings = settings
        self.clock = clock
        # token -> (when it was checked, its claims, the key id it was checked with)
        self._verified: OrderedDict[str, tuple[float, dict[str, Any], str | None]] = OrderedDict()
        self.static_key: Any = None
        self.provider_keys: ProviderKeys | None = None
        if settings.jwt_jwks_url or settings.jwt_discovery:
            self.provider_keys = ProviderKeys(settings, clock)
        elif settings.jwt_public_key:
            self.static_key = serialization.load_pem_public_key(settings.jwt_public_key.encode())
        elif dev_issuer is not None:
            self.static_key = dev_issuer.public_key
        else:
            raise RuntimeError(
                "no token keys: set JWT_JWKS_URL, JWT_DISCOVERY or JWT_PUBLIC_KEY, or enable the dev issuer"
            )

    async def verify(self, token: str) -> dict[str, Any]:
        now = self.clock.now().timestamp()
        claims = self._remembered(token, now)
        if claims is None:
            claims, kid = await self._signed_claims(token)
            self._remember(token, claims, kid, now)
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
        checked_at, claims, kid = found
        withdrawn = self.provider_keys is not None and kid not in self.provider_keys.keys
        if withdrawn or not checked_at <= now < checked_at + KEY_RECHECK_SECONDS:
            del self._verified[token]
            return None
        self._verified.move_to_end(token)
        return claims

    def _remember(self, token: str, claims: dict[str, Any], kid: str | None, now: float) -> None:
        self._verified[token] = (now, claims, kid)
        if len(self._verified) > VERIFIED_TOKENS:
            self._verified.popitem(last=False)

    async def _signed_claims(self, token: str) -> tuple[dict[str, Any], str | None]:
        """The token's claims, in our names (`mapped_claims`), once its signature, issuer,
        audience and required claims are checked; and the id of the provider's key it was checked with."""
        try:
            key, kid = self.static_key, None
            if self.provider_keys is not None:
                kid = jwt.get_unverified_header(token).get("kid")
                if kid is not None and not isinstance(kid, str):
                    raise InvalidToken("The token's key id (`kid`) is not a string.")
                key = await self.provider_keys.key(kid)
                if kid is None:
                    kid = next(k for k, v in self.provider_keys.keys.items() if v is key)
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
        return mapped_claims(self.settings, claims), kid


def mapped_claims(settings: Settings, claims: dict[str, Any]) -> dict[str, Any]:
    """The provider's claims under the names principal_from_claims reads (`role`, `region`,
    `data_sharing`, `area`): a city's provider names its own (JWT_ROLE_CLAIM …), and its
    residents' tokens may carry no role or region at all (JWT_DEFAULT_ROLE, JWT_DEFAULT_REGION).
    Done once per token, as the signature is."""
    names = {"role": settings.jwt_role_claim, "region": settings.jwt_region_claim,
             "data_sharing": settings.jwt_data_sharing_claim, "area": settings.jwt_area_claim}
    mapped = {k: v for k, v in claims.items() if k not in names}
    for ours, theirs in names.items():
        if theirs in claims:
            mapped[ours] = claims[theirs]
    if "role" not in mapped and settings.jwt_default_role is not None:
        mapped["role"] = settings.jwt_default_role
    if "region" not in mapped and settings.jwt_default_region is not None:
        mapped["region"] = settings.jwt_default_region
    return mapped


# OpenID Connect Core: `sub` is a case-sensitive string of at most 255 ASCII characters. Only
# printable ones without spaces are taken: a subject is stored, logged and used as a key, and an
# empty one would be a wallet every such token shared.
SUBJECT = re.compile(r"[!-~]{1,255}")
# A region's code names it in tokens and URLs, and its QR GUID is "jp.chiikipay.<code>", which
# EMVCo caps at 32 characters: hence 2 to 19 characters.
REGION_CODE = re.compile(r"[a-z][a-z0-9-]{0,17}[a-z0-9]")
# An area attribute: a code the region publishes (a district, a school zone), as segments store it.
AREA_CODE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


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
    data_sharing, area = claims.get("data_sharing"), claims.get("area")
    if role is Role.RESIDENT:
        if data_sharing is not None and not isinstance(data_sharing, bool):
            raise InvalidToken("The token's data-sharing opt-in claim must be true or false.")
        if area is not None and not (isinstance(area, str) and AREA_CODE.fullmatch(area)):
            raise InvalidToken("The token's area claim must be an area code (lower-case letters, digits, '-', '_').")
    else:
        # Only a resident's own sharing is theirs to assert; on staff tokens the claims mean nothing here.
        data_sharing = area = None
    return Principal(subject=subject, role=role, region_code=region, merchant_id=merchant_id,
                     data_sharing=data_sharing, area=area)


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
# What a resident's token asserts about them (Principal.data_sharing, .area), handed to whoever
# keeps it (the composition root registers it as app.state.claims_observer), in the request's
# session: the city's ID is where a resident may opt in to data sharing. It must be cheap when
# nothing changed: it runs on every request whose token carries those claims.
ClaimsObserver = Callable[[AsyncSession, Clock, Principal], Awaitable[None]]


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
        if principal.data_sharing is not None or principal.area is not None:
            observer: ClaimsObserver | None = getattr(request.app.state, "claims_observer", None)
            if observer is not None:
                await observer(session, request.app.state.clock, principal)
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
