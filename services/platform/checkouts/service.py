"""Online checkouts: a partner service's order, paid in the app.

1. The partner creates a checkout (amount, its order reference, a description, how long it stays
   open, where the app returns the resident after paying or not, where its webhooks go: each URL
   on the partner's allowed list) and sends the resident its link.
2. The resident opens it in the app and sees the partner, the amount and their balance, then
   approves or declines. Approving pays the amount to the partner's merchant by an ordinary
   wallet payment (`public.pay`: fees, lots, receipts, the shop's terminals, refunds and
   settlement all as for a shop) in the same transaction as the checkout's new state.
3. The partner learns the outcome by polling and from its webhook: each change writes its event
   to the outbox in the same transaction (checkout.paid, .declined, .cancelled, .expired,
   .refunded), so the event exists if and only if the change committed.
4. The partner may cancel a checkout still open, and refund a paid one, in full or in parts,
   through the wallet's refund (its rules: the refund window, never more than what remains).

A checkout's row is locked by each change, so two approvals at once take turns: the first pays,
the second finds it paid (checkout-already-paid) and moves nothing. A checkout past its expiry is
refused as expired at once, before the sweep (`expire_due`) marks it so and tells the partner.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.platform.checkouts import repository as repo
from services.platform.checkouts.errors import (
    CheckoutAlreadyPaid,
    CheckoutCancelled,
    CheckoutDeclined,
    CheckoutExpired,
    CheckoutNotFound,
    CheckoutNotPaid,
)
from services.platform.checkouts.models import Checkout, CheckoutStatus
from services.platform.outbox import public as outbox
from services.platform.partners import service as partners
from services.platform.partners.models import PartnerService
from services.platform.partners.service import PartnerScope
from services.wallet import public as wallet
from shared.audit import Actor
from shared.clock import Clock
from shared.ids import new_id

EXPIRY_SWEEP_BATCH = 500

# Why a checkout that is not open refuses a change, by its state.
_CLOSED = {
    CheckoutStatus.PAID: CheckoutAlreadyPaid,
    CheckoutStatus.CANCELLED: CheckoutCancelled,
    CheckoutStatus.DECLINED: CheckoutDeclined,
    CheckoutStatus.EXPIRED: CheckoutExpired,
}


@dataclass(frozen=True)
class Order:
    """What a partner asks to be paid."""

    amount: int
    order_reference: str
    description: str
    expires_in: timedelta
    success_url: str
    cancel_url: str
    callback_url: str | None  # None: the partner's first callback URL


@dataclass(frozen=True)
class ResidentView:
    """What the app shows the resident before they approve."""

    checkout: Checkout
    partner_name: str
    merchant_name_ja: str
    balance: wallet.Balance


@dataclass(frozen=True)
class Refunded:
    checkout: Checkout
    refund: wallet.RefundMade


def is_expired(found: Checkout, now: datetime) -> bool:
    return found.status == CheckoutStatus.EXPIRED or (found.status == CheckoutStatus.OPEN and found.expires_at <= now)


def _still_open(found: Checkout, now: datetime) -> None:
    """Refuses a checkout that is not open (each state its own problem), or open but past its expiry."""
    if found.status != CheckoutStatus.OPEN:
        raise _CLOSED[CheckoutStatus(found.status)](f"Checkout {found.id} is {found.status}.")
    if found.expires_at <= now:
        raise CheckoutExpired(f"Checkout {found.id} expired at {found.expires_at.isoformat()}.")


def event_payload(found: Checkout, **extra: Any) -> dict[str, Any]:
    """A webhook's `data`: the checkout as the partner polls it (and, for a refund, the refund)."""
    return {
        "checkout_id": str(found.id), "order_reference": found.order_reference, "amount": found.amount,
        "status": found.status, "payment_id": str(found.payment_id) if found.payment_id else None,
        "refunded": found.refunded, "expires_at": found.expires_at.isoformat(),
        "decided_at": found.decided_at.isoformat() if found.decided_at else None, **extra,
    }


async def _announce(session: AsyncSession, clock: Clock, found: Checkout, event_type: str, **extra: Any) -> None:
    """The checkout's event, in the outbox, in this transaction: one stream per checkout, so its
    events reach the partner in the order they happened."""
    await outbox.enqueue(
        session, clock, region_id=found.region_id, event_type=event_type, stream=f"checkout:{found.id}",
        destination=outbox.Destination(partners.DESTINATION, str(found.partner_id), found.callback_url),
        payload=event_payload(found, **extra),
    )


async def create(session: AsyncSession, clock: Clock, scope: PartnerScope, order: Order) -> Checkout:
    partner = await partners.scoped(session, scope)
    callback_url = order.callback_url or partner.callback_urls[0]
    for field, url in (("success_url", order.success_url), ("cancel_url", order.cancel_url),
                       ("callback_url", callback_url)):
        partners.check_url_allowed(partner, url, field)
    now = clock.now()
    return await repo.insert_checkout(
        session, id=new_id(), region_id=partner.region_id, partner_id=partner.id, merchant_id=partner.merchant_id,
        amount=order.amount, order_reference=order.order_reference, description=order.description,
        callback_url=callback_url, success_url=order.success_url, cancel_url=order.cancel_url,
        status=CheckoutStatus.OPEN.value, expires_at=now + order.expires_in, payer=None, payment_id=None, refunded=0,
        created_at=now, decided_at=None,
    )


async def checkout(session: AsyncSession, *, region: str, checkout_id: uuid.UUID, lock: bool = False) -> Checkout:
    region_id = await wallet.region_id(session, region=region)
    found = await repo.checkout(session, checkout_id, lock=lock)
    if found is None or found.region_id != region_id:
        raise CheckoutNotFound(f"No checkout {checkout_id}.")
    return found


