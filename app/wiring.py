"""What crosses between modules without an import going the wrong way: the hooks the wallet's
payments call out through, the resolver of presented API keys, and the keeper of what the city's
ID asserts about a resident. The wallet's lower modules
never import its higher ones, and the wallet never imports coupons or settlement; where one must
call the other, the call is connected here."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.coupons import audiences
from services.coupons import service as coupons
from services.coupons.segments import public as segments
from services.coupons.transit import service as transit
from services.platform.checkouts import service as checkouts
from services.platform.outbox import public as outbox
from services.platform.partners import service as partners
from services.platform.sharing import service as sharing
from services.wallet import public as wallet
from services.wallet.campaigns import rewards
from services.wallet.directory import service as directory
from services.wallet.grants import service as grants
from services.wallet.payments import hooks as payment_hooks
from shared.audit import Actor
from shared.auth import PARTNER_KEY_PREFIX, PARTNER_SERVICE_KEY_PREFIX, VALIDATOR_KEY_PREFIX, Principal
from shared.clock import Clock
from shared.config import Settings


def wire() -> None:
    """Register every hook (idempotent: each app and CLI command calls it). Other services
    register theirs through services.wallet.public.register_hooks."""
    # A payment of a resident who shares their results becomes an event for the data platform,
    # and so do its refunds, each checked again before its delivery (a resident who withdrew
    # meanwhile is not sent).
    wallet.register_hooks(paid=sharing.share_payment, refunded=sharing.share_refund)
    outbox.register_destination(sharing.DESTINATION_KIND, sharing.sign_or_withdraw)
    # A reward campaign pays points back on a payment and takes the refunded share back.
    payment_hooks.register(paid=rewards.reward_payment, refunded=rewards.claw_back)
    # A bus ticket's fare is refunded whole, while unridden, and voids the ticket.
    wallet.register_hooks(refunded=transit.void_on_refund)
    # A payment with a coupon refunded in full gives the coupon back (stock, the resident's count).
    wallet.register_hooks(refunded=coupons.release_on_full_refund)
    # A segment's coupon is offered to the segment's residents only, asked live of segments.
    audiences.register(audiences.SegmentCheck(exists=segments.segment, is_member=segments.is_member))
    # A refund of a checkout's payment, by the partner or the shop, is the checkout's and its partner's news.
    wallet.register_hooks(refunded=checkouts.on_refunded)
    # A partner service's webhooks are signed with its current signing secret.
    outbox.register_destination(partners.DESTINATION, partners.signing_secret)


async def resolve_api_key(session: AsyncSession, secret: str) -> Principal | None:
    """The caller behind a presented API key (shared.auth asks): a partner system's key (its own
    prefix) is the grants module's, a bus validator's (its own prefix) transit's, a partner
    service's (its own prefix) the platform's, any other a merchant terminal's. None if unknown
    or revoked."""
    if secret.startswith(PARTNER_KEY_PREFIX):
        return await grants.resolve_partner_key(session, secret)
    if secret.startswith(VALIDATOR_KEY_PREFIX):
        return await transit.resolve_validator_key(session, secret)
    if secret.startswith(PARTNER_SERVICE_KEY_PREFIX):
        return await partners.resolve_partner_service_key(session, secret)
    return await directory.resolve_api_key(session, secret)


def configure(settings: Settings) -> None:
    """What the hooks read of the settings (the data platform's address, secret, pseudonym key):
    each app and each CLI command that delivers or pays calls it after `wire`."""
    sharing.configure(sharing.DataPlatform.of(settings))


async def record_city_id_claims(session: AsyncSession, clock: Clock, principal: Principal) -> None:
    """shared.auth's claims observer: a resident's data-sharing opt-in and area, as their token
    from the city's ID asserts them, kept by data sharing."""
    await sharing.record_city_id_claims(
        session, clock, Actor.of(principal), region=principal.region_code, subject=principal.subject,
        opted_in=principal.data_sharing, area=principal.area,
    )
