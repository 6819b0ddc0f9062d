"""Partner services: the operator registers one (its name, the merchant its checkouts pay, the
URLs its webhooks and return links may point to), and it gets an API key scoped to it and a
secret its webhooks are signed with, each shown once, each rotatable; revoking the partner stops
its keys at once.

**Keys.** A partner service's key is an API key like a terminal's, a grant partner's or a bus
validator's (shared.auth): its own prefix (`ckpay_`), only its SHA-256 kept, resolved by
app/wiring.py to a principal of role `partner_service` scoped to this one partner service.
Rotating makes a new key and revokes the old one at once (a partner that must overlap two keys
asks for the new one first and switches within the same deployment).

**URLs.** A callback URL is https, or http only on this machine (a partner's test setup); never
with credentials or a fragment. A URL is allowed for a partner when it has the scheme, host and
port of one of its callback URLs and a path at or below that URL's path (`/shop` allows
`/shop/return?order=1`, not `/shopping`).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from services.platform.outbox.service import Message
from services.platform.partners import repository as repo
from services.platform.partners.errors import (
    CallbackUrlInvalid,
    PartnerMerchantHasNoStore,
    PartnerNameTaken,
    PartnerNotFound,
    PartnerRevoked,
    UrlNotAllowed,
)
from services.platform.partners.models import PartnerService, PartnerStatus
from services.wallet import public as wallet
from shared import audit
from shared.audit import Actor
from shared.auth import PARTNER_SERVICE_KEY_PREFIX, Principal, Role, hash_api_key
from shared.clock import Clock
from shared.ids import new_id

DESTINATION = "partner"  # the outbox's destination kind of a partner service's webhooks
SIGNING_SECRET_PREFIX = "whsec_"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass(frozen=True)
class PartnerScope:
    """What a partner service's key acts as: its region and its one partner service."""

    region: str
    partner_id: uuid.UUID
    api_key_id: uuid.UUID


def _new_key() -> str:
    return PARTNER_SERVICE_KEY_PREFIX + secrets.token_urlsafe(32)


def _new_signing_secret() -> str:
    return SIGNING_SECRET_PREFIX + secrets.token_urlsafe(32)


async def resolve_partner_service_key(session: AsyncSession, secret: str) -> Principal | None:
    """The partner service behind a presented key (app/wiring.py asks); None if unknown, revoked,
    or its partner service is revoked."""
    found = await repo.active_key(session, hash_api_key(secret))
    if found is None:
        return None
    key, partner = found
    return Principal(
        subject=f"api_key:{key.id}", role=Role.PARTNER_SERVICE, region_code=key.region_code, api_key_id=key.id,
        partner_service_id=partner.id,
    )


def check_callback_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a port that is not a number in range
    except ValueError:
        raise CallbackUrlInvalid(f"{url!r} is not a URL.", url=url) from None
    local = parts.hostname in LOOPBACK_HOSTS
    if (parts.scheme not in ("https", "http") or (parts.scheme == "http" and not local) or not parts.hostname
            or parts.username is not None or parts.password is not None or parts.fragment):
        raise CallbackUrlInvalid(f"{url!r} is not an https URL without credentials or fragment.", url=url)


def _within(path: str, allowed: str) -> bool:
    allowed = allowed or "/"
    return path == allowed or path.startswith(allowed.rstrip("/") + "/")


def url_allowed(partner: PartnerService, url: str) -> bool:
    try:
        wanted = urlsplit(url)
        port = wanted.port
    except ValueError:
        return False
    if wanted.username is not None or wanted.password is not None or wanted.fragment:
        return False
    for allowed in map(urlsplit, partner.callback_urls):
        if (wanted.scheme, wanted.hostname, port) == (allowed.scheme, allowed.hostname, allowed.port) and _within(
            wanted.path or "/", allowed.path
        ):
            return True
    return False


def check_url_allowed(partner: PartnerService, url: str, field: str) -> None:
    if not url_allowed(partner, url):
        raise UrlNotAllowed(f"The {field} {url!r} is not on {partner.name}'s list of allowed URLs.", field=field,
                            url=url)


async def register(
    session: AsyncSession, clock: Clock, actor: Actor, *, region: str, name: str, merchant_id: uuid.UUID,
    callback_urls: Sequence[str],
) -> tuple[PartnerService, str, str]:
    """The partner service, its API key and its signing secret (both shown this once)."""
    for url in callback_urls:
        check_callback_url(url)
    merchant = await wallet.merchant(session, region=region, merchant_id=merchant_id)
    if not merchant.store_ids:
        raise PartnerMerchantHasNoStore(f"{merchant.name_ja} has no store to take the partner's payments at.")
    now = clock.now()
    signing_secret = _new_signing_secret()
    made = await repo.insert_partner(
        session, id=new_id(), region_id=merchant.region_id, name=name, merchant_id=merchant.id,
        callback_urls=list(dict.fromkeys(callback_urls)), signing_secret=signing_secret,
        status=PartnerStatus.ACTIVE.value, created_by=actor.subject, created_at=now, revoked_at=None,
    )
    if made is None:
        raise PartnerNameTaken(f"Region {region} already has a partner service named {name!r}.")
    key = await _issue_key(session, clock, actor, region=region, partner=made)
    await audit.record(
        session, clock, actor, region_id=made.region_id, action="partner_service.register", target_type="partner_service",
        target_id=made.id, after={"name": name, "merchant_id": str(merchant.id), "callback_urls": made.callback_urls},
    )
    return made, key, signing_secret


