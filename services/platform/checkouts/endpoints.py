"""Checkouts: the partner service's (/v1/platform/checkouts: create, poll, cancel, refund, with
its API key) and the resident's (/v1/me/checkouts/{id}: see, approve, decline, in the app)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query

from services.platform import access
from services.platform.checkouts import service
from services.platform.checkouts.models import Checkout, CheckoutStatus
from services.platform.checkouts.schemas import (
    CheckoutCreate,
    CheckoutOut,
    CheckoutRefundCreate,
    CheckoutRefundOut,
    ResidentCheckoutOut,
)
from services.wallet import public as wallet
from shared.audit import Actor
from shared.auth import Principal, Role, require
from shared.config import Settings
from shared.db import SessionDep
from shared.deps import ClockDep, RedisDep, SettingsDep
from shared.idempotency import IdempotencyDep
from shared.openapi import INSUFFICIENT_BALANCE, PROBLEMS
from shared.pagination import CursorParam, LimitParam, Page, decode_cursor, page_of

router = APIRouter(tags=["platform"])

Partner = Annotated[Principal, require(Role.PARTNER_SERVICE)]
Resident = Annotated[Principal, require(Role.RESIDENT)]


def checkout_out(found: Checkout, settings: Settings) -> CheckoutOut:
    return CheckoutOut(
        id=found.id, order_reference=found.order_reference, amount=found.amount, description=found.description,
        status=found.status, app_link=f"{settings.checkout_link_base}{found.id}", success_url=found.success_url,
        cancel_url=found.cancel_url, callback_url=found.callback_url, expires_at=found.expires_at,
        payment_id=found.payment_id, refunded=found.refunded, created_at=found.created_at, decided_at=found.decided_at,
    )


# --- the partner service ------------------------------------------------------------------------


@router.post("/v1/platform/checkouts", status_code=201, response_model=CheckoutOut, responses=PROBLEMS)
async def create_checkout(
    body: CheckoutCreate, principal: Partner, session: SessionDep, clock: ClockDep, settings: SettingsDep,
    idem: IdempotencyDep,
):
    """A checkout for the resident to approve in the app: send them its `app_link`. The return
    and callback URLs must be on your allowed list (422 url-not-allowed)."""
    if replay := await idem.replay():
        return replay
    order = service.Order(
        body.amount, body.order_reference, body.description, timedelta(seconds=body.expires_in_seconds),
        body.success_url, body.cancel_url, body.callback_url,
    )
    made = await service.create(session, clock, access.partner_scope(principal), order)
    return await idem.respond(201, checkout_out(made, settings))


@router.get("/v1/platform/checkouts", response_model=Page[CheckoutOut], responses=PROBLEMS)
async def list_checkouts(
    principal: Partner, session: SessionDep, settings: SettingsDep,
    status: Annotated[CheckoutStatus | None, Query(description="only checkouts in this state")] = None,
    cursor: CursorParam = None, limit: LimitParam = 50,
) -> Page[CheckoutOut]:
    """Your checkouts, newest first."""
    found = await service.partner_checkouts(
        session, access.partner_scope(principal), status=status, after_id=decode_cursor(cursor), limit=limit + 1
    )
    return page_of([checkout_out(c, settings) for c in found], [c.id for c in found], limit)


@router.get("/v1/platform/checkouts/{checkout_id}", response_model=CheckoutOut, responses=PROBLEMS)
async def get_checkout(checkout_id: uuid.UUID, principal: Partner, session: SessionDep, settings: SettingsDep) -> CheckoutOut:
    """Poll a checkout's state (the webhook tells the same)."""
    return checkout_out(await service.partner_checkout(session, access.partner_scope(principal), checkout_id), settings)


@router.post("/v1/platform/checkouts/{checkout_id}/cancel", response_model=CheckoutOut, responses=PROBLEMS)
async def cancel_checkout(
    checkout_id: uuid.UUID, principal: Partner, session: SessionDep, clock: ClockDep, settings: SettingsDep,
    idem: IdempotencyDep,
):
    """Withdraw a checkout nobody paid yet (409 checkout-already-paid, -expired, -declined otherwise)."""
    if replay := await idem.replay():
        return replay
    cancelled = await service.cancel(session, clock, access.partner_scope(principal), checkout_id)
    return await idem.respond(200, checkout_out(cancelled, settings))


