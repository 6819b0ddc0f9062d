"""The coupons API (/v1/coupons): issuing and running coupons (merchant admins for their own
merchant, operators for any merchant or the whole region), claiming them (residents), paying with
one (residents) and redeeming a free item's code (the shop)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.coupons import service
from services.coupons.errors import InvalidCoupon
from services.coupons.models import ClaimStatus, Coupon, CouponStatus
from services.coupons.schemas import (
    ClaimOut,
    ClaimState,
    CodeRedemptionCreate,
    CouponCreate,
    CouponOut,
    CouponPaidOut,
    CouponPaymentCreate,
    CouponPaymentOut,
    CouponQuoteOut,
    CouponUpdate,
    RedemptionOut,
)
from services.wallet import public as wallet
from services.wallet.public import Actor
from shared.auth import MERCHANT_ROLES, Principal, Role, admitted_by_token, require
from shared.clock import Clock
from shared.db import SessionDep
from shared.deps import ClockDep, RedisDep
from shared.early import route_of
from shared.errors import Problem, problem_response
from shared.idempotency import Idempotency, IdempotencyDep, presented_key
from shared.openapi import INSUFFICIENT_BALANCE, PROBLEMS
from shared.pagination import CursorParam, LimitParam, Page, decode_cursor, page_of

router = APIRouter(prefix="/v1/coupons", tags=["coupons"])

RESIDENTS = require(Role.RESIDENT)
Resident = Annotated[Principal, RESIDENTS]
Issuer = Annotated[Principal, require(Role.MERCHANT_ADMIN, Role.OPERATOR)]
Reader = Annotated[Principal, require(Role.MERCHANT_STAFF, Role.MERCHANT_ADMIN, Role.OPERATOR, Role.AUDITOR)]
Shop = Annotated[Principal, require(Role.MERCHANT_STAFF, Role.MERCHANT_ADMIN, Role.TERMINAL)]

# Fields a coupon always has: a PATCH may change them, not empty them.
REQUIRED = frozenset(set(CouponCreate.model_fields) - {"merchant_id", "value", "max_discount", "store_ids",
                                                         "image_url", "sponsor_id", "segment_id"})


def _scope(principal: Principal) -> service.Scope:
    """A merchant's people see and issue their merchant's coupons; operators and auditors the region's."""
    return service.Scope(principal.region_code, principal.merchant_id if principal.role in MERCHANT_ROLES else None)


async def _coupon_out(session: AsyncSession, coupon: Coupon) -> CouponOut:
    return CouponOut.of(coupon, await service.stock_left(session, coupon))


def _claim_out(view: service.ClaimView, now: datetime) -> ClaimOut:
    claim = view.claim
    state = ClaimState(claim.status)
    if claim.status == ClaimStatus.CLAIMED and now >= view.valid_until:
        state = ClaimState.EXPIRED
    return ClaimOut(
        id=claim.id, coupon_id=claim.coupon_id, coupon_name=view.coupon_name, kind=view.kind, state=state,
        code=claim.code, valid_from=view.valid_from, valid_until=view.valid_until, claimed_at=claim.claimed_at,
        redeemed_at=claim.redeemed_at,
    )


@router.get("/health")
async def health() -> dict[str, str]:
    return {"service": "coupons", "status": "ok"}


# --- issuing and running coupons ---------------------------------------------------------------------


