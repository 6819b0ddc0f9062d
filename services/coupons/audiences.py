"""Who a coupon is offered to: all residents, or the residents of one segment (issue 13, items 1
and 6), checked live whenever a resident lists coupons or claims one, so that a resident who
never opted in, or opted out a second ago, neither sees nor gets a segment's coupon.

The coupons' own modules never import segments (a contract in pyproject.toml): the composition
root (app/wiring.py) registers the two questions they ask of it, as the wallet's hooks are
registered. `SegmentCheck.exists` refuses an unknown segment with the segments' own problem;
`SegmentCheck.is_member` answers for one resident at one moment from their stored consents and
activity (services/coupons/segments/public.py).

A claim asks for the coupon's audience before the claim itself. A coupon's audience can change
only while it is a draft (an active or paused coupon takes only a new name, image or end, and an
ended one nothing), and a draft is never claimed, so the audience of a coupon seen past its draft
is kept for the process's life: a claim of an `all` coupon then costs no extra round trip.
Membership is never kept: it is the resident's to withdraw at any moment.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.coupons import repository as repo
from services.coupons.errors import CouponNotInAudience, InvalidCoupon
from services.coupons.models import Audience, Coupon, CouponStatus


@dataclass(frozen=True)
class SegmentCheck:
    # (session, *, region, segment_id): refuses an unknown segment (segment-not-found)
    exists: Callable[..., Awaitable[Any]]
    # (session, *, region, segment_id, subject, at) -> whether the resident is in it then
    is_member: Callable[..., Awaitable[bool]]


_segments: SegmentCheck | None = None


def register(segments: SegmentCheck) -> None:
    """For the composition root only."""
    global _segments
    _segments = segments


def _check() -> SegmentCheck:
    assert _segments is not None, "app/wiring.py registers the segment check before any coupon is offered"
    return _segments


async def check_fields(session: AsyncSession, *, region: str, issued_by_merchant: bool, fields: dict[str, Any]) -> None:
    """A segment's coupon names a live segment of the region, and only the operator targets one
    (segments are the operator's; a shop offers its coupons to everyone)."""
    audience, segment_id = Audience(fields["audience"]), fields.get("segment_id")
    if (audience == Audience.SEGMENT) != (segment_id is not None):
        raise InvalidCoupon("A segment's coupon names its segment (segment_id); one for all residents names none.")
    if segment_id is None:
        return
    if issued_by_merchant:
        raise InvalidCoupon("Segments are the operator's: a merchant's own coupon is offered to all residents.")
    await _check().exists(session, region=region, segment_id=segment_id)


@dataclass(frozen=True)
class _Audience:
    region_id: uuid.UUID
    segment_id: uuid.UUID | None  # None: all residents


_settled: dict[uuid.UUID, _Audience] = {}  # coupons past their draft, whose audience can no longer change
_SETTLED_MAX = 100_000


async def _audience(session: AsyncSession, coupon_id: uuid.UUID) -> _Audience | None:
    found = _settled.get(coupon_id)
    if found is not None:
        return found
    row = await repo.audience_of(session, coupon_id)
    if row is None:
        return None
    found = _Audience(row.region_id, row.segment_id)
    if row.status != CouponStatus.DRAFT:
        if len(_settled) >= _SETTLED_MAX:
            _settled.clear()
        _settled[coupon_id] = found
    return found


def offered_to_all(coupon_id: uuid.UUID) -> bool:
    """Whether the coupon is known, without a statement, to be offered to all residents for good
    (past its draft, no segment): `check_claim` would then refuse no one and ask nothing."""
    found = _settled.get(coupon_id)
    return found is not None and found.segment_id is None


async def check_claim(
    session: AsyncSession, *, region: str, region_id: uuid.UUID, coupon_id: uuid.UUID, subject: str, at: datetime
) -> None:
    """Refuses coupon-not-in-audience when the coupon is a segment's and the resident is not in
    it at `at`. A coupon of no such id or of another region is left to the claim to refuse."""
    found = await _audience(session, coupon_id)
    if found is None or found.region_id != region_id or found.segment_id is None:
        return
    if not await _check().is_member(session, region=region, segment_id=found.segment_id, subject=subject, at=at):
        raise CouponNotInAudience(
            "This coupon is offered to a segment of residents you are not in now (it needs your opt-in to "
            "offers, and matching it).", coupon_id=str(coupon_id),
        )


async def offered(
    session: AsyncSession, *, region: str, subject: str, coupons: Sequence[Coupon], at: datetime
) -> list[Coupon]:
    """Those of `coupons` offered to the resident at `at`: each segment asked about once."""
    member: dict[uuid.UUID, bool] = {}
    kept = []
    for coupon in coupons:
        if coupon.segment_id is not None and coupon.segment_id not in member:
            member[coupon.segment_id] = await _check().is_member(
                session, region=region, segment_id=coupon.segment_id, subject=subject, at=at
            )
        if coupon.segment_id is None or member[coupon.segment_id]:
            kept.append(coupon)
    return kept
