"""What crosses between modules without an import going the wrong way: the hooks the wallet's
payments call out through, and the resolver of presented API keys. The wallet's lower modules
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
from services.wallet import public as wallet
from services.wallet.campaigns import rewards
from services.wallet.directory import service as directory
from services.wallet.grants import service as grants
from services.wallet.payments import hooks as payment_hooks
from shared.auth import PARTNER_KEY_PREFIX, PARTNER_SERVICE_KEY_PREFIX, VALIDATOR_KEY_PREFIX, Principal


def wire() -> None:
    """Register every hook (idempotent: each app and CLI command calls it). Other services
    register theirs through services.wallet.public.register_hooks."""
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