async def _issue_key(session: AsyncSession, clock: Clock, actor: Actor, *, region: str, partner: PartnerService) -> str:
    secret = _new_key()
    await repo.insert_key(
        session, id=new_id(), region_id=partner.region_id, region_code=region, partner_id=partner.id,
        secret_hash=hash_api_key(secret), created_by=actor.subject, created_at=clock.now(), revoked_at=None,
    )
    return secret


async def partner(session: AsyncSession, *, region: str, partner_id: uuid.UUID, lock: bool = False) -> PartnerService:
    region_id = await wallet.region_id(session, region=region)
    found = await repo.partner(session, partner_id, lock=lock)
    if found is None or found.region_id != region_id:
        raise PartnerNotFound(f"No partner service {partner_id} in region {region}.")
    return found


async def list_partners(session: AsyncSession, *, region: str, after_id: uuid.UUID | None, limit: int) -> list[PartnerService]:
    return await repo.partners(session, await wallet.region_id(session, region=region), after_id=after_id, limit=limit)


def check_active(found: PartnerService) -> None:
    if found.status != PartnerStatus.ACTIVE:
        raise PartnerRevoked(f"{found.name} is revoked.")


async def rotate_key(session: AsyncSession, clock: Clock, actor: Actor, *, region: str, partner_id: uuid.UUID) -> str:
    """A new API key; every earlier one stops at once."""
    found = await partner(session, region=region, partner_id=partner_id, lock=True)
    check_active(found)
    await repo.revoke_keys(session, found.id, clock.now())
    key = await _issue_key(session, clock, actor, region=region, partner=found)
    await audit.record(session, clock, actor, region_id=found.region_id, action="partner_service.rotate_key",
                       target_type="partner_service", target_id=found.id)
    return key


async def rotate_signing_secret(
    session: AsyncSession, clock: Clock, actor: Actor, *, region: str, partner_id: uuid.UUID
) -> tuple[PartnerService, str]:
    """A new signing secret: every webhook sent from now on, those already waiting included, is
    signed with it."""
    found = await partner(session, region=region, partner_id=partner_id, lock=True)
    check_active(found)
    secret = _new_signing_secret()
    updated = await repo.update_partner(session, found.id, signing_secret=secret)
    await audit.record(session, clock, actor, region_id=found.region_id, action="partner_service.rotate_signing_secret",
                       target_type="partner_service", target_id=found.id)
    return updated, secret


async def set_callback_urls(
    session: AsyncSession, clock: Clock, actor: Actor, *, region: str, partner_id: uuid.UUID, callback_urls: Sequence[str],
) -> PartnerService:
    """Replace the partner's allowed URLs: new checkouts are held to the new list; a checkout made
    before keeps the URLs it was made with (its webhooks still go where they went)."""
    for url in callback_urls:
        check_callback_url(url)
    found = await partner(session, region=region, partner_id=partner_id, lock=True)
    check_active(found)
    before = {"callback_urls": found.callback_urls}
    updated = await repo.update_partner(session, found.id, callback_urls=list(dict.fromkeys(callback_urls)))
    await audit.record(session, clock, actor, region_id=found.region_id, action="partner_service.set_callback_urls",
                       target_type="partner_service", target_id=found.id, before=before,
                       after={"callback_urls": updated.callback_urls})
    return updated


async def revoke(session: AsyncSession, clock: Clock, actor: Actor, *, region: str, partner_id: uuid.UUID) -> PartnerService:
    """Its keys stop at once and it creates no more checkouts; what it already sold can still be
    refunded by the operator's wallet refund, and its webhooks are still delivered. Revoking
    again changes nothing."""
    found = await partner(session, region=region, partner_id=partner_id, lock=True)
    if found.status == PartnerStatus.REVOKED:
        return found
    now = clock.now()
    await repo.revoke_keys(session, found.id, now)
    revoked = await repo.update_partner(session, found.id, status=PartnerStatus.REVOKED.value, revoked_at=now)
    await audit.record(session, clock, actor, region_id=found.region_id, action="partner_service.revoke",
                       target_type="partner_service", target_id=found.id, after={"revoked_at": now.isoformat()})
    return revoked


async def scoped(session: AsyncSession, scope: PartnerScope, *, lock: bool = False) -> PartnerService:
    """The partner service a key acts for (active: a revoked one's keys do not resolve)."""
    return await partner(session, region=scope.region, partner_id=scope.partner_id, lock=lock)


async def signing_secret(session: AsyncSession, message: Message) -> str | None:
    """The outbox's signer of partner webhooks: the partner's current secret."""
    found = await repo.partner(session, uuid.UUID(message.destination.key))
    return found.signing_secret if found is not None else None
