"""Premium campaigns (プレミアム付き) (/v1): the operator's offer, first-come purchases, lottery
applications, the draw, payments of won sets, releases of unpaid wins and the sales figures."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from services.wallet import access
from services.wallet.premium import service
from services.wallet.premium.models import ApplicationStatus
from services.wallet.premium.schemas import (
    ApplicationCreate,
    ApplicationOut,
    DrawCreate,
    DrawOut,
    DrawResult,
    OfferCreate,
    OfferOut,
    PurchaseCreate,
    PurchaseLotOut,
    PurchaseOut,
    ReleaseOut,
    SalesOut,
)
from shared.audit import Actor
from shared.auth import Principal, Role, require
from shared.db import SessionDep
from shared.deps import ClockDep
from shared.idempotency import IdempotencyDep
from shared.openapi import PROBLEMS
from shared.pagination import CursorParam, LimitParam, Page, decode_cursor, page_of

router = APIRouter(prefix="/v1", tags=["premium"])

Resident = Annotated[Principal, require(Role.RESIDENT)]
Operator = Annotated[Principal, require(Role.OPERATOR)]
Overseer = Annotated[Principal, require(Role.OPERATOR, Role.AUDITOR)]
Reader = Annotated[Principal, require(Role.RESIDENT, Role.OPERATOR, Role.AUDITOR)]
ReaderOfPurchases = Annotated[Principal, require(Role.RESIDENT, Role.OPERATOR, Role.AUDITOR)]
PROBLEMS_WITH_402 = {**PROBLEMS, 402: {"description": "not enough coin, or budget exhausted",
                                        "content": {"application/problem+json": {}}}}


def offer_out(found: service.OfferView) -> OfferOut:
    o = found.offer
    return OfferOut(
        campaign_id=o.campaign_id, mode=o.mode, price=o.price, value=o.value, premium=o.premium,
        local_share_bp=o.local_share_bp, local_classes=o.local_classes, per_person=o.per_person,
        per_household=o.per_household, total_sets=o.total_sets, opens_at=o.opens_at, closes_at=o.closes_at,
        payment_deadline=o.payment_deadline, usable_from=o.usable_from, usable_until=o.usable_until,
        phase=found.phase, sets_left=found.sets_left, drawn_at=o.drawn_at, created_at=o.created_at,
    )


def purchase_out(found: service.PurchaseView) -> PurchaseOut:
    p, o = found.purchase, found.rules
    return PurchaseOut(
        id=p.id, campaign_id=p.campaign_id, application_id=p.application_id, sets=p.sets, coin=p.coin,
        points=p.points, coin_local=p.coin_local, coin_all_shops=p.coin - p.coin_local, points_local=p.points_local,
        points_all_shops=p.points - p.points_local, local_classes=o.local_classes, usable_from=o.usable_from,
        usable_until=o.usable_until, journal_id=p.journal_id,
        lots=[PurchaseLotOut(role=r.role, lot_id=r.lot_id, unit=r.unit, amount=r.amount) for r in found.lots],
        created_at=p.created_at,
    )


def application_out(found: service.ApplicationView) -> ApplicationOut:
    a = found.application
    return ApplicationOut(
        id=a.id, campaign_id=a.campaign_id, sets=a.sets, status=a.status, won_sets=a.won_sets, draw_rank=a.draw_rank,
        payment_deadline=found.offer.payment_deadline, created_at=a.created_at, decided_at=a.decided_at,
    )


def draw_out(found: service.DrawView) -> DrawOut:
    o, apps = found.offer, found.applications
    assert o.draw_seed and o.draw_algorithm and o.drawn_at and o.drawn_by
    results = sorted(
        (DrawResult(application_id=a.id, sets=a.sets, rank=a.draw_rank or 0, key=a.draw_key or "", won_sets=a.won_sets,
                    status=a.status) for a in apps),
        key=lambda r: r.rank,
    )
    return DrawOut(
        campaign_id=o.campaign_id, seed=o.draw_seed, algorithm=o.draw_algorithm, drawn_at=o.drawn_at,
        drawn_by=o.drawn_by, total_sets=o.total_sets, applications=len(apps), applied_sets=sum(a.sets for a in apps),
        winners=sum(1 for a in apps if a.won_sets), won_sets=sum(a.won_sets for a in apps), results=results,
    )


# --- the offer ----------------------------------------------------------------------------------


@router.post("/campaigns/{campaign_id}/premium-offer", status_code=201, response_model=OfferOut, responses=PROBLEMS)
async def create_offer(
    campaign_id: uuid.UUID, body: OfferCreate, principal: Operator, session: SessionDep, clock: ClockDep,
    idem: IdempotencyDep,
):
    """The premium offer of a premium campaign: price and value per set, the local-only share,
    limits per person and household, total sets, the sale (or application) window and the
    sets' usage window. Fund the campaign with at least total sets × premium."""
    if replay := await idem.replay():
        return replay
    created = await service.create_offer(
        session, clock, Actor.of(principal), await access.campaign(session, principal, campaign_id), body.model_dump()
    )
    return await idem.respond(201, offer_out(created))


