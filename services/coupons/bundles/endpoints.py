"""Bundles (/v1/bundles): the operator makes, sends and ends them; auditors read them; residents
list the bundles offered to them, claim one as a whole, and see their bundle claims."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from services.coupons.bundles import counts as counting
from services.coupons.bundles import public, service
from services.coupons.bundles.errors import InvalidCountPeriod
from services.coupons.bundles.models import BundleStatus
from services.coupons.bundles.schemas import (
    BundleClaimOut,
    BundleCreate,
    BundleDayOut,
    BundleOut,
    BusPaymentDayOut,
    CountsOut,
    CouponDayOut,
    ProductDayOut,
    RideWindowIn,
    RideWindowOut,
)
from shared.audit import Actor
from shared.auth import Principal, Role, require
from shared.db import SessionDep
from shared.deps import ClockDep
from shared.idempotency import IdempotencyDep
from shared.openapi import PROBLEMS
from shared.pagination import CursorParam, LimitParam, Page, decode_cursor, page_of

router = APIRouter(prefix="/v1/bundles", tags=["coupons"])

Resident = Annotated[Principal, require(Role.RESIDENT)]
Operator = Annotated[Principal, require(Role.OPERATOR)]
Overseer = Annotated[Principal, require(Role.OPERATOR, Role.AUDITOR)]
MAX_COUNT_SPAN = timedelta(days=400)  # a fiscal year and a little: counts are grouped, but rides are read one by one


@router.post("", status_code=201, response_model=BundleOut, responses=PROBLEMS)
async def create_bundle(body: BundleCreate, principal: Operator, session: SessionDep, clock: ClockDep,
                        idem: IdempotencyDep):
    """A draft bundle of the region's coupons and, optionally, a bus ticket (operator; audited)."""
    if replay := await idem.replay():
        return replay
    ticket = None
    if body.ticket is not None:
        t = body.ticket
        ticket = service.Ticket(t.product_id, t.rider_category, t.funded_by, t.sponsor_id)
    view = await service.create_bundle(
        session, clock, region=principal.region_code, actor=Actor.of(principal), name=body.name, terms=body.terms,
        coupon_ids=body.coupon_ids, ticket=ticket, audience=body.audience, segment_id=body.segment_id,
        starts_at=body.starts_at, ends_at=body.ends_at,
    )
    return await idem.respond(201, BundleOut.of(view))


