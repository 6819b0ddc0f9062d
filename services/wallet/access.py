"""Who may see or do what in the wallet: every rule that depends on the caller, in one place.

The endpoints authenticate (`shared.auth`), gate by role (`require`), then ask this module for
the objects a request works on; the services below take those objects, the caller's region and
an explicit `Actor`, and never look at a `Principal`. Jobs and other services call the services
directly, with an actor of their own.

The rules: a resident sees their own wallet, payments, cards and purchases; merchant roles
(staff, admin, POS terminals) their own merchant, its stores, payments and payment requests;
operators and auditors everything of their region; a partner key its one grant campaign and only
what it did there. What a caller may not see is reported as not found (404), as if it did not
exist, so that ids of others' objects reveal nothing; a role that may see an object but not do
this to it is refused (403)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.campaigns import service as campaigns
from services.wallet.campaigns.errors import CampaignNotFound
from services.wallet.campaigns.models import Campaign
from services.wallet.directory import service as directory
from services.wallet.directory.errors import MerchantNotFound, WalletNotFound
from services.wallet.directory.models import Merchant, Region
from services.wallet.grants import service as grants
from services.wallet.grants.errors import GrantNotFound, UploadNotFound
from services.wallet.grants.models import GrantUpload
from services.wallet.payments import presented
from services.wallet.payments import service as payments
from services.wallet.payments.errors import CardNotFound, PaymentNotFound, PaymentRequestNotFound, StoreNotFound
from services.wallet.payments.models import Payment, PaymentRequest, ResidentCard, Store
from services.wallet.premium import service as premium
from services.wallet.premium.errors import PurchaseNotFound
from services.wallet.premium.models import PremiumOffer, PremiumPurchase
from shared.auth import MERCHANT_ROLES, Principal, Role
from shared.clock import Clock
from shared.errors import Forbidden
from shared.money import Unit

# --- the caller's region ------------------------------------------------------------------------


async def region(session: AsyncSession, principal: Principal) -> Region:
    """The region the caller's token or key belongs to."""
    return await directory.hosted_region(session, principal.region_code)


async def region_identity(session: AsyncSession, principal: Principal) -> directory.RegionIdentity:
    """The caller's region as the hot paths (paying, the premium rush) need it: cached, no query."""
    return await directory.region_identity(session, principal.region_code)


# --- wallets ------------------------------------------------------------------------------------


async def own_wallet(session: AsyncSession, clock: Clock, principal: Principal) -> directory.Wallet:
    """The calling resident's wallet, created on their first authenticated call."""
    assert principal.role is Role.RESIDENT
    return await directory.wallet_for(session, clock, await region(session, principal), principal.subject)


async def wallet(session: AsyncSession, principal: Principal, account_id: uuid.UUID) -> directory.Wallet:
    """A wallet the caller may see: a resident their own, operators and auditors their region's."""
    home = await region(session, principal)
    found = await directory.wallet(session, account_id)
    if found is None or found[1].region_id != home.id:
        raise WalletNotFound(f"No wallet {account_id} in region {home.code}.")
    resident, account = found
    if principal.role is Role.RESIDENT and resident.subject != principal.subject:
        raise WalletNotFound(f"No wallet {account_id} in region {home.code}.")
    if principal.role not in (Role.RESIDENT, Role.OPERATOR, Role.AUDITOR):
        raise Forbidden("Only the resident, an operator or an auditor may see a wallet.")
    return await directory.wallet_of(session, home, resident, account)


# A printed card's code pays with the card (and its PIN): the resident who holds it and the
# operator who hands it out see it; the auditor sees the card without it.
CARD_CODE_READERS = frozenset({Role.RESIDENT, Role.OPERATOR})


def sees_card_code(principal: Principal) -> bool:
    return principal.role in CARD_CODE_READERS


async def card(session: AsyncSession, principal: Principal, card_id: uuid.UUID) -> ResidentCard:
    """A printed card, to whoever may see its wallet."""
    found = await presented.card(session, card_id)
    if found is None:
        raise CardNotFound(f"No card {card_id}.")
    try:
        await wallet(session, principal, found.account_id)
    except WalletNotFound:
        raise CardNotFound(f"No card {card_id}.") from None
    return found


