"""Counting for the KPIs (issue 13, item 7), across coupons, bundles and transit: what
bundles/public.py gives settlement and the operator's counts endpoint.

The rides a bundle created (the demand it made): a ride (a validated scan) taken within N days
of claiming a bundle, by a resident who had taken no ride in the M days before that claim. N and
M are the operator's settings (`created_ride_days`, `quiet_days`; 30 and 90 by default). A ride
counts once, for the latest of the resident's qualifying claims it falls within, on its own
Tokyo day; a claim made up to N days before a period can create rides inside it."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.coupons.bundles import repository as repo
from services.coupons.bundles.errors import InvalidRideWindow
from services.coupons.bundles.models import BundleClaim
from services.coupons.transit import public as transit
from services.wallet import public as wallet
from shared import audit
from shared.audit import Actor
from shared.clock import Clock, tokyo_date, tokyo_midnight

DEFAULT_CREATED_RIDE_DAYS = 30
DEFAULT_QUIET_DAYS = 90
MAX_DAYS = 366


@dataclass(frozen=True)
class RideWindow:
    created_ride_days: int  # N
    quiet_days: int  # M
    set_by: str | None  # None: the defaults, never set
    set_at: datetime | None


async def ride_window(session: AsyncSession, *, region: str) -> RideWindow:
    found = await repo.settings(session, await wallet.region_id(session, region=region))
    if found is None:
        return RideWindow(DEFAULT_CREATED_RIDE_DAYS, DEFAULT_QUIET_DAYS, None, None)
    return RideWindow(found.created_ride_days, found.quiet_days, found.set_by, found.set_at)


async def set_ride_window(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, created_ride_days: int, quiet_days: int
) -> RideWindow:
    """The operator's N and M (audited); every count computed after uses them, for any period."""
    if not (1 <= created_ride_days <= MAX_DAYS and 1 <= quiet_days <= MAX_DAYS):
        raise InvalidRideWindow(f"N and M are whole days from 1 to {MAX_DAYS}.",
                                created_ride_days=created_ride_days, quiet_days=quiet_days)
    region_id = await wallet.region_id(session, region=region)
    before = await ride_window(session, region=region)
    saved = await repo.put_settings(
        session, region_id=region_id, created_ride_days=created_ride_days, quiet_days=quiet_days,
        set_by=actor.subject, set_at=clock.now(),
    )
    await audit.record(
        session, clock, actor, region_id=region_id, action="bundles.ride_window.set", target_type="region",
        target_id=region_id, before={"created_ride_days": before.created_ride_days, "quiet_days": before.quiet_days},
        after={"created_ride_days": created_ride_days, "quiet_days": quiet_days},
    )
    return RideWindow(saved.created_ride_days, saved.quiet_days, saved.set_by, saved.set_at)


@dataclass(frozen=True)
class BundleDay:
    day: date  # Tokyo
    bundle_id: uuid.UUID
    claims: int  # bundle claims made that day
    created_rides: int  # rides that day that the bundle created


def _created_rides(
    claims: list[BundleClaim], rides: list[transit.Ride], window: RideWindow, start: datetime, end: datetime
) -> dict[tuple[date, uuid.UUID], int]:
    within, quiet = timedelta(days=window.created_ride_days), timedelta(days=window.quiet_days)
    rides_of: dict[str, list[datetime]] = defaultdict(list)
    for ride in rides:
        rides_of[ride.subject].append(ride.at)
    claims_of: dict[str, list[BundleClaim]] = defaultdict(list)
    for claim in claims:
        claims_of[claim.subject].append(claim)
    created: dict[tuple[date, uuid.UUID], int] = defaultdict(int)
    for subject, theirs in claims_of.items():
        times = rides_of.get(subject, [])
        qualifying = [
            c for c in theirs if not any(c.claimed_at - quiet <= at < c.claimed_at for at in times)
        ]
        for at in times:
            if not start <= at < end:
                continue
            owners = [c for c in qualifying if c.claimed_at <= at < c.claimed_at + within]
            if owners:
                owner = max(owners, key=lambda c: (c.claimed_at, c.id))
                created[(tokyo_date(at), owner.bundle_id)] += 1
    return created


async def bundle_days(session: AsyncSession, *, region: str, since: date, until: date) -> list[BundleDay]:
    """Per Tokyo day in [since, until) and bundle: its claims, and the rides it created."""
    region_id = await wallet.region_id(session, region=region)
    window = await ride_window(session, region=region)
    start, end = tokyo_midnight(since), tokyo_midnight(until)
    within, quiet = timedelta(days=window.created_ride_days), timedelta(days=window.quiet_days)
    claims = await repo.claims_between(session, region_id, start - within, end)
    rides = await transit.rides(session, region=region, since=start - within - quiet, until=end,
                                residents={c.subject for c in claims})
    days: dict[tuple[date, uuid.UUID], list[int]] = defaultdict(lambda: [0, 0])
    for claim in claims:
        if start <= claim.claimed_at < end:
            days[(tokyo_date(claim.claimed_at), claim.bundle_id)][0] += 1
    for key, count in _created_rides(claims, rides, window, start, end).items():
        days[key][1] += count
    return [BundleDay(day, bundle_id, n, created)
            for (day, bundle_id), (n, created) in sorted(days.items(), key=lambda item: (item[0][0], str(item[0][1])))]
