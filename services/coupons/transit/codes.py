"""The e-ticket's rotating code: what the resident's app shows and a bus validator checks, online
or offline. Pure Python on `cryptography` (no database): a validator device runs `verify` as it is.

**Payload.** Per ticket and per 30-second time step (`step = unix time // 30`), the server signs
with the region's Ed25519 key: the ticket id, the region, the bus operator, the product kind,
the rider category, the ticket's validity end and the step. The code is `CKT1.` and the
base64url text of those bytes, the key id and the signature (about 160 characters, one QR).

**Why it goes stale.** A validator accepts a code whose step is within ±1 of its own clock's
step: a code shown at 10:00:00 passes until 10:00:59 at the latest, so a screenshot sent to a
friend is refused about a minute later. The app fetches the current step's code and the next
few steps' (`GET /v1/me/transit/tickets/{id}/code`), so it can show them for a few minutes
without a connection. Clocks must be right to within a step (validators sync by NTP or GPS).

**What it cannot do.** A code proves that the region sold this ticket with these rights at
signing time; it cannot know whether another bus, offline too, just took its last ride. Offline
scans are reconciled on upload, and a ticket used beyond its rights is reported as a conflict.

**Keys.** Each key has an id (`kid`: the first 6 bytes of the SHA-256 of the raw public key,
base64url) carried in the code, so validators keep the previous key while a new one takes over.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.coupons.transit.errors import TicketCodeForged, TicketCodeStale, TicketExpired, TicketOtherOperator
from shared.config import Settings

STEP_SECONDS = 30
TOLERATED_STEPS = 1  # a step either side of the validator's own: its clock may drift by up to 30 s
PREFIX = "CKT1."
SIGNING_KEY_FILE = "transit-signing-key.pem"


class ProductKind(StrEnum):
    """GTFS-Fares v2 fare products as a bus operator sells them."""

    SINGLE_RIDE = "single_ride"
    DAY_PASS = "day_pass"  # unlimited rides for 24 h from its first activation
    MULTI_RIDE = "multi_ride"  # N rides


class RiderCategory(StrEnum):
    """GTFS-Fares v2 rider categories; the validator shows it, so the driver sees a child's ticket."""

    ADULT = "adult"
    CHILD = "child"
    ELDERLY = "elderly"


# Their numbers in the payload: never renumbered, codes in validators' hands carry them.
_KINDS = {ProductKind.SINGLE_RIDE: 1, ProductKind.DAY_PASS: 2, ProductKind.MULTI_RIDE: 3}
_CATEGORIES = {RiderCategory.ADULT: 1, RiderCategory.CHILD: 2, RiderCategory.ELDERLY: 3}
_VERSION = 1
# version, key id, ticket id, bus operator, kind, rider category, validity end (unix s), step, region's length
_HEAD = struct.Struct(">B6s16s16sBBQQB")
_SIGNATURE = 64


@dataclass(frozen=True)
class TicketClaims:
    """What a valid code says."""

    ticket_id: uuid.UUID
    region: str  # the region's code
    operator_id: uuid.UUID  # the bus operator's merchant id
    kind: ProductKind
    rider_category: RiderCategory
    valid_until: datetime  # the ticket may not be used from then on (a day pass: 24 h after activation)
    step: int


def step_of(at: datetime) -> int:
    return int(at.timestamp()) // STEP_SECONDS


def step_start(step: int) -> datetime:
    return datetime.fromtimestamp(step * STEP_SECONDS, UTC)


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _b64(hashlib.sha256(raw).digest()[:6])