async def card_to_stop(session: AsyncSession, principal: Principal, card_id: uuid.UUID) -> ResidentCard:
    """A card the caller may report lost: the resident's own, or any of the region's for an operator."""
    found = await card(session, principal, card_id)
    if principal.role is Role.AUDITOR:
        raise Forbidden("Auditors only read.")
    return found


# --- merchants and their stores -----------------------------------------------------------------


async def merchant(session: AsyncSession, principal: Principal, merchant_id: uuid.UUID) -> Merchant:
    """Operators and auditors see their region's merchants; merchant roles only their own."""
    home = await region(session, principal)
    found = await directory.merchant(session, merchant_id)
    if found is None or found.region_id != home.id:
        raise MerchantNotFound(f"No merchant {merchant_id} in region {home.code}.")
    if principal.role in MERCHANT_ROLES and principal.merchant_id != merchant_id:
        raise MerchantNotFound(f"No merchant {merchant_id} in region {home.code}.")
    return found


async def own_merchant(session: AsyncSession, principal: Principal) -> Merchant:
    """The merchant whose staff or terminal is calling."""
    assert principal.merchant_id is not None
    return await merchant(session, principal, principal.merchant_id)


# Who sees a merchant's payout bank account: the operator who pays it out, the auditor who checks
# the payouts, and the merchant's own admin. Its staff at the counter and its POS terminals see
# the merchant without it: a leaked terminal key or a clerk's phone must not reveal where the
# shop's money goes, nor help redirect it.
BANK_ACCOUNT_READERS = frozenset({Role.OPERATOR, Role.AUDITOR, Role.MERCHANT_ADMIN})


def sees_bank_account(principal: Principal) -> bool:
    return principal.role in BANK_ACCOUNT_READERS


async def fee_plan_scope(session: AsyncSession, principal: Principal, merchant_id: uuid.UUID | None) -> Region:
    """The region whose fee plans the caller works with, having checked the merchant (if one is
    named) is one the caller may see."""
    home = await region(session, principal)
    if merchant_id is not None:
        await merchant(session, principal, merchant_id)
    return home


async def store(session: AsyncSession, principal: Principal, store_id: uuid.UUID) -> tuple[Store, Merchant]:
    """A store of the caller's region; to merchant roles, only their own merchant's."""
    found = await payments.store_with_merchant(session, store_id)
    home = await region(session, principal)
    if found is None or found[0].region_id != home.id:
        raise StoreNotFound(f"No store {store_id} in region {home.code}.")
    if principal.role in MERCHANT_ROLES and principal.merchant_id != found[1].id:
        raise StoreNotFound(f"No store {store_id} in region {home.code}.")
    return found


async def selling_store(
    session: AsyncSession, principal: Principal, store_id: uuid.UUID | None
) -> tuple[Store, Merchant]:
    """The store a shop's terminal sells at: the one named, or the merchant's first."""
    shop = await own_merchant(session, principal)
    found = next((s for s in await payments.stores(session, shop.id) if store_id is None or s.id == store_id), None)
    if found is None:
        raise StoreNotFound(f"No store {store_id} of this merchant.")
    return found, shop


# --- payments -----------------------------------------------------------------------------------


async def payment_request(
    session: AsyncSession, principal: Principal, request_id: uuid.UUID
) -> tuple[PaymentRequest, Store, Merchant]:
    """A dynamic code's payment request, to its merchant and the region's operators."""
    found = await payments.payment_request(session, request_id)
    if found is None or (principal.role in MERCHANT_ROLES and principal.merchant_id != found.merchant_id):
        raise PaymentRequestNotFound(f"No payment request {request_id}.")
    return (found, *await store(session, principal, found.store_id))