@router.get("/campaigns/{campaign_id}/premium-offer", response_model=OfferOut, responses=PROBLEMS)
async def get_offer(campaign_id: uuid.UUID, principal: Reader, session: SessionDep, clock: ClockDep) -> OfferOut:
    _, offer = await access.offer(session, principal, campaign_id)
    return offer_out(await service.get_offer(session, clock, offer))


@router.get("/premium-offers", response_model=Page[OfferOut], responses=PROBLEMS)
async def list_offers(
    principal: Reader, session: SessionDep, clock: ClockDep, cursor: CursorParam = None, limit: LimitParam = 50
) -> Page[OfferOut]:
    """The region's premium offers, newest first."""
    found = await service.list_offers(session, clock, await access.region(session, principal), after_id=decode_cursor(cursor), limit=limit + 1)
    return page_of([offer_out(f) for f in found], [f.offer.campaign_id for f in found], limit)


@router.get("/campaigns/{campaign_id}/premium-sales", response_model=SalesOut, responses=PROBLEMS)
async def sales(campaign_id: uuid.UUID, principal: Overseer, session: SessionDep, clock: ClockDep) -> SalesOut:
    """Sold, left, applications and winners: the campaign's figures for the operator and auditors."""
    found = await service.sales(session, clock, *await access.offer(session, principal, campaign_id))
    o, f = found.offer, found.figures
    lottery = o.mode == "lottery"
    return SalesOut(
        campaign_id=o.campaign_id, mode=o.mode, phase=found.phase, total_sets=o.total_sets, sold_sets=f["sold_sets"],
        purchases=f["purchases"], buyers=f["buyers"], coin_received=f["coin"], premium_given=f["points"],
        sets_left=(f["in_stock"] + o.unbacked_sets) if not lottery else o.total_sets - f["won_sets"] + f["released_sets"],
        sets_awaiting_budget=o.unbacked_sets if not lottery else 0, budget=found.budget,
        applications=f["applications"], applied_sets=f["applied_sets"], winners=f["winners"], won_sets=f["won_sets"],
        paid_sets=f["sold_sets"] if lottery else 0, released_sets=f["released_sets"],
    )


# --- first-come ---------------------------------------------------------------------------------


@router.post("/campaigns/{campaign_id}/premium-purchases", status_code=201, response_model=PurchaseOut,
             responses=PROBLEMS_WITH_402)
async def buy(
    campaign_id: uuid.UUID, body: PurchaseCreate, principal: Resident, session: SessionDep, clock: ClockDep,
    idem: IdempotencyDep,
):
    """Buy sets of a first-come offer, paid from the wallet's coin usable at every shop."""
    claim = await idem.claim()
    region = await access.region_identity(session, principal)
    bought = await service.buy(session, clock, region, principal.subject, campaign_id, body.sets, claim)
    if bought.first is not None:
        async def the_purchase(stored: dict[str, Any]) -> dict[str, Any]:
            # The key's answer is the purchase's id (an answer stored before migration 0013 is the
            # whole purchase, with its id): shown as the first answer was, from the purchase.
            return purchase_out(await service.bought_before(session, uuid.UUID(stored["id"]))).model_dump(mode="json")

        return await idem.replayed(*bought.first, render=the_purchase)
    assert bought.view is not None
    return JSONResponse(purchase_out(bought.view).model_dump(mode="json"), status_code=201)


