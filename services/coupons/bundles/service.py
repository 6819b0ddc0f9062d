"""Bundles (グループ配信): the operator groups several coupons (shops' and a bus operator's) with an
optional bus ticket, sends the bundle to a segment (or to all residents), and a resident claims
it as one unit: all of its parts or none.

Lifecycle. draft → distributed → ended (a draft may be ended too; ended is final). A draft is
made whole and checked: its coupons are the region's, its fare product is on sale for its rider
category, its segment and sponsor exist. Distributing checks that every part is on offer (each
coupon active, the product on sale) and writes one wallet notice per resident in the audience now
(`bundle-distributed`, with the bundle's id, name and start); an empty audience is refused
(segment-empty) and nothing is sent. The bundle is claimable from its start to its end.

Claiming. A resident in the audience (checked live: a resident who never opted in, or opted out
a second ago, is not in a segment) claims a distributed bundle within its period once. Every
coupon part is claimed through the coupons core's own claim (coupons/service.py: the same
stock, per-resident limit and audience rules as a coupon claimed alone) and, if the bundle has a
ticket, one is granted to the resident (transit/service.py `grant_ticket`: the bus operator gives
the ride, or a sponsor's budget pays it the fare through the wallet). All of it happens in a
savepoint of the caller's transaction: when any part refuses, the claim is refused naming the
part (bundle-part-refused, with the part's own problem type) and nothing of it remains.

Concurrency. The resident's one claim is taken first, on the unique (bundle, subject) key, so
the resident's twin requests queue there and the second finds the first. Coupons are then
claimed in coupon-id order, whatever order the operator listed them in: two bundle claims that
share coupons take their stock in the same order and never wait on each other in a cycle, and a
claim that fails on a later part gives back the units it took of the earlier ones (its savepoint
is undone), so exactly as many bundles are claimed as the scarcest part allows. A sponsor's
budget row, which every sponsored claim must lock, is taken last.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.coupons import service as coupons
from services.coupons.bundles import repository as repo
from services.coupons.bundles.errors import (
    BundleAlreadyClaimed,
    BundleExpired,
    BundleNotAvailable,
    BundleNotEditable,
    BundleNotFound,
    BundleNotInAudience,
    BundleNotStarted,
    BundlePartNotReady,
    BundlePartRefused,
    InvalidBundle,
)
from services.coupons.bundles.models import Bundle, BundleAudience, BundleClaim, BundleStatus, TicketFunder
from services.coupons.segments import public as segments
from services.coupons.transit import service as transit
from services.wallet import public as wallet
from shared import audit
from shared.audit import Actor
from shared.clock import TOKYO, Clock
from shared.errors import Problem
from shared.ids import new_id

DISTRIBUTED_NOTICE = "bundle-distributed"  # the kind of the wallet notice a distribution makes
COUPON_ACTIVE = "active"  # a coupon's status while it is on offer (services/coupons/models.py)
MAX_PARTS = 20

TRANSITIONS = {
    BundleStatus.DRAFT: {BundleStatus.DISTRIBUTED, BundleStatus.ENDED},
    BundleStatus.DISTRIBUTED: {BundleStatus.ENDED},
    BundleStatus.ENDED: set(),
}


@dataclass(frozen=True)
class Ticket:
    """What ticket a bundle grants, and who pays the bus operator for it."""

    product_id: uuid.UUID
    rider_category: transit.RiderCategory
    funded_by: TicketFunder
    sponsor_id: uuid.UUID | None = None


@dataclass(frozen=True)
class BundleView:
    bundle: Bundle
    coupon_ids: list[uuid.UUID]  # as the operator listed them


def _whole_region(region: str) -> coupons.Scope:
    return coupons.Scope(region, None)


def _record(view: BundleView) -> dict[str, Any]:
    b = view.bundle
    return {
        "name": b.name, "status": b.status, "audience": b.audience,
        "segment_id": str(b.segment_id) if b.segment_id else None, "coupon_ids": [str(c) for c in view.coupon_ids],
        "product_id": str(b.product_id) if b.product_id else None, "rider_category": b.rider_category,
        "ticket_funded_by": b.ticket_funded_by, "sponsor_id": str(b.sponsor_id) if b.sponsor_id else None,
        "starts_at": b.starts_at.isoformat(), "ends_at": b.ends_at.isoformat(),
    }


# --- the operator's bundles --------------------------------------------------------------------------


async def create_bundle(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, name: str, terms: str,
    coupon_ids: list[uuid.UUID], ticket: Ticket | None, audience: BundleAudience, segment_id: uuid.UUID | None,
    starts_at: datetime, ends_at: datetime,
) -> BundleView:
    """A draft bundle, its parts checked (module docstring)."""
    if not coupon_ids or len(coupon_ids) > MAX_PARTS:
        raise InvalidBundle(f"A bundle groups 1 to {MAX_PARTS} coupons.")
    if len(set(coupon_ids)) != len(coupon_ids):
        raise InvalidBundle("A coupon is listed twice.")
    if starts_at >= ends_at:
        raise InvalidBundle("starts_at must come before ends_at.")
    if (audience == BundleAudience.SEGMENT) != (segment_id is not None):
        raise InvalidBundle("A segment's bundle names its segment (segment_id); one for all residents names none.")
    if ticket is not None and (ticket.funded_by == TicketFunder.SPONSOR) != (ticket.sponsor_id is not None):
        raise InvalidBundle("A ticket a sponsor pays for names the sponsor; one the bus operator gives names none.")
    for coupon_id in coupon_ids:
        found = await coupons.coupon(session, scope=_whole_region(region), coupon_id=coupon_id)
        if found.status == "ended":
            raise InvalidBundle(f"The coupon {found.name!r} has ended: it cannot be bundled.", coupon_id=str(coupon_id))
    if ticket is not None:
        await transit.on_sale(session, region=region, product_id=ticket.product_id, category=ticket.rider_category)
        if ticket.sponsor_id is not None:
            await wallet.sponsor(session, region=region, sponsor_id=ticket.sponsor_id)
    if segment_id is not None:
        await segments.segment(session, region=region, segment_id=segment_id)
    region_id, now = await wallet.region_id(session, region=region), clock.now()
    made = await repo.insert_bundle(
        session, id=new_id(), region_id=region_id, name=name, terms=terms, audience=audience.value,
        segment_id=segment_id, starts_at=starts_at, ends_at=ends_at,
        product_id=ticket.product_id if ticket else None,
        rider_category=ticket.rider_category.value if ticket else None,
        ticket_funded_by=ticket.funded_by.value if ticket else None, sponsor_id=ticket.sponsor_id if ticket else None,
        status=BundleStatus.DRAFT.value, distributed_at=None, segment_version=None, recipients=None,
        created_by=actor.subject, created_at=now, updated_at=now,
    )
    await repo.insert_parts(session, region_id, made.id, coupon_ids)
    view = BundleView(made, list(coupon_ids))
    await audit.record(session, clock, actor, region_id=region_id, action="bundle.create", target_type="bundle",
                       target_id=made.id, after=_record(view))
    return view


async def _found(session: AsyncSession, region: str, bundle_id: uuid.UUID, *, lock: bool = False) -> Bundle:
    region_id = await wallet.region_id(session, region=region)
    found = await repo.bundle(session, region_id, bundle_id, lock=lock)
    if found is None:
        raise BundleNotFound(f"No bundle {bundle_id} in region {region}.")
    return found


async def _views(session: AsyncSession, found: list[Bundle]) -> list[BundleView]:
    parts = await repo.parts(session, [b.id for b in found])
    return [BundleView(b, parts[b.id]) for b in found]


async def bundle(session: AsyncSession, *, region: str, bundle_id: uuid.UUID) -> BundleView:
    return (await _views(session, [await _found(session, region, bundle_id)]))[0]


async def bundles(
    session: AsyncSession, *, region: str, status: BundleStatus | None, after_id: uuid.UUID | None, limit: int
) -> list[BundleView]:
    region_id = await wallet.region_id(session, region=region)
    return await _views(session, await repo.bundles(
        session, region_id, status=status.value if status else None, after_id=after_id, limit=limit
    ))


def _move_to(found: Bundle, to: BundleStatus) -> None:
    status = BundleStatus(found.status)
    if to not in TRANSITIONS[status]:
        raise BundleNotEditable(f"A {status.value} bundle cannot become {to.value}.", bundle_status=status.value)


async def distribute(session: AsyncSession, clock: Clock, *, region: str, actor: Actor, bundle_id: uuid.UUID) -> BundleView:
    """Send the draft to its audience now (one `bundle-distributed` notice each): claimable from
    its start. Refuses bundle-not-editable, bundle-expired, bundle-part-not-ready, segment-empty."""
    found = await _found(session, region, bundle_id, lock=True)
    _move_to(found, BundleStatus.DISTRIBUTED)
    now = clock.now()
    if now >= found.ends_at:
        raise BundleExpired("The bundle's claiming period is over: there is nothing to send.")
    view = (await _views(session, [found]))[0]
    for coupon_id in view.coupon_ids:
        coupon = await coupons.coupon(session, scope=_whole_region(region), coupon_id=coupon_id)
        if coupon.status != COUPON_ACTIVE:
            raise BundlePartNotReady(
                f"The coupon {coupon.name!r} is {coupon.status}: activate it before sending the bundle.",
                coupon_id=str(coupon_id),
            )
    if found.product_id is not None:
        try:
            await transit.on_sale(session, region=region, product_id=found.product_id,
                                  category=transit.RiderCategory(found.rider_category))
        except Problem as refused:
            raise BundlePartNotReady(f"The bundle's ticket cannot be given: {refused.detail}",
                                     product_id=str(found.product_id), part_problem=refused.type) from None
    version = None
    if found.segment_id is not None:
        version = (await segments.segment(session, region=region, segment_id=found.segment_id)).version
    recipients = await segments.notify(
        session, clock, region=region, actor=actor, audience=found.segment_id or segments.ALL, version=version,
        kind=DISTRIBUTED_NOTICE,
        payload={"bundle_id": str(found.id), "name": found.name,
                 "starts_at": found.starts_at.astimezone(TOKYO).isoformat()},  # as residents read it
    )
    sent = await repo.update_bundle(
        session, found.id, status=BundleStatus.DISTRIBUTED.value, distributed_at=now, segment_version=version,
        recipients=recipients, updated_at=now,
    )
    await audit.record(
        session, clock, actor, region_id=sent.region_id, action="bundle.distribute", target_type="bundle",
        target_id=sent.id, before={"status": found.status},
        after={"status": sent.status, "segment_version": version, "recipients": recipients},
    )
    return BundleView(sent, view.coupon_ids)


async def end(session: AsyncSession, clock: Clock, *, region: str, actor: Actor, bundle_id: uuid.UUID) -> BundleView:
    """No more claims of the bundle; what was claimed stays the residents' (coupons and tickets)."""
    found = await _found(session, region, bundle_id, lock=True)
    _move_to(found, BundleStatus.ENDED)
    ended = await repo.update_bundle(session, found.id, status=BundleStatus.ENDED.value, updated_at=clock.now())
    await audit.record(
        session, clock, actor, region_id=ended.region_id, action="bundle.end", target_type="bundle",
        target_id=ended.id, before={"status": found.status}, after={"status": ended.status},
    )
    return (await _views(session, [ended]))[0]


