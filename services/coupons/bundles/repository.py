"""Every SQL query of bundles."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.coupons.bundles.models import Bundle, BundleClaim, BundlePart, BundleSettings, BundleStatus

# --- bundles ------------------------------------------------------------------------------------


async def insert_bundle(session: AsyncSession, **values: Any) -> Bundle:
    return (await session.execute(insert(Bundle).values(**values).returning(Bundle))).scalar_one()


async def insert_parts(
    session: AsyncSession, region_id: uuid.UUID, bundle_id: uuid.UUID, coupon_ids: Sequence[uuid.UUID]
) -> None:
    rows = [{"bundle_id": bundle_id, "coupon_id": c, "region_id": region_id, "position": n}
            for n, c in enumerate(coupon_ids)]
    await session.execute(insert(BundlePart), rows)


async def bundle(
    session: AsyncSession, region_id: uuid.UUID, bundle_id: uuid.UUID, *, lock: bool = False
) -> Bundle | None:
    query = select(Bundle).where(Bundle.id == bundle_id, Bundle.region_id == region_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def parts(session: AsyncSession, bundle_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Each bundle's coupon ids, in the order the operator listed them."""
    found: dict[uuid.UUID, list[uuid.UUID]] = {b: [] for b in bundle_ids}
    query = (
        select(BundlePart.bundle_id, BundlePart.coupon_id).where(BundlePart.bundle_id.in_(bundle_ids))
        .order_by(BundlePart.bundle_id, BundlePart.position)
    )
    for bundle_id, coupon_id in await session.execute(query):
        found[bundle_id].append(coupon_id)
    return found


async def bundles(
    session: AsyncSession, region_id: uuid.UUID, *, status: str | None, after_id: uuid.UUID | None, limit: int
) -> list[Bundle]:
    """The region's bundles, newest first."""
    query = select(Bundle).where(Bundle.region_id == region_id)
    if status is not None:
        query = query.where(Bundle.status == status)
    if after_id is not None:
        query = query.where(Bundle.id < after_id)
    return list((await session.execute(query.order_by(Bundle.id.desc()).limit(limit))).scalars())


async def update_bundle(session: AsyncSession, bundle_id: uuid.UUID, **values: Any) -> Bundle:
    query = update(Bundle).where(Bundle.id == bundle_id).values(**values).returning(Bundle)
    options = {"synchronize_session": False, "populate_existing": True}
    return (await session.execute(query, execution_options=options)).scalar_one()


async def available(
    session: AsyncSession, region_id: uuid.UUID, subject: str, now: datetime, *, after_id: uuid.UUID | None, limit: int
) -> list[Bundle]:
    """Distributed bundles within their claiming period that the resident has not claimed, newest
    first (the audience is the service's to check)."""
    claimed = select(BundleClaim.id).where(BundleClaim.bundle_id == Bundle.id, BundleClaim.subject == subject).exists()
    query = select(Bundle).where(
        Bundle.region_id == region_id, Bundle.status == BundleStatus.DISTRIBUTED, Bundle.starts_at <= now,
        Bundle.ends_at > now, ~claimed,
    )
    if after_id is not None:
        query = query.where(Bundle.id < after_id)
    return list((await session.execute(query.order_by(Bundle.id.desc()).limit(limit))).scalars())


# --- bundle claims ------------------------------------------------------------------------------


async def take_claim(session: AsyncSession, **values: Any) -> bool:
    """The resident's one claim of the bundle, begun: False if they have one already. A twin
    claim waits here on the unique key until the first commits (then False) or rolls back."""
    statement = (
        insert(BundleClaim).values(**values)
        .on_conflict_do_nothing(index_elements=[BundleClaim.region_id, BundleClaim.bundle_id, BundleClaim.subject])
        .returning(BundleClaim.id)
    )
    return (await session.execute(statement)).first() is not None


async def finish_claim(
    session: AsyncSession, claim_id: uuid.UUID, claim_ids: list[uuid.UUID], ticket_id: uuid.UUID | None
) -> BundleClaim:
    query = (
        update(BundleClaim).where(BundleClaim.id == claim_id).values(claim_ids=claim_ids, ticket_id=ticket_id)
        .returning(BundleClaim)
    )
    options = {"synchronize_session": False, "populate_existing": True}
    return (await session.execute(query, execution_options=options)).scalar_one()


async def claims_of(
    session: AsyncSession, region_id: uuid.UUID, subject: str, *, after_id: uuid.UUID | None, limit: int
) -> list[tuple[BundleClaim, Bundle]]:
    query = (
        select(BundleClaim, Bundle).join(Bundle, Bundle.id == BundleClaim.bundle_id)
        .where(BundleClaim.region_id == region_id, BundleClaim.subject == subject)
    )
    if after_id is not None:
        query = query.where(BundleClaim.id < after_id)
    rows = await session.execute(query.order_by(BundleClaim.id.desc()).limit(limit))
    return [(row[0], row[1]) for row in rows]


async def claims_between(
    session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime
) -> list[BundleClaim]:
    """The region's bundle claims made in [since, until), in time order."""
    query = (
        select(BundleClaim)
        .where(BundleClaim.region_id == region_id, BundleClaim.claimed_at >= since, BundleClaim.claimed_at < until)
        .order_by(BundleClaim.claimed_at, BundleClaim.id)
    )
    return list((await session.execute(query)).scalars())


# --- the measure of bundle-created rides --------------------------------------------------------------


async def settings(session: AsyncSession, region_id: uuid.UUID) -> BundleSettings | None:
    return await session.get(BundleSettings, region_id)


async def put_settings(session: AsyncSession, **values: Any) -> BundleSettings:
    statement = insert(BundleSettings).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[BundleSettings.region_id],
        set_={name: statement.excluded[name] for name in ("created_ride_days", "quiet_days", "set_by", "set_at")},
    ).returning(BundleSettings)
    options = {"populate_existing": True}
    return (await session.execute(statement, execution_options=options)).scalar_one()