async def payment(session: AsyncSession, principal: Principal, payment_id: uuid.UUID) -> Payment:
    """The resident who paid, the merchant paid, and the region's operators and auditors see a
    payment; anyone else is told it does not exist."""
    home = await region(session, principal)
    found = await payments.payment(session, payment_id)
    if found is None or found.region_id != home.id:
        raise PaymentNotFound(f"No payment {payment_id}.")
    if principal.role in MERCHANT_ROLES and principal.merchant_id != found.merchant_id:
        raise PaymentNotFound(f"No payment {payment_id}.")
    if principal.role is Role.RESIDENT:
        mine = await directory.resident_wallet(session, home.id, principal.subject, Unit.YEN.value)
        if mine is None or mine[1].id != found.resident_account_id:
            raise PaymentNotFound(f"No payment {payment_id}.")
    return found


async def payment_to_refund(session: AsyncSession, principal: Principal, payment_id: uuid.UUID) -> Payment:
    """A payment the caller may refund: only the shop that was paid (its staff or terminal)."""
    if principal.role not in MERCHANT_ROLES:
        raise Forbidden("Refunds are made by the shop that was paid.")
    return await payment(session, principal, payment_id)


# --- campaigns, grants and premium offers -----------------------------------------------------------


async def campaign(session: AsyncSession, principal: Principal, campaign_id: uuid.UUID) -> Campaign:
    """A campaign of the caller's region."""
    home = await region(session, principal)
    found = await campaigns.campaign(session, campaign_id)
    if found is None or found.region_id != home.id:
        raise CampaignNotFound(f"No campaign {campaign_id} in region {home.code}.")
    return found


async def grant_campaign(session: AsyncSession, principal: Principal, campaign_id: uuid.UUID) -> Campaign:
    """The campaign, if the caller may grant in or read it: a partner key only its own."""
    if principal.role is Role.PARTNER and principal.campaign_id != campaign_id:
        raise Forbidden("This partner key may only grant in, and read, its own campaign.")
    return await campaign(session, principal, campaign_id)


def own_partner_key(principal: Principal) -> uuid.UUID | None:
    """Whose grants and uploads the caller sees: a partner only what its key did (its key's id);
    operators and auditors everything (None)."""
    return principal.api_key_id if principal.role is Role.PARTNER else None


async def grant(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID, grant_id: uuid.UUID
) -> grants.GrantView:
    scope = await grant_campaign(session, principal, campaign_id)
    found = await grants.grant_by_id(session, grant_id)
    own = own_partner_key(principal)
    if found is None or found[0].campaign_id != scope.id or (own is not None and found[0].partner_key_id != own):
        raise GrantNotFound(f"No grant {grant_id} in this campaign.")
    return found


async def upload(
    session: AsyncSession, principal: Principal, campaign_id: uuid.UUID, upload_id: uuid.UUID
) -> GrantUpload:
    scope = await grant_campaign(session, principal, campaign_id)
    found = await grants.upload_by_id(session, upload_id)
    own = own_partner_key(principal)
    if found is None or found.campaign_id != scope.id or (own is not None and found.partner_key_id != own):
        raise UploadNotFound(f"No grant upload {upload_id} in this campaign.")
    return found


async def offer(session: AsyncSession, principal: Principal, campaign_id: uuid.UUID) -> tuple[Campaign, PremiumOffer]:
    """A premium campaign of the caller's region and its offer."""
    found = await campaign(session, principal, campaign_id)
    return found, await premium.offer_of(session, found)


async def purchase(session: AsyncSession, clock: Clock, principal: Principal, purchase_id: uuid.UUID) -> PremiumPurchase:
    """A premium purchase: the resident's own, or any of the region's for operators and auditors."""
    found = await premium.purchase(session, purchase_id)
    home = await region(session, principal)
    if found is None or found.region_id != home.id:
        raise PurchaseNotFound(f"No premium purchase {purchase_id}.")
    if principal.role is Role.RESIDENT:
        holder = await own_wallet(session, clock, principal)
        if found.resident_id != holder.resident.id:
            raise PurchaseNotFound(f"No premium purchase {purchase_id}.")
    return found