@router.post("", status_code=201, response_model=CouponOut, responses=PROBLEMS)
async def create_coupon(
    body: CouponCreate, principal: Issuer, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """A draft coupon: a merchant admin's for its own merchant; an operator's for a merchant or,
    without `merchant_id`, for the whole region. Residents see it once it is activated."""
    if replay := await idem.replay():
        return replay
    coupon = await service.create_coupon(
        session, clock, scope=_scope(principal), actor=Actor.of(principal), fields=body.model_dump()
    )
    return await idem.respond(201, await _coupon_out(session, coupon))


@router.get("", response_model=Page[CouponOut], responses=PROBLEMS)
async def list_coupons(
    principal: Reader, session: SessionDep, status: CouponStatus | None = None, cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> Page[CouponOut]:
    """The merchant's coupons (merchant roles) or the region's (operators, auditors), newest first."""
    found = await service.coupons(session, scope=_scope(principal), status=status, after_id=decode_cursor(cursor),
                                  limit=limit + 1)
    return page_of([await _coupon_out(session, c) for c in found], [c.id for c in found], limit)


@router.get("/available", response_model=Page[CouponOut], responses=PROBLEMS)
async def available_coupons(
    principal: Resident, session: SessionDep, clock: ClockDep, cursor: CursorParam = None, limit: LimitParam = 50,
) -> Page[CouponOut]:
    """Coupons the resident may claim now: active, in their window, stock left, their own limit not reached."""
    found = await service.available(session, clock, region=principal.region_code, subject=principal.subject,
                                    after_id=decode_cursor(cursor), limit=limit + 1)
    return page_of([await _coupon_out(session, c) for c in found], [c.id for c in found], limit)


@router.get("/claims", response_model=Page[ClaimOut], responses=PROBLEMS)
async def my_claims(
    principal: Resident, session: SessionDep, clock: ClockDep, cursor: CursorParam = None, limit: LimitParam = 50,
) -> Page[ClaimOut]:
    """The resident's claimed coupons, newest first, with their validity and state."""
    found = await service.claims(session, region=principal.region_code, subject=principal.subject,
                                 after_id=decode_cursor(cursor), limit=limit + 1)
    now = clock.now()
    return page_of([_claim_out(v, now) for v in found], [v.claim.id for v in found], limit)


# --- paying with a coupon, redeeming a free item -------------------------------------------------------


@router.post("/payments/preview", response_model=CouponQuoteOut, responses=PROBLEMS)
async def preview_coupon_payment(
    body: CouponPaymentCreate, principal: Resident, session: SessionDep, clock: ClockDep
) -> CouponQuoteOut:
    """What paying with the claimed coupon would come to (price, discount, to pay, who funds it),
    after every check the payment makes of the coupon; changes nothing."""
    quote = await service.preview(session, clock, region=principal.region_code, subject=principal.subject,
                                  qr=body.qr, price=body.amount, claim_id=body.claim_id)
    return CouponQuoteOut(
        claim_id=quote.claim.id, coupon_id=quote.coupon.id, merchant_id=quote.store.merchant_id,
        store_id=quote.store.store_id, price=quote.price, discount=quote.discount, to_pay=quote.price - quote.discount,
        funded_by=quote.coupon.funded_by, sponsor_id=quote.coupon.sponsor_id,
    )


@router.post("/payments", status_code=201, response_model=CouponPaymentOut,
             responses={**PROBLEMS, **INSUFFICIENT_BALANCE})
async def pay_with_coupon(
    body: CouponPaymentCreate, principal: Resident, session: SessionDep, clock: ClockDep, idem: IdempotencyDep,
    redis: RedisDep, background: BackgroundTasks,
):
    """The resident pays at the scanned shop with a claimed coupon: the payment, its discount (the
    shop's, or paid to the shop by the coupon's sponsor) and the redemption commit together. The
    shop's terminals are told once committed, as of any payment."""
    if replay := await idem.replay():
        return replay
    paid, redemption = await service.pay_with_coupon(
        session, clock, region=principal.region_code, actor=Actor.of(principal), subject=principal.subject,
        qr=body.qr, price=body.amount, claim_id=body.claim_id,
    )
    payment = CouponPaidOut(
        id=paid.id, journal_id=paid.journal_id, merchant_id=paid.merchant_id, store_id=paid.store_id,
        price=paid.price, amount=paid.amount, fee=paid.fee, point_amount=paid.point_amount,
        reward_points=paid.reward_points, created_at=paid.created_at,
    )
    background.add_task(wallet.publish_paid, redis, paid)  # runs after the commit and the response
    return await idem.respond(
        201, CouponPaymentOut(payment=payment, redemption=RedemptionOut.model_validate(redemption))
    )


@router.post("/redemptions", status_code=201, response_model=RedemptionOut, responses=PROBLEMS)
async def redeem_code(
    body: CodeRedemptionCreate, principal: Shop, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """The shop redeems a free item's coupon by the code the resident shows, at one of its stores; once."""
    if replay := await idem.replay():
        return replay
    assert principal.merchant_id is not None, "merchant roles carry their merchant"
    redemption = await service.redeem_code(
        session, clock, region=principal.region_code, actor=Actor.of(principal), merchant_id=principal.merchant_id,
        code=body.code, store_id=body.store_id,
    )
    return await idem.respond(201, RedemptionOut.model_validate(redemption))


# --- one coupon --------------------------------------------------------------------------------------------
# The id's path segment admits only a UUID, so that /v1/coupons/health, /available and /claims are
# never taken for a coupon (a PATCH or POST there would be asked for its Idempotency-Key).


@router.get("/{coupon_id:uuid}", response_model=CouponOut, responses=PROBLEMS)
async def get_coupon(coupon_id: uuid.UUID, principal: Reader, session: SessionDep) -> CouponOut:
    return await _coupon_out(session, await service.coupon(session, scope=_scope(principal), coupon_id=coupon_id))


@router.patch("/{coupon_id:uuid}", response_model=CouponOut, responses=PROBLEMS)
async def update_coupon(
    coupon_id: uuid.UUID, body: CouponUpdate, principal: Issuer, session: SessionDep, clock: ClockDep,
    idem: IdempotencyDep,
):
    """A draft's fields; an active or paused coupon takes only `name`, `image_url` and
    `valid_until` (409 coupon-not-editable for the rest: end it and issue a new one)."""
    if replay := await idem.replay():
        return replay
    changes = body.model_dump(exclude_unset=True)
    if emptied := sorted(name for name, value in changes.items() if value is None and name in REQUIRED):
        raise InvalidCoupon(f"A coupon always has its {', '.join(emptied)}.", fields=emptied)
    coupon = await service.update_coupon(
        session, clock, scope=_scope(principal), actor=Actor.of(principal), coupon_id=coupon_id, changes=changes
    )
    return await idem.respond(200, await _coupon_out(session, coupon))


async def _move(
    to: CouponStatus, coupon_id: uuid.UUID, principal: Principal, session: AsyncSession, clock: Clock,
    idem: Idempotency,
) -> JSONResponse:
    if replay := await idem.replay():
        return replay
    coupon = await service.move(
        session, clock, scope=_scope(principal), actor=Actor.of(principal), coupon_id=coupon_id, to=to
    )
    return await idem.respond(200, await _coupon_out(session, coupon))


@router.post("/{coupon_id:uuid}/activate", response_model=CouponOut, responses=PROBLEMS)
async def activate_coupon(
    coupon_id: uuid.UUID, principal: Issuer, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """Offer the coupon to residents (a draft, or a paused one again)."""
    return await _move(CouponStatus.ACTIVE, coupon_id, principal, session, clock, idem)


@router.post("/{coupon_id:uuid}/pause", response_model=CouponOut, responses=PROBLEMS)
async def pause_coupon(
    coupon_id: uuid.UUID, principal: Issuer, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """Stop claims and redemptions for a while; claims already made stay the residents'."""
    return await _move(CouponStatus.PAUSED, coupon_id, principal, session, clock, idem)


@router.post("/{coupon_id:uuid}/end", response_model=CouponOut, responses=PROBLEMS)
async def end_coupon(
    coupon_id: uuid.UUID, principal: Issuer, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """End the coupon for good: no more claims or redemptions."""
    return await _move(CouponStatus.ENDED, coupon_id, principal, session, clock, idem)


@router.post("/{coupon_id:uuid}/claims", status_code=201, response_model=ClaimOut, responses=PROBLEMS)
async def claim_coupon(
    coupon_id: uuid.UUID, principal: Resident, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """Claim one of the coupon for oneself: stock and the per-resident limit are taken exactly."""
    # A claim of a coupon sold out was refused before this, and one of a coupon for all residents
    # mostly answered before this (answer_claim_early, below): the same rules, the same answers.
    made = await service.claim(session, clock, region=principal.region_code, subject=principal.subject,
                               coupon_id=coupon_id, key=await idem.claim())
    if isinstance(made, service.FirstAnswer):
        return await idem.replayed(made.request_hash, made.status_code, made.response, render=_claim_answer)
    assert isinstance(made, service.StoredAnswer), "a keyed claim answers from its key's record"
    return JSONResponse(await _claim_answer(made.response), status_code=201)


async def _claim_answer(stored: dict[str, Any]) -> dict[str, Any]:
    """A claim's answer as its key stores it, shown through ClaimOut: the first answer and every
    replay the same text (the database function writes it, sql/claim_coupon_keyed.sql; an answer
    stored before migration 0027 is ClaimOut's already)."""
    return ClaimOut.model_validate(stored).model_dump(mode="json")


async def refuse_sold_out_claim(request: Request) -> Response | None:
    """claim_coupon's refusal of a claim of a coupon that has sold out, given before the request's
    dependencies, session and transaction (shared/early.py): a rush goes on claiming for seconds
    after the last unit, ten refusals for every claim made. Only where claim_coupon would refuse
    the same: a resident's valid token (its gate), one well-formed Idempotency-Key (its rule),
    then `service.refuse_if_sold_out`, which asks the database; its problem is answered as the
    app's exception handler answers it. Anything else is claim_coupon's to answer (None)."""
    coupon_id: uuid.UUID = request.path_params["coupon_id"]
    if not service.may_be_sold_out(coupon_id):
        return None
    principal, key = await admitted_by_token(request, RESIDENTS), presented_key(request)
    if principal is None or key is None:
        return None
    async with request.app.state.sessionmaker() as session:
        try:
            await service.refuse_if_sold_out(session, request.app.state.clock, region=principal.region_code,
                                             coupon_id=coupon_id, caller=principal.caller, key=key)
        except Problem as refused:
            return problem_response(refused, request)
    return None


async def claim_early(request: Request) -> Response | None:
    """claim_coupon's answer to a claim of a coupon offered to all residents, given before the
    request's dependencies (shared/early.py): in a rush, a thousand residents claim within the
    coupon's first second, and FastAPI's routing and dependencies, the session and its BEGIN and
    COMMIT cost several times the claim's one statement (bench/RESULTS.md). The same gate (a
    resident's valid token), the same key rule (one well-formed Idempotency-Key), the same key's
    fingerprint and replay (`Idempotency`), then `service.claim_at_once`: claim_coupon's claim as
    one statement that commits by itself; its answer, its replay and its refusals are answered as
    claim_coupon answers them (the app's exception handler's problem). A segment's coupon, or one
    this process has not seen claimed, and anything the gate or the key rule would refuse, is
    claim_coupon's to answer (None)."""
    coupon_id: uuid.UUID = request.path_params["coupon_id"]
    if not service.may_claim_at_once(coupon_id):
        return None
    principal, key = await admitted_by_token(request, RESIDENTS), presented_key(request)
    if principal is None or key is None:
        return None
    clock = request.app.state.clock
    async with request.app.state.sessionmaker() as session:
        idem = Idempotency(session, clock, principal.caller, key, request)
        try:
            made = await service.claim_at_once(session, clock, region=principal.region_code,
                                               subject=principal.subject, coupon_id=coupon_id, key=await idem.claim())
            if isinstance(made, service.FirstAnswer):
                response = await idem.replayed(made.request_hash, made.status_code, made.response,
                                               render=_claim_answer)
            else:
                response = JSONResponse(await _claim_answer(made.response), status_code=201)
        except Problem as refused:
            return problem_response(refused, request)
        # The session holds a transaction only when the region's id was read in it: the claim then
        # ran in that transaction (service.claim_at_once), committed here as get_session would.
        if session.in_transaction():
            await session.commit()
    return response


async def answer_claim_early(request: Request) -> Response | None:
    """The claim's early answers (shared/early.py): a sold-out coupon's refusal, else the claim."""
    refused = await refuse_sold_out_claim(request)
    return refused if refused is not None else await claim_early(request)


EARLY_ANSWERS = [(route_of(router, claim_coupon), answer_claim_early)]