def raw_public_key(public_key: Ed25519PublicKey) -> str:
    """The 32 raw bytes, base64url: what `GET /v1/transit/keys` publishes."""
    return _b64(public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def public_key_from_raw(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_unb64(text))


def sign(private_key: Ed25519PrivateKey, claims: TicketClaims) -> str:
    region = claims.region.encode("ascii")
    head = _HEAD.pack(
        _VERSION, _unb64(key_id(private_key.public_key())), claims.ticket_id.bytes, claims.operator_id.bytes,
        _KINDS[claims.kind], _CATEGORIES[claims.rider_category], int(claims.valid_until.timestamp()), claims.step,
        len(region),
    ) + region
    return PREFIX + _b64(head + private_key.sign(head))


def verify(
    code: str, *, keys: Mapping[str, Ed25519PublicKey], region: str, operator_id: uuid.UUID, at: datetime
) -> TicketClaims:
    """The reference offline verifier a validator device runs: the claims of `code` if the region
    signed it with one of `keys` (by key id), it is for this validator's region and bus operator,
    its step is within ±1 of `at`'s (the device's clock; an offline scan's own time on upload)
    and the ticket is still valid at `at`. Raises ticket-code-forged, ticket-other-operator,
    ticket-code-stale or ticket-expired, checked in that order."""
    kid, claims, signed, signature = _read(code)
    key = keys.get(kid)
    if key is None:
        raise TicketCodeForged("The code is signed with a key this validator does not know.", key_id=kid)
    try:
        key.verify(signature, signed)
    except InvalidSignature:
        raise TicketCodeForged("The code's signature does not match its content.") from None
    if claims.region != region or claims.operator_id != operator_id:
        raise TicketOtherOperator("The ticket is for another bus operator; this validator may not take it.")
    now_step = step_of(at)
    if abs(claims.step - now_step) > TOLERATED_STEPS:
        raise TicketCodeStale(
            f"The code is of step {claims.step}, the validator's clock at step {now_step}: refresh the code.",
            step=claims.step, validator_step=now_step,
        )
    if claims.valid_until <= at:
        raise TicketExpired(f"The ticket was valid until {claims.valid_until.isoformat()}.",
                            valid_until=claims.valid_until.isoformat())
    return claims


def _read(code: str) -> tuple[str, TicketClaims, bytes, bytes]:
    """The parts of a code, or ticket-code-forged if it is not even shaped like one."""
    try:
        if not code.startswith(PREFIX):
            raise ValueError("no prefix")
        data = _unb64(code[len(PREFIX):])
        head = data[:_HEAD.size]
        version, kid, ticket, operator, kind, category, valid_until, step, length = _HEAD.unpack(head)
        signed, signature = data[:_HEAD.size + length], data[_HEAD.size + length:]
        if version != _VERSION or len(signature) != _SIGNATURE:
            raise ValueError("not this format")
        claims = TicketClaims(
            uuid.UUID(bytes=ticket), signed[_HEAD.size:].decode("ascii"), uuid.UUID(bytes=operator),
            _by_number(_KINDS, kind), _by_number(_CATEGORIES, category),
            datetime.fromtimestamp(valid_until, UTC), step,
        )
    except (ValueError, struct.error, binascii.Error, OverflowError, OSError):
        raise TicketCodeForged("This is not a ticket code.") from None
    return _b64(kid), claims, signed, signature


def _by_number(numbers: Mapping[StrEnum, int], number: int) -> Any:
    for member, n in numbers.items():
        if n == number:
            return member
    raise ValueError(f"unknown number {number}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- the server's keys --------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKeys:
    """The key the server signs with, and every public key a validator must accept (by id)."""

    private_key: Ed25519PrivateKey
    key_id: str
    accepted: Mapping[str, Ed25519PublicKey]


def signing_keys(settings: Settings) -> SigningKeys:
    """From the settings in production (`TRANSIT_SIGNING_KEY`, and the previous key's public half
    after a rotation); on the embedded default, the data folder's key, created on first start."""
    return _keys(settings.transit_signing_key, settings.data_dir.resolve() / SIGNING_KEY_FILE,
                 settings.transit_previous_public_key)


@lru_cache(maxsize=8)
def _keys(pem: str | None, path: Path, previous: str | None) -> SigningKeys:
    private = _load_private(pem.encode()) if pem else _load_or_create(path)
    accepted = {key_id(private.public_key()): private.public_key()}
    if previous:
        old = serialization.load_pem_public_key(previous.encode())
        assert isinstance(old, Ed25519PublicKey), "TRANSIT_PREVIOUS_PUBLIC_KEY is an Ed25519 public key"
        accepted[key_id(old)] = old
    return SigningKeys(private, key_id(private.public_key()), accepted)


def _load_private(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, Ed25519PrivateKey), "the transit signing key is an Ed25519 private key"
    return key


def _load_or_create(path: Path) -> Ed25519PrivateKey:
    """As the dev issuer's key (shared/auth.py): concurrent starters end with one key, the first link wins."""
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
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
    return _load_private(path.read_bytes())


@dataclass(frozen=True)
class StepCode:
    step: int
    code: str
    valid_from: datetime  # a validator whose clock is right accepts it from then (its step - 1) …
    valid_until: datetime  # … until then (after its step + 1)


def codes_from(keys: SigningKeys, claims: TicketClaims, steps: int) -> list[StepCode]:
    """The code of `claims.step` and of the `steps - 1` steps after it."""
    return [
        StepCode(step, sign(keys.private_key, replace(claims, step=step)), step_start(step - TOLERATED_STEPS),
                 step_start(step + TOLERATED_STEPS + 1))
        for step in range(claims.step, claims.step + steps)
    ]

