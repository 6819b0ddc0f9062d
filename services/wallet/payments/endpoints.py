"""Paying at the shop (/v1): store QR codes, payments, refunds, dynamic payment requests, fee
plans, merchant-to-merchant transfers, and the shop's real-time payment stream."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from services.wallet import access
from services.wallet.directory import service as directory
from services.wallet.payments import notify, presented, qr_render, receipt, service
from services.wallet.payments.models import ResidentCard
from services.wallet.payments.schemas import (
    CardIssue,
    CardOut,
    CardPaymentCreate,
    CpmPaymentCreate,
    CpmTokenOut,
    FeePlanCreate,
    FeePlanOut,
    PaymentCreate,
    PaymentDetailOut,
    PaymentLotOut,
    PaymentOut,
    PaymentRequestCreate,
    PaymentRequestOut,
    ReceiptShopOut,
    RefundCreate,
    RefundOut,
    StoreCreate,
    StoreOut,
    StoreQROut,
    TransferCreate,
    TransferOut,
)
from shared.audit import Actor
from shared.auth import Principal, Role, require
from shared.clock import Instant
from shared.db import SessionDep
from shared.deps import ClockDep, RedisDep, SettingsDep
from shared.idempotency import IdempotencyDep, KeptRefusal
from shared.openapi import INSUFFICIENT_BALANCE, PROBLEMS
from shared.pagination import CursorParam, LimitParam, Page, decode_cursor, page_of

router = APIRouter(prefix="/v1", tags=["payments"])

Resident = Annotated[Principal, require(Role.RESIDENT)]
Operator = Annotated[Principal, require(Role.OPERATOR)]
Shop = Annotated[Principal, require(Role.MERCHANT_STAFF, Role.MERCHANT_ADMIN, Role.TERMINAL)]
ShopAdmin = Annotated[Principal, require(Role.MERCHANT_ADMIN, Role.OPERATOR)]
ShopOrOverseer = Annotated[
    Principal, require(Role.MERCHANT_STAFF, Role.MERCHANT_ADMIN, Role.TERMINAL, Role.OPERATOR, Role.AUDITOR)
]
Anyone = Annotated[Principal, require(*Role)]
CardReader = Annotated[Principal, require(Role.RESIDENT, Role.OPERATOR, Role.AUDITOR)]
# A card's code is half of what pays with it (the PIN is the other half): the resident holds it and
# the operator prints it at the counter; an auditor reads the card's status and limit, not its code.
CardHolder = Annotated[Principal, require(*access.CARD_CODE_READERS)]
Overseer = Annotated[Principal, require(Role.OPERATOR, Role.AUDITOR, Role.MERCHANT_ADMIN)]
PNG = {200: {"description": "the QR code as a PNG image", "content": {"image/png": {}}}}
SVG = {200: {"description": "the QR code as an SVG image", "content": {"image/svg+xml": {}}}}
PDF = {200: {"description": "the printable A6 stand", "content": {"application/pdf": {}}}}
CPM_UNAVAILABLE = {
    503: {"description": "Redis is down: pay by the shop's QR code instead",
          "content": {"application/problem+json": {}}}
}


# --- stores and their QR codes ------------------------------------------------------------------


@router.post("/merchants/{merchant_id}/stores", status_code=201, response_model=StoreOut, responses=PROBLEMS)
async def add_store(
    merchant_id: uuid.UUID, body: StoreCreate, principal: ShopAdmin, session: SessionDep, clock: ClockDep,
    idem: IdempotencyDep,
):
    """A further place of sale (a second register, a market stall) with its own QR code."""
    if replay := await idem.replay():
        return replay
    store = await service.add_store(
        session, clock, Actor.of(principal), await access.merchant(session, principal, merchant_id), body.model_dump()
    )
    return await idem.respond(201, StoreOut.model_validate(store))


@router.get("/merchants/{merchant_id}/stores", response_model=list[StoreOut], responses=PROBLEMS)
async def list_stores(merchant_id: uuid.UUID, principal: ShopOrOverseer, session: SessionDep) -> list[StoreOut]:
    stores = await service.list_stores(session, await access.merchant(session, principal, merchant_id))
    return [StoreOut.model_validate(s) for s in stores]


@router.get("/stores/{store_id}/qr", response_model=StoreQROut, responses=PROBLEMS)
async def store_qr(store_id: uuid.UUID, principal: ShopOrOverseer, session: SessionDep) -> StoreQROut:
    """The static merchant-presented QR payload of a store."""
    qr = await service.store_qr(session, *await access.store(session, principal, store_id))
    return StoreQROut(store_id=store_id, payload=qr.payload)


@router.get("/stores/{store_id}/qr.png", response_class=Response, responses={**PROBLEMS, **PNG})
async def store_qr_png(store_id: uuid.UUID, principal: ShopOrOverseer, session: SessionDep) -> Response:
    qr = await service.store_qr(session, *await access.store(session, principal, store_id))
    return Response(qr_render.png(qr.payload), media_type="image/png")


@router.get("/stores/{store_id}/qr.svg", response_class=Response, responses={**PROBLEMS, **SVG})
async def store_qr_svg(store_id: uuid.UUID, principal: ShopOrOverseer, session: SessionDep) -> Response:
    qr = await service.store_qr(session, *await access.store(session, principal, store_id))
    return Response(qr_render.svg(qr.payload), media_type="image/svg+xml")


@router.get("/stores/{store_id}/stand.pdf", response_class=Response, responses={**PROBLEMS, **PDF})
async def store_stand(store_id: uuid.UUID, principal: ShopOrOverseer, session: SessionDep) -> Response:
    """The printable A6 stand for the register: the currency, the store name, the QR code and how
    to pay (with the app, checking the shop's name on screen), its Japanese font embedded."""
    qr = await service.store_qr(session, *await access.store(session, principal, store_id))
    currency = directory.currency_names(qr.region)
    pdf = qr_render.stand_pdf(
        qr.payload, store_name_ja=qr.store.name_ja, merchant_name=qr.merchant.name,
        currency_ja=currency.name_ja, currency_en=currency.name, app_name=currency.app,
    )
    return Response(pdf, media_type="application/pdf")


# --- payments ---------------------------------------------------------------------------------


@router.post("/payments", status_code=201, response_model=PaymentOut, responses={**PROBLEMS, **INSUFFICIENT_BALANCE})
async def pay(
    body: PaymentCreate, principal: Resident, session: SessionDep, clock: ClockDep, idem: IdempotencyDep,
    redis: RedisDep, background: BackgroundTasks,
):
    """The resident pays by scanning the shop's QR: the printed static one (with the amount they
    typed) or the POS's dynamic one (amount in the code). The shop is notified once committed."""
    if replay := await idem.replay():
        return replay
    region = await access.region_identity(session, principal)
    payment = PaymentOut.model_validate(
        await service.pay_by_qr(session, clock, region, principal.subject, body.qr, body.amount)
    )
    background.add_task(notify.publish_payment, redis, payment)  # runs after the commit and the response
    return await idem.respond(201, payment)


@router.get("/payments/{payment_id}", response_model=PaymentDetailOut, responses=PROBLEMS)
async def get_payment(payment_id: uuid.UUID, principal: Anyone, session: SessionDep) -> PaymentDetailOut:
    """A payment as a receipt, with the lots that paid it: seen by the resident who paid, the shop
    paid, operators and auditors."""
    detail = await service.payment_detail(session, await access.payment(session, principal, payment_id))
    lots = [
        PaymentLotOut(lot_id=taken.lot_id, unit=taken.unit, amount=taken.amount, restored=taken.restored,
                      restriction=lot.restriction, expires_at=lot.expires_at)
        for taken, lot in detail.lots
    ]
    paid, merchant = receipt.split(detail.payment), detail.merchant
    shop = ReceiptShopOut(
        store_name_ja=detail.store.name_ja, merchant_name=merchant.name, merchant_name_ja=merchant.name_ja,
        address=merchant.address, invoice_registration_number=merchant.invoice_registration_number,
    )
    return PaymentDetailOut(
        **PaymentOut.model_validate(detail.payment).model_dump(), coin_amount=paid.coin,
        refunded_coin=paid.refunded_coin, shop=shop, lots=lots,
    )


@router.get(
    "/payments/{payment_id}/receipt.html", response_class=HTMLResponse,
    responses={**PROBLEMS, 200: {"content": {"text/html": {}}}},
)
async def payment_receipt(payment_id: uuid.UUID, principal: Anyone, session: SessionDep) -> HTMLResponse:
    """The printable receipt (領収書)."""
    return HTMLResponse(await service.receipt(session, await access.payment(session, principal, payment_id)))


@router.post(
    "/payments/{payment_id}/refunds", status_code=201, response_model=RefundOut,
    responses={**PROBLEMS, **INSUFFICIENT_BALANCE},
)
async def refund(
    payment_id: uuid.UUID, body: RefundCreate, principal: Shop, session: SessionDep, clock: ClockDep,
    idem: IdempotencyDep,
):
    """Full or partial refund back to the paying wallet, by the shop, within the region's window."""
    if replay := await idem.replay():
        return replay
    payment, fee_returned = await service.refund(
        session, clock, Actor.of(principal), await access.payment_to_refund(session, principal, payment_id),
        body.amount, body.reason,
    )
    return await idem.respond(
        201, RefundOut(payment=PaymentOut.model_validate(payment), refunded_now=body.amount, fee_returned_now=fee_returned)
    )


@router.get("/merchants/{merchant_id}/payments", response_model=Page[PaymentOut], responses=PROBLEMS)
async def merchant_payments(
    merchant_id: uuid.UUID, principal: ShopOrOverseer, session: SessionDep,
    since: Annotated[Instant | None, Query(alias="from", description="inclusive")] = None,
    until: Annotated[Instant | None, Query(alias="to", description="exclusive")] = None,
    store_id: uuid.UUID | None = None, cursor: CursorParam = None, limit: LimitParam = 50,
) -> Page[PaymentOut]:
    """The shop's payments, newest first, by period and store."""
    payments = await service.merchant_payments(
        session, await access.merchant(session, principal, merchant_id), after_id=decode_cursor(cursor), limit=limit + 1, since=since, until=until,
        store_id=store_id,
    )
    return page_of([PaymentOut.model_validate(p) for p in payments], [p.id for p in payments], limit)


@router.get(
    "/merchants/{merchant_id}/events",
    response_class=StreamingResponse,
    responses={
        **PROBLEMS,
        200: {"content": {"text/event-stream": {}}},
        503: {"description": "Redis is down", "content": {"application/problem+json": {}}},
    },
)
async def payment_events(
    merchant_id: uuid.UUID, request: Request, principal: Shop, session: SessionDep, redis: RedisDep,
    last_event_id: Annotated[
        str | None,
        Header(max_length=64, description="resume after this payment id (an SSE client sends it on reconnect)"),
    ] = None,
) -> StreamingResponse:
    """Server-sent events: `payment.received` for each payment to this shop, as it commits."""
    await access.merchant(session, principal, merchant_id)
    stream = await notify.open_stream(
        redis, request.app.state.sessionmaker, merchant_id, _payment_id_or_none(last_event_id), request.is_disconnected
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers={"Cache-Control": "no-store"})


def _payment_id_or_none(last_event_id: str | None) -> uuid.UUID | None:
    """An id this stream did not give out means "from now on", as a fresh connection would."""
    try:
        return uuid.UUID(last_event_id) if last_event_id else None
    except ValueError:
        return None


# --- customer-presented codes: the app's one-time token and the printed card ----------------------


@router.post(
    "/wallet/cpm-tokens", status_code=201, response_model=CpmTokenOut, responses={**PROBLEMS, **CPM_UNAVAILABLE},
)
async def issue_cpm_token(
    principal: Resident, session: SessionDep, clock: ClockDep, settings: SettingsDep, redis: RedisDep,
    idem: IdempotencyDep,
):
    """A one-time code for the shop to scan (short-lived; needs Redis, else 503)."""
    if replay := await idem.replay():
        return replay
    token = await presented.issue_token(clock, settings, redis, await access.own_wallet(session, clock, principal))
    return await idem.respond(201, CpmTokenOut(token=token.token, expires_at=token.expires_at))


@router.post(
    "/cpm-payments", status_code=201, response_model=PaymentOut,
    responses={**PROBLEMS, **INSUFFICIENT_BALANCE, **CPM_UNAVAILABLE},
)
async def pay_by_cpm_token(
    body: CpmPaymentCreate, principal: Shop, session: SessionDep, clock: ClockDep, redis: RedisDep,
    idem: IdempotencyDep, background: BackgroundTasks,
):
    """The shop scanned the resident's one-time code: exactly one terminal can use it."""
    if replay := await idem.replay():
        return replay
    store, _ = await access.selling_store(session, principal, body.store_id)
    region = await access.region_identity(session, principal)
    payment = PaymentOut.model_validate(
        await presented.pay_by_token(session, clock, redis, region, store, body.token, body.amount)
    )
    background.add_task(notify.publish_payment, redis, payment)
    return await idem.respond(201, payment)


def card_out(card: ResidentCard, principal: Principal) -> CardOut:
    shown = CardOut.model_validate(card)
    return shown if access.sees_card_code(principal) else shown.model_copy(update={"code": None})


@router.post("/wallets/{wallet_id}/cards", status_code=201, response_model=CardOut, responses=PROBLEMS)
async def issue_card(
    wallet_id: uuid.UUID, body: CardIssue, principal: Operator, session: SessionDep, clock: ClockDep,
    settings: SettingsDep, idem: IdempotencyDep,
):
    """A printed card with a static QR, for a resident without a smartphone; replaces any
    earlier card of the wallet (operator, at the counter; audited)."""
    if replay := await idem.replay():
        return replay
    card = await presented.issue_card(
        session, clock, settings, Actor.of(principal), await access.wallet(session, principal, wallet_id), body.pin,
        body.daily_limit,
    )
    return await idem.respond(201, card_out(card, principal))


@router.get("/cards/{card_id}", response_model=CardOut, responses=PROBLEMS)
async def get_card(card_id: uuid.UUID, principal: CardReader, session: SessionDep) -> CardOut:
    """The card; its code only for the resident and the operator."""
    return card_out(await access.card(session, principal, card_id), principal)


@router.get("/cards/{card_id}/qr.png", response_class=Response, responses={**PROBLEMS, **PNG})
async def card_qr(card_id: uuid.UUID, principal: CardHolder, session: SessionDep) -> Response:
    """The card's printed QR (the resident and the operator)."""
    card = await access.card(session, principal, card_id)
    return Response(qr_render.png(card.code), media_type="image/png")


@router.post("/cards/{card_id}/lost", response_model=CardOut, responses=PROBLEMS)
async def report_card_lost(
    card_id: uuid.UUID, principal: CardReader, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """Stop a lost card at once (the resident, or an operator; audited). Reissue it at the counter."""
    if replay := await idem.replay():
        return replay
    card = await presented.report_lost(session, clock, Actor.of(principal), await access.card_to_stop(session, principal, card_id))
    return await idem.respond(200, card_out(card, principal))


@router.post(
    "/card-payments", status_code=201, response_model=PaymentOut, responses={**PROBLEMS, **INSUFFICIENT_BALANCE},
)
async def pay_by_card(
    body: CardPaymentCreate, request: Request, principal: Shop, session: SessionDep, clock: ClockDep, redis: RedisDep,
    idem: IdempotencyDep, background: BackgroundTasks,
):
    """The shop scanned a resident card and the resident typed the PIN on the terminal. A wrong
    PIN is refused and counted (5 lock the card); the same key sent again gets the same refusal."""
    if replay := await idem.replay():
        return replay
    store, _ = await access.selling_store(session, principal, body.store_id)
    region = await access.region_identity(session, principal)
    try:
        paid = await presented.pay_by_card(session, clock, region, store, body.card_code, body.pin, body.amount)
    except KeptRefusal as refused:
        return await idem.refuse(refused, request)
    payment = PaymentOut.model_validate(paid)
    background.add_task(notify.publish_payment, redis, payment)
    return await idem.respond(201, payment)


# --- dynamic payment requests -------------------------------------------------------------------


def _request_out(request, payload: str) -> PaymentRequestOut:
    return PaymentRequestOut(
        id=request.id, store_id=request.store_id, amount=request.amount, order_reference=request.order_reference,
        status=request.status, expires_at=request.expires_at, payment_id=request.payment_id, payload=payload,
    )


@router.post("/payment-requests", status_code=201, response_model=PaymentRequestOut, responses=PROBLEMS)
async def create_payment_request(
    body: PaymentRequestCreate, principal: Shop, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """The POS asks for one sale's amount: a dynamic QR, single use, expiring, cancellable."""
    if replay := await idem.replay():
        return replay
    store, merchant = await access.store(session, principal, body.store_id)
    request, payload = await service.create_payment_request(
        session, clock, Actor.of(principal), store, merchant, body.amount, body.order_reference
    )
    return await idem.respond(201, _request_out(request, payload))


@router.get("/payment-requests/{request_id}", response_model=PaymentRequestOut, responses=PROBLEMS)
async def get_payment_request(request_id: uuid.UUID, principal: Shop, session: SessionDep) -> PaymentRequestOut:
    return _request_out(*await service.request_code(session, *await access.payment_request(session, principal, request_id)))


@router.get("/payment-requests/{request_id}/qr.png", response_class=Response, responses={**PROBLEMS, **PNG})
async def payment_request_png(request_id: uuid.UUID, principal: Shop, session: SessionDep) -> Response:
    _, payload = await service.request_code(session, *await access.payment_request(session, principal, request_id))
    return Response(qr_render.png(payload), media_type="image/png")


@router.post("/payment-requests/{request_id}/cancel", response_model=PaymentRequestOut, responses=PROBLEMS)
async def cancel_payment_request(request_id: uuid.UUID, principal: Shop, session: SessionDep, idem: IdempotencyDep):
    if replay := await idem.replay():
        return replay
    request, payload = await service.cancel_payment_request(
        session, *await access.payment_request(session, principal, request_id)
    )
    return await idem.respond(200, _request_out(request, payload))


# --- fee plans and transfers --------------------------------------------------------------------


@router.post("/fee-plans", status_code=201, response_model=FeePlanOut, responses=PROBLEMS)
async def add_region_fee_plan(body: FeePlanCreate, principal: Operator, session: SessionDep, clock: ClockDep,
                              idem: IdempotencyDep):
    """A new default plan for the region, from `effective_from` on (operator; audited)."""
    if replay := await idem.replay():
        return replay
    region = await access.fee_plan_scope(session, principal, None)
    plan = await service.add_fee_plan(session, clock, Actor.of(principal), region, None, body.model_dump())
    return await idem.respond(201, FeePlanOut.model_validate(plan))


@router.post("/merchants/{merchant_id}/fee-plans", status_code=201, response_model=FeePlanOut, responses=PROBLEMS)
async def add_merchant_fee_plan(merchant_id: uuid.UUID, body: FeePlanCreate, principal: Operator, session: SessionDep,
                                clock: ClockDep, idem: IdempotencyDep):
    """A plan for one merchant (e.g. the Aizu model: 2 % up to a yearly cap) (operator; audited)."""
    if replay := await idem.replay():
        return replay
    region = await access.fee_plan_scope(session, principal, merchant_id)
    plan = await service.add_fee_plan(session, clock, Actor.of(principal), region, merchant_id, body.model_dump())
    return await idem.respond(201, FeePlanOut.model_validate(plan))


@router.get("/fee-plans", response_model=list[FeePlanOut], responses=PROBLEMS)
async def region_fee_plans(principal: Anyone, session: SessionDep) -> list[FeePlanOut]:
    plans = await service.list_fee_plans(session, await access.fee_plan_scope(session, principal, None), None)
    return [FeePlanOut.model_validate(p) for p in plans]


@router.get("/merchants/{merchant_id}/fee-plans", response_model=list[FeePlanOut], responses=PROBLEMS)
async def merchant_fee_plans(merchant_id: uuid.UUID, principal: ShopOrOverseer, session: SessionDep) -> list[FeePlanOut]:
    region = await access.fee_plan_scope(session, principal, merchant_id)
    return [FeePlanOut.model_validate(p) for p in await service.list_fee_plans(session, region, merchant_id)]


@router.post(
    "/merchants/{merchant_id}/transfers", status_code=201, response_model=TransferOut,
    responses={**PROBLEMS, **INSUFFICIENT_BALANCE},
)
async def transfer(
    merchant_id: uuid.UUID, body: TransferCreate, principal: Annotated[Principal, require(Role.MERCHANT_ADMIN)],
    session: SessionDep, clock: ClockDep, idem: IdempotencyDep,
):
    """Pay another merchant from this merchant's balance (the restaurant pays the farmer)."""
    if replay := await idem.replay():
        return replay
    result = await service.transfer(
        session, clock, Actor.of(principal), await access.merchant(session, principal, merchant_id), body.to_merchant_id,
        body.amount, body.memo,
    )
    return await idem.respond(201, TransferOut.model_validate(result))
