"""Bundles (/v1/bundles): the operator makes, sends and ends them; auditors read them; residents
list the bundles offered to them, claim one as a whole, and see their bundle claims."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter

from services.coupons.bundles import service
from services.coupons.bundles.models import BundleStatus
from services.coupons.bundles.schemas import BundleClaimOut, BundleCreate, BundleOut
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
