"""The coupons service's counts for the KPIs (issue 13, item 7): what settlement and the KPI
report read of coupons, bundles and transit, in the caller's session, read-only. Days are Tokyo
days in [since, until) (dates, `until` exclusive).

`counts(session, region=, since=, until=) -> KpiCounts`, each list per day and
- `coupons`, per coupon (with its merchant; None for a region-wide coupon): claims,
  redemptions that still stand, the discount funded by the shop and by a sponsor, coupon-driven
  sales (coupons/public.py `daily_counts`);
- `bundles`, per bundle: bundle claims, and the rides the bundle created: taken within N days
  of claiming it by a resident who had not ridden in the M days before (bundles/counts.py; N and
  M, the operator's settings, come with the counts as `window`);
- `transit`: per fare product (with its bus operator's merchant) tickets sold and their fares,
  activations, rides, conflicts; per bus operator the coin payments on the bus
  (transit/public.py `counts`, with `monthly_digital_payments()`).
Per merchant is the reader's grouping of the coupon and product rows by their merchant.

`bundle_claims(session, region=, since=, until=) -> list[BundleClaimRow]`: every bundle claim
made in those days, in time order: the bundle, the resident, when, the coupon claims it made and
the ticket it granted (None for a bundle without one). A bundle claim is never undone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.coupons import public as coupons
from services.coupons.bundles import repository as repo
from services.coupons.bundles.counts import BundleDay, RideWindow, bundle_days, ride_window
from services.coupons.public import CouponDay
from services.coupons.transit import public as transit
from services.coupons.transit.public import TransitCounts
from services.wallet import public as wallet
from shared.clock import tokyo_midnight

__all__ = ["BundleClaimRow", "BundleDay", "CouponDay", "KpiCounts", "RideWindow", "TransitCounts", "bundle_claims",
           "counts"]


@dataclass(frozen=True)
class KpiCounts:
    coupons: list[CouponDay]
    bundles: list[BundleDay]
    transit: TransitCounts
    window: RideWindow


async def counts(session: AsyncSession, *, region: str, since: date, until: date) -> KpiCounts:
    return KpiCounts(
        await coupons.daily_counts(session, region=region, since=since, until=until),
        await bundle_days(session, region=region, since=since, until=until),
        await transit.counts(session, region=region, since=since, until=until),
        await ride_window(session, region=region),
    )


@dataclass(frozen=True)
class BundleClaimRow:
    id: uuid.UUID
    bundle_id: uuid.UUID
    subject: str
    claimed_at: datetime
    claim_ids: tuple[uuid.UUID, ...]  # the coupon claims, one per part in the parts' order
    ticket_id: uuid.UUID | None


async def bundle_claims(session: AsyncSession, *, region: str, since: date, until: date) -> list[BundleClaimRow]:
    region_id = await wallet.region_id(session, region=region)
    return [
        BundleClaimRow(c.id, c.bundle_id, c.subject, c.claimed_at, tuple(c.claim_ids), c.ticket_id)
        for c in await repo.claims_between(session, region_id, tokyo_midnight(since), tokyo_midnight(until))
    ]