@router.post("/v1/platform/checkouts/{checkout_id}/refunds", status_code=201, response_model=CheckoutRefundOut,
             responses=PROBLEMS)
async def refund_checkout(
    checkout_id: uuid.UUID, body: CheckoutRefundCreate, principal: Partner, session: SessionDep, clock: ClockDep,
    idem: IdempotencyDep,
):
    """Give (part of) a paid checkout back to the resident's wallet, by the wallet's refund rules
    (409 checkout-not-paid, 409 refund-exceeds-remaining, 409 refund-window-closed)."""
    if replay := await idem.replay():
        return replay
    done = await service.refund(
        session, clock, access.partner_scope(principal), checkout_id, actor=Actor.of(principal), amount=body.amount,
        reason=body.reason,
    )
    return await idem.respond(201, CheckoutRefundOut(
        refund_id=done.refund.id, checkout_id=done.checkout.id, amount=done.refund.amount,
        refunded=done.checkout.refunded, created_at=done.refund.created_at,
    ))


# --- the resident -------------------------------------------------------------------------------


def resident_out(view: service.ResidentView) -> ResidentCheckoutOut:
    found = view.checkout
    return ResidentCheckoutOut(
        id=found.id, partner_name=view.partner_name, merchant_name_ja=view.merchant_name_ja, amount=found.amount,
        description=found.description, status=found.status, expires_at=found.expires_at,
        balance_yen=view.balance.yen, balance_points=view.balance.points,
        return_url=found.success_url if found.status == CheckoutStatus.PAID else found.cancel_url,
    )


@router.get("/v1/me/checkouts/{checkout_id}", response_model=ResidentCheckoutOut, responses=PROBLEMS)
async def my_checkout(checkout_id: uuid.UUID, principal: Resident, session: SessionDep, clock: ClockDep) -> ResidentCheckoutOut:
    """What the app shows before you approve: the partner, the amount, your balance."""
    return resident_out(await service.for_resident(
        session, clock, region=principal.region_code, subject=principal.subject, checkout_id=checkout_id
    ))


@router.post("/v1/me/checkouts/{checkout_id}/approve", response_model=ResidentCheckoutOut,
             responses={**PROBLEMS, **INSUFFICIENT_BALANCE})
async def approve_checkout(
    checkout_id: uuid.UUID, principal: Resident, session: SessionDep, clock: ClockDep, redis: RedisDep,
    idem: IdempotencyDep, background: BackgroundTasks,
):
    """Pay the checkout from your wallet: an ordinary payment to the partner's merchant. Refused
    once it is paid, cancelled, declined or expired (409, each its own type), and by the
    wallet's own refusals (402 insufficient-balance …); a refusal pays nothing."""
    if replay := await idem.replay():
        return replay
    _, paid = await service.approve(
        session, clock, region=principal.region_code, actor=Actor.of(principal), payer=principal.subject,
        checkout_id=checkout_id,
    )
    background.add_task(wallet.publish_paid, redis, paid)  # the shop's terminals, after the commit
    view = await service.for_resident(session, clock, region=principal.region_code, subject=principal.subject,
                                      checkout_id=checkout_id)
    return await idem.respond(200, resident_out(view))


@router.post("/v1/me/checkouts/{checkout_id}/decline", response_model=ResidentCheckoutOut, responses=PROBLEMS)
async def decline_checkout(
    checkout_id: uuid.UUID, principal: Resident, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """Say no: nothing is paid, and the partner is told."""
    if replay := await idem.replay():
        return replay
    await service.decline(session, clock, region=principal.region_code, payer=principal.subject, checkout_id=checkout_id)
    view = await service.for_resident(session, clock, region=principal.region_code, subject=principal.subject,
                                      checkout_id=checkout_id)
    return await idem.respond(200, resident_out(view))