async def partner_checkout(session: AsyncSession, scope: PartnerScope, checkout_id: uuid.UUID, *, lock: bool = False) -> Checkout:
    """One of the partner's own checkouts; another partner's is not found, as if it did not exist."""
    found = await checkout(session, region=scope.region, checkout_id=checkout_id, lock=lock)
    if found.partner_id != scope.partner_id:
        raise CheckoutNotFound(f"No checkout {checkout_id}.")
    return found


async def partner_checkouts(
    session: AsyncSession, scope: PartnerScope, *, status: CheckoutStatus | None, after_id: uuid.UUID | None, limit: int
) -> list[Checkout]:
    return await repo.checkouts(session, scope.partner_id, status=status.value if status else None, after_id=after_id,
                                limit=limit)


async def for_resident(session: AsyncSession, clock: Clock, *, region: str, subject: str, checkout_id: uuid.UUID) -> ResidentView:
    found = await checkout(session, region=region, checkout_id=checkout_id)
    partner = await _partner_of(session, region, found)
    merchant = await wallet.merchant(session, region=region, merchant_id=found.merchant_id)
    balance = await wallet.balance(session, clock, region=region, subject=subject)
    return ResidentView(found, partner.name, merchant.name_ja, balance)


async def _partner_of(session: AsyncSession, region: str, found: Checkout) -> PartnerService:
    return await partners.partner(session, region=region, partner_id=found.partner_id)


async def approve(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, payer: str, checkout_id: uuid.UUID
) -> tuple[Checkout, wallet.PaidPayment]:
    """The resident pays the checkout: a wallet payment of its amount to the partner's merchant at
    its first store. The wallet's refusals (402 insufficient-balance, 409 merchant-inactive …)
    leave the checkout open and nothing paid."""
    found = await checkout(session, region=region, checkout_id=checkout_id, lock=True)
    _still_open(found, clock.now())
    partners.check_active(await _partner_of(session, region, found))
    merchant = await wallet.merchant(session, region=region, merchant_id=found.merchant_id)
    paid = await wallet.pay(
        session, clock, region=region, actor=actor, payer=payer, store_id=merchant.store_ids[0], price=found.amount,
    )
    settled = await repo.update_checkout(
        session, found.id, status=CheckoutStatus.PAID.value, payer=payer, payment_id=paid.id, decided_at=paid.created_at,
    )
    await _announce(session, clock, settled, "checkout.paid")
    return settled, paid


async def decline(session: AsyncSession, clock: Clock, *, region: str, payer: str, checkout_id: uuid.UUID) -> Checkout:
    """The resident says no: the checkout is closed and the partner told; nothing is paid."""
    found = await checkout(session, region=region, checkout_id=checkout_id, lock=True)
    _still_open(found, clock.now())
    declined = await repo.update_checkout(
        session, found.id, status=CheckoutStatus.DECLINED.value, payer=payer, decided_at=clock.now(),
    )
    await _announce(session, clock, declined, "checkout.declined")
    return declined


async def cancel(session: AsyncSession, clock: Clock, scope: PartnerScope, checkout_id: uuid.UUID) -> Checkout:
    """The partner withdraws a checkout nobody has paid yet."""
    found = await partner_checkout(session, scope, checkout_id, lock=True)
    _still_open(found, clock.now())
    cancelled = await repo.update_checkout(session, found.id, status=CheckoutStatus.CANCELLED.value,
                                           decided_at=clock.now())
    await _announce(session, clock, cancelled, "checkout.cancelled")
    return cancelled


async def refund(
    session: AsyncSession, clock: Clock, scope: PartnerScope, checkout_id: uuid.UUID, *, actor: Actor, amount: int,
    reason: str | None,
) -> Refunded:
    """(Part of) a paid checkout back to the resident's wallet, by the wallet's refund and its
    rules (409 refund-exceeds-remaining, 409 refund-window-closed …, which change nothing). The
    checkout's running total and its event are the refund hook's (`on_refunded`), as for a
    refund the shop makes itself."""
    found = await partner_checkout(session, scope, checkout_id, lock=True)
    if found.status != CheckoutStatus.PAID or found.payment_id is None:
        raise CheckoutNotPaid(f"Checkout {found.id} is {found.status}: only a paid checkout is refunded.")
    made = await wallet.refund(
        session, clock, region=scope.region, actor=actor, payment_id=found.payment_id, amount=amount, reason=reason,
    )
    return Refunded(await partner_checkout(session, scope, checkout_id), made)


async def on_refunded(
    session: AsyncSession, clock: Clock, *, payment_id: uuid.UUID, region_id: uuid.UUID, amount: int,
    refunded_total: int, points: Any,
) -> int:
    """The wallet's OnRefunded hook (registered by app/wiring.py): whoever refunds a checkout's
    payment — the partner through its API, or the shop at its own refund endpoint — the checkout
    keeps the running total and the partner is told (checkout.refunded), in the refund's
    transaction. Takes no points back."""
    found = await repo.checkout_of_payment(session, payment_id)
    if found is None:
        return 0
    this_refund = refunded_total - found.refunded  # before the update, which refreshes `found` itself
    updated = await repo.update_checkout(session, found.id, refunded=refunded_total)
    await _announce(session, clock, updated, "checkout.refunded",
                    refund={"amount": this_refund, "at": clock.now().isoformat()})
    return 0


async def expire_due(session: AsyncSession, clock: Clock) -> list[Checkout]:
    """The sweep: open checkouts past their expiry become expired, each partner told. Several
    sweeps at once each take other rows (skip locked)."""
    expired = await repo.expire_due(session, clock.now(), EXPIRY_SWEEP_BATCH)
    for found in expired:
        await _announce(session, clock, found, "checkout.expired")
    return expired
