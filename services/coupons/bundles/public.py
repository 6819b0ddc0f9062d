"""Bundles' public surface: what the KPI counts (issue 13, item 7) and settlement read of bundles,
in the caller's session, read-only.

`bundle_claims(session, region=, since=, until=) -> list[BundleClaimRow]`: every bundle claim
made in the Tokyo days [since, until) (dates, `until` exclusive), in time order: the bundle, the
resident's subject, when, the coupon claims it made and the ticket it granted (None for a bundle
without one). A bundle claim is never undone: it counts once made, as a coupon claim does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy.ext.asyncio import AsyncSession

from services.coupons.bundles import repository as repo
from services.wallet import public as wallet
from shared.clock import TOKYO

__all__ = ["BundleClaimRow", "bundle_claims"]


@dataclass(frozen=True)
class BundleClaimRow:
    id: uuid.UUID
    bundle_id: uuid.UUID
    subject: str
    claimed_at: datetime
    claim_ids: tuple[uuid.UUID, ...]  # the coupon claims, one per part in the parts' order
    ticket_id: uuid.UUID | None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), TOKYO)


async def bundle_claims(session: AsyncSession, *, region: str, since: date, until: date) -> list[BundleClaimRow]:
    region_id = await wallet.region_id(session, region=region)
    return [
        BundleClaimRow(c.id, c.bundle_id, c.subject, c.claimed_at, tuple(c.claim_ids), c.ticket_id)
        for c in await repo.claims_between(session, region_id, _midnight(since), _midnight(until))
    ]