@router.get("/campaigns/{campaign_id}/premium-purchases", response_model=Page[PurchaseOut], responses=PROBLEMS)
async def campaign_purchases(
    campaign_id: uuid.UUID, principal: Overseer, session: SessionDep, cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> Page[PurchaseOut]:
    _, offer = await access.offer(session, principal, campaign_id)
    found = await service.campaign_purchases(session, offer, after_id=decode_cursor(cursor), limit=limit + 1)
    return page_of([purchase_out(f) for f in found], [f.purchase.id for f in found], limit)


@router.get("/premium-purchases", response_model=Page[PurchaseOut], responses=PROBLEMS)
async def my_purchases(
    principal: Resident, session: SessionDep, clock: ClockDep, cursor: CursorParam = None, limit: LimitParam = 50
) -> Page[PurchaseOut]:
    """The resident's premium purchases (first-come and paid lottery wins), newest first."""
    holder = await access.own_wallet(session, clock, principal)
    found = await service.my_purchases(session, holder, after_id=decode_cursor(cursor), limit=limit + 1)
    return page_of([purchase_out(f) for f in found], [f.purchase.id for f in found], limit)


@router.get("/premium-purchases/{purchase_id}", response_model=PurchaseOut, responses=PROBLEMS)
async def get_purchase(
    purchase_id: uuid.UUID, principal: ReaderOfPurchases, session: SessionDep, clock: ClockDep
) -> PurchaseOut:
    """One purchase with the lots it took and created."""
    return purchase_out(await service.purchase_view(session, await access.purchase(session, clock, principal, purchase_id)))


# --- lottery ------------------------------------------------------------------------------------


@router.post("/campaigns/{campaign_id}/premium-applications", status_code=201, response_model=ApplicationOut,
             responses=PROBLEMS)
async def apply(
    campaign_id: uuid.UUID, body: ApplicationCreate, principal: Resident, session: SessionDep, clock: ClockDep,
    idem: IdempotencyDep,
):
    """Apply for sets of a lottery offer (one application per resident)."""
    if replay := await idem.replay():
        return replay
    holder = await access.own_wallet(session, clock, principal)
    return await idem.respond(201, application_out(await service.apply(session, clock, holder, campaign_id, body.sets)))


@router.get("/campaigns/{campaign_id}/premium-applications", response_model=Page[ApplicationOut], responses=PROBLEMS)
async def campaign_applications(
    campaign_id: uuid.UUID, principal: Overseer, session: SessionDep,
    status: Annotated[ApplicationStatus | None, Query(description="only applications in this state")] = None,
    cursor: CursorParam = None, limit: LimitParam = 50,
) -> Page[ApplicationOut]:
    _, offer = await access.offer(session, principal, campaign_id)
    found = await service.campaign_applications(
        session, offer, after_id=decode_cursor(cursor), limit=limit + 1,
        status=status.value if status else None,
    )
    return page_of([application_out(f) for f in found], [f.application.id for f in found], limit)


@router.get("/premium-applications", response_model=Page[ApplicationOut], responses=PROBLEMS)
async def my_applications(
    principal: Resident, session: SessionDep, clock: ClockDep, cursor: CursorParam = None, limit: LimitParam = 50
) -> Page[ApplicationOut]:
    holder = await access.own_wallet(session, clock, principal)
    found = await service.my_applications(session, holder, after_id=decode_cursor(cursor), limit=limit + 1)
    return page_of([application_out(f) for f in found], [f.application.id for f in found], limit)


@router.post("/premium-applications/{application_id}/payment", status_code=201, response_model=PurchaseOut,
             responses=PROBLEMS_WITH_402)
async def pay_win(
    application_id: uuid.UUID, principal: Resident, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """A winner pays for the sets won, before the payment deadline."""
    if replay := await idem.replay():
        return replay
    holder = await access.own_wallet(session, clock, principal)
    paid = await service.pay_win(session, clock, Actor.of(principal), holder, application_id)
    return await idem.respond(201, purchase_out(paid))


@router.post("/campaigns/{campaign_id}/premium-draw", status_code=201, response_model=DrawOut,
             responses=PROBLEMS_WITH_402)
async def draw(
    campaign_id: uuid.UUID, body: DrawCreate, principal: Operator, session: SessionDep, clock: ClockDep,
    idem: IdempotencyDep,
):
    """Draw the lottery after the application period (once). The seed, the algorithm and every
    application's key and result are recorded, so that the draw can be re-run and checked."""
    if replay := await idem.replay():
        return replay
    campaign, offer = await access.offer(session, principal, campaign_id)
    drawn = await service.draw(session, clock, Actor.of(principal), campaign, offer, body.seed)
    return await idem.respond(201, draw_out(drawn))


@router.get("/campaigns/{campaign_id}/premium-draw", response_model=DrawOut, responses=PROBLEMS)
async def draw_result(campaign_id: uuid.UUID, principal: Overseer, session: SessionDep) -> DrawOut:
    _, offer = await access.offer(session, principal, campaign_id)
    return draw_out(await service.draw_result(session, offer))


@router.post("/campaigns/{campaign_id}/premium-release", response_model=ReleaseOut, responses=PROBLEMS)
async def release(
    campaign_id: uuid.UUID, principal: Operator, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """After the payment deadline: wins not paid are released and can no longer be paid."""
    if replay := await idem.replay():
        return replay
    _, offer = await access.offer(session, principal, campaign_id)
    done = await service.release(session, clock, Actor.of(principal), offer)
    return await idem.respond(200, ReleaseOut(campaign_id=done.campaign_id, released_applications=done.applications,
                                              released_sets=done.sets, released_at=done.released_at))