# --- residents ---------------------------------------------------------------------------------------


async def _in_audience(session: AsyncSession, region: str, found: Bundle, subject: str, at: datetime) -> bool:
    if found.segment_id is None:
        return True
    return await segments.is_member(session, region=region, segment_id=found.segment_id, subject=subject, at=at)


async def available(
    session: AsyncSession, clock: Clock, *, region: str, subject: str, after_id: uuid.UUID | None, limit: int
) -> list[BundleView]:
    """Up to `limit` bundles the resident may claim now, newest first: distributed, within their
    period, not claimed by them yet, and theirs by audience (checked live)."""
    region_id, now = await wallet.region_id(session, region=region), clock.now()
    found: list[Bundle] = []
    while True:
        batch = await repo.available(session, region_id, subject, now, after_id=after_id, limit=limit)
        found += [b for b in batch if await _in_audience(session, region, b, subject, now)]
        if len(batch) < limit or len(found) >= limit:
            return await _views(session, found[:limit])
        after_id = batch[-1].id


@dataclass(frozen=True)
class ClaimedBundle:
    claim: BundleClaim
    bundle_name: str


async def claim(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, subject: str, bundle_id: uuid.UUID
) -> ClaimedBundle:
    """The resident claims the whole bundle, or nothing of it (module docstring)."""
    found = await _found(session, region, bundle_id)
    now = clock.now()
    if found.status != BundleStatus.DISTRIBUTED:
        raise BundleNotAvailable(f"The bundle is {found.status}: it is not being offered.", bundle_status=found.status)
    if now < found.starts_at:
        raise BundleNotStarted("The bundle can be claimed from its start.", starts_at=found.starts_at.isoformat())
    if now >= found.ends_at:
        raise BundleExpired("The bundle's claiming period is over.", ends_at=found.ends_at.isoformat())
    if not await _in_audience(session, region, found, subject, now):
        raise BundleNotInAudience(
            "This bundle is offered to a segment of residents you are not in now (it needs your opt-in to offers, "
            "and matching it)."
        )
    coupon_ids = (await repo.parts(session, [found.id]))[found.id]
    async with session.begin_nested():
        claim_id = new_id()
        if not await repo.take_claim(session, id=claim_id, region_id=found.region_id, bundle_id=found.id,
                                     subject=subject, claimed_at=now, claim_ids=[], ticket_id=None):
            raise BundleAlreadyClaimed("You have claimed this bundle already: one each.")
        claimed: dict[uuid.UUID, uuid.UUID] = {}
        for coupon_id in sorted(coupon_ids):  # one order for every claim (module docstring)
            try:
                view = await coupons.claim(session, clock, region=region, subject=subject, coupon_id=coupon_id)
            except Problem as refused:
                raise await _part_refused(session, region, coupon_id, refused) from None
            claimed[coupon_id] = view.claim.id
        ticket_id = None
        if found.product_id is not None:
            assert found.rider_category is not None, "a bundle's ticket is whole (a check constraint)"
            try:
                ticket = await transit.grant_ticket(
                    session, clock, region=region, actor=actor, resident=subject, product_id=found.product_id,
                    category=transit.RiderCategory(found.rider_category), sponsor_id=found.sponsor_id,
                    bundle_claim_id=claim_id,
                )
            except Problem as refused:
                raise BundlePartRefused(
                    f"The bundle's bus ticket cannot be given: {refused.detail} Nothing was claimed.",
                    part="ticket", product_id=str(found.product_id), part_problem=refused.type,
                ) from None
            ticket_id = ticket.id
        made = await repo.finish_claim(session, claim_id, [claimed[c] for c in coupon_ids], ticket_id)
    return ClaimedBundle(made, found.name)


async def _part_refused(session: AsyncSession, region: str, coupon_id: uuid.UUID, refused: Problem) -> BundlePartRefused:
    try:
        name = (await coupons.coupon(session, scope=_whole_region(region), coupon_id=coupon_id)).name
    except Problem:
        name = str(coupon_id)
    return BundlePartRefused(
        f"The bundle's coupon {name!r} cannot be claimed: {refused.detail} Nothing was claimed.",
        part="coupon", coupon_id=str(coupon_id), part_name=name, part_problem=refused.type,
    )


async def claims_of(
    session: AsyncSession, *, region: str, subject: str, after_id: uuid.UUID | None, limit: int
) -> list[ClaimedBundle]:
    region_id = await wallet.region_id(session, region=region)
    return [ClaimedBundle(c, b.name) for c, b in await repo.claims_of(session, region_id, subject, after_id=after_id,
                                                                      limit=limit)]