@router.get("", response_model=Page[BundleOut], responses=PROBLEMS)
async def list_bundles(
    principal: Overseer, session: SessionDep, status: BundleStatus | None = None, cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> Page[BundleOut]:
    """The region's bundles, newest first (operator, auditor)."""
    found = await service.bundles(session, region=principal.region_code, status=status,
                                  after_id=decode_cursor(cursor), limit=limit + 1)
    return page_of([BundleOut.of(v) for v in found], [v.bundle.id for v in found], limit)


@router.get("/available", response_model=Page[BundleOut], responses=PROBLEMS)
async def available_bundles(
    principal: Resident, session: SessionDep, clock: ClockDep, cursor: CursorParam = None, limit: LimitParam = 50,
) -> Page[BundleOut]:
    """Bundles I may claim now: sent, within their period, to an audience I am in, not claimed yet."""
    found = await service.available(session, clock, region=principal.region_code, subject=principal.subject,
                                    after_id=decode_cursor(cursor), limit=limit + 1)
    return page_of([BundleOut.of(v) for v in found], [v.bundle.id for v in found], limit)


@router.get("/claims", response_model=Page[BundleClaimOut], responses=PROBLEMS)
async def my_bundle_claims(
    principal: Resident, session: SessionDep, cursor: CursorParam = None, limit: LimitParam = 50,
) -> Page[BundleClaimOut]:
    """The bundles I claimed, newest first, with the coupon claims and the ticket each gave me."""
    found = await service.claims_of(session, region=principal.region_code, subject=principal.subject,
                                    after_id=decode_cursor(cursor), limit=limit + 1)
    return page_of([BundleClaimOut.of(c) for c in found], [c.claim.id for c in found], limit)


# The id's path segment admits only a UUID, so that /available and /claims are never taken for a bundle.


@router.get("/{bundle_id:uuid}", response_model=BundleOut, responses=PROBLEMS)
async def get_bundle(bundle_id: uuid.UUID, principal: Overseer, session: SessionDep) -> BundleOut:
    return BundleOut.of(await service.bundle(session, region=principal.region_code, bundle_id=bundle_id))


@router.post("/{bundle_id:uuid}/distribute", response_model=BundleOut, responses=PROBLEMS)
async def distribute_bundle(bundle_id: uuid.UUID, principal: Operator, session: SessionDep, clock: ClockDep,
                            idem: IdempotencyDep):
    """Send the draft to its audience now: one notice per resident in it (409 segment-empty when
    there is no one; 409 bundle-part-not-ready when a coupon is not active or the ticket not on sale)."""
    if replay := await idem.replay():
        return replay
    view = await service.distribute(session, clock, region=principal.region_code, actor=Actor.of(principal),
                                    bundle_id=bundle_id)
    return await idem.respond(200, BundleOut.of(view))


@router.post("/{bundle_id:uuid}/end", response_model=BundleOut, responses=PROBLEMS)
async def end_bundle(bundle_id: uuid.UUID, principal: Operator, session: SessionDep, clock: ClockDep,
                     idem: IdempotencyDep):
    """No more claims of the bundle; what residents claimed stays theirs."""
    if replay := await idem.replay():
        return replay
    view = await service.end(session, clock, region=principal.region_code, actor=Actor.of(principal),
                             bundle_id=bundle_id)
    return await idem.respond(200, BundleOut.of(view))


@router.post("/{bundle_id:uuid}/claims", status_code=201, response_model=BundleClaimOut, responses=PROBLEMS)
async def claim_bundle(bundle_id: uuid.UUID, principal: Resident, session: SessionDep, clock: ClockDep,
                       idem: IdempotencyDep):
    """Claim the whole bundle, once: every coupon in it and its ticket, or nothing (409
    bundle-part-refused names the part that could not be claimed, and its own problem type)."""
    if replay := await idem.replay():
        return replay
    found = await service.claim(session, clock, region=principal.region_code, actor=Actor.of(principal),
                                subject=principal.subject, bundle_id=bundle_id)
    return await idem.respond(201, BundleClaimOut.of(found))


# --- counting for the KPIs ------------------------------------------------------------------------


def ride_window_out(found: counting.RideWindow) -> RideWindowOut:
    return RideWindowOut(created_ride_days=found.created_ride_days, quiet_days=found.quiet_days,
                         set_by=found.set_by, set_at=found.set_at)


@router.get("/ride-window", response_model=RideWindowOut, responses=PROBLEMS)
async def get_ride_window(principal: Overseer, session: SessionDep) -> RideWindowOut:
    """N and M of the rides bundles created (operator, auditor)."""
    return ride_window_out(await counting.ride_window(session, region=principal.region_code))


@router.put("/ride-window", response_model=RideWindowOut, responses=PROBLEMS)
async def set_ride_window(body: RideWindowIn, principal: Operator, session: SessionDep, clock: ClockDep) -> RideWindowOut:
    """A ride counts as created by a bundle when taken within N days of claiming it by a resident
    who had not ridden in the M days before (operator; audited)."""
    saved = await counting.set_ride_window(
        session, clock, region=principal.region_code, actor=Actor.of(principal),
        created_ride_days=body.created_ride_days, quiet_days=body.quiet_days,
    )
    return ride_window_out(saved)


counts_router = APIRouter(prefix="/v1/coupons", tags=["coupons"])


@counts_router.get("/counts", response_model=CountsOut, responses=PROBLEMS)
async def kpi_counts(
    since: Annotated[date, Query(description="first Tokyo day")],
    until: Annotated[date, Query(description="the day after the last (exclusive)")],
    principal: Overseer, session: SessionDep,
) -> CountsOut:
    """Per day: claims, redemptions, discounts by funder and coupon-driven sales per coupon;
    bundle claims and the rides each bundle created; ticket sales, activations and rides per fare
    product; coin payments on the bus per operator (operator, auditor)."""
    if until <= since or until - since > MAX_COUNT_SPAN:
        raise InvalidCountPeriod(f"Ask for 1 to {MAX_COUNT_SPAN.days} days, `until` after `since`.",
                                 since=since.isoformat(), until=until.isoformat())
    found = await public.counts(session, region=principal.region_code, since=since, until=until)
    return CountsOut(
        since=since, until=until, window=ride_window_out(found.window),
        coupons=[CouponDayOut.model_validate(c) for c in found.coupons],
        bundles=[BundleDayOut.model_validate(b) for b in found.bundles],
        products=[ProductDayOut.model_validate(p) for p in found.transit.products],
        bus_payments=[BusPaymentDayOut.model_validate(p) for p in found.transit.payments],
    )
