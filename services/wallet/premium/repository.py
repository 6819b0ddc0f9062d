"""Every SQL query of premium campaigns. A first-come purchase is one statement with its
Idempotency-Key, wallet.buy_premium (sql/buy_premium.sql), in the request's transaction; its
retries for a free bucket and the slow path are one statement per step."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Integer, Row, Text, bindparam, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.premium.models import (
    PremiumApplication,
    PremiumOffer,
    PremiumPurchase,
    PremiumPurchaseLot,
    PremiumStock,
    PremiumTally,
)

# --- offers -------------------------------------------------------------------------------------


async def insert_offer(session: AsyncSession, **values: Any) -> PremiumOffer:
    return (await session.execute(insert(PremiumOffer).values(**values).returning(PremiumOffer))).scalar_one()


async def offer(session: AsyncSession, campaign_id: uuid.UUID) -> PremiumOffer | None:
    return await session.get(PremiumOffer, campaign_id, populate_existing=True)


async def lock_offer(session: AsyncSession, campaign_id: uuid.UUID) -> PremiumOffer:
    """FOR NO KEY UPDATE: serialises restocking, draws and releases of one offer, yet does not
    block purchases, whose foreign keys take only KEY SHARE locks on the row."""
    query = (
        select(PremiumOffer).where(PremiumOffer.campaign_id == campaign_id)
        .with_for_update(key_share=True)  # FOR NO KEY UPDATE
        .execution_options(populate_existing=True)
    )
    return (await session.execute(query)).scalar_one()


async def offers(session: AsyncSession, region_id: uuid.UUID, *, after_id: uuid.UUID | None, limit: int) -> list[PremiumOffer]:
    query = select(PremiumOffer).where(PremiumOffer.region_id == region_id)
    if after_id is not None:
        query = query.where(PremiumOffer.campaign_id < after_id)
    return list((await session.execute(query.order_by(PremiumOffer.campaign_id.desc()).limit(limit))).scalars())


async def update_offer(session: AsyncSession, campaign_id: uuid.UUID, **values: Any) -> PremiumOffer:
    result = await session.execute(
        update(PremiumOffer).where(PremiumOffer.campaign_id == campaign_id).values(**values).returning(PremiumOffer)
        .execution_options(populate_existing=True)
    )
    return result.scalar_one()


# --- stock (first-come) --------------------------------------------------------------------------


async def insert_stock(session: AsyncSession, campaign_id: uuid.UUID, buckets: int) -> None:
    await session.execute(
        insert(PremiumStock).values([{"campaign_id": campaign_id, "bucket": b, "remaining": 0} for b in range(buckets)])
    )


async def stock_left(session: AsyncSession, campaign_id: uuid.UUID) -> int:
    """Sets in the buckets now (no lock: a figure, or a definitive 0 once nothing is unbacked)."""
    query = select(func.coalesce(func.sum(PremiumStock.remaining), 0)).where(PremiumStock.campaign_id == campaign_id)
    return int((await session.execute(query)).scalar_one())


_TAKE_FROM_ONE_BUCKET = text(
    """
    WITH pick AS MATERIALIZED (  -- picked once: inlined, it could be run again per bucket scanned
        SELECT bucket FROM wallet.premium_stock
        WHERE campaign_id = :campaign_id AND remaining >= :sets
        ORDER BY (bucket + :start) % :buckets
        LIMIT 1
        FOR NO KEY UPDATE SKIP LOCKED
    )
    UPDATE wallet.premium_stock s SET remaining = s.remaining - :sets
    FROM pick WHERE s.campaign_id = :campaign_id AND s.bucket = pick.bucket
    RETURNING s.bucket
    """
)


async def take_from_one_bucket(session: AsyncSession, campaign_id: uuid.UUID, sets: int, *, start: int,
                               buckets: int) -> int | None:
    """The fast path: `sets` from the first bucket (from `start` round) that holds them and that
    no other purchase has locked; None if there is none (the caller then takes the slow path)."""
    result = await session.execute(
        _TAKE_FROM_ONE_BUCKET, {"campaign_id": campaign_id, "sets": sets, "start": start, "buckets": buckets}
    )
    return result.scalar_one_or_none()


async def lock_stock(session: AsyncSession, campaign_id: uuid.UUID) -> list[PremiumStock]:
    """Every bucket, locked in bucket order (the slow path: restocking, taking across buckets)."""
    query = (
        select(PremiumStock).where(PremiumStock.campaign_id == campaign_id).order_by(PremiumStock.bucket)
        .with_for_update(key_share=True).execution_options(populate_existing=True)
    )
    return list((await session.execute(query)).scalars())


async def change_bucket(session: AsyncSession, campaign_id: uuid.UUID, bucket: int, delta: int) -> None:
    await session.execute(
        update(PremiumStock).where(PremiumStock.campaign_id == campaign_id, PremiumStock.bucket == bucket)
        .values(remaining=PremiumStock.remaining + delta)
    )


# --- paying for sets ------------------------------------------------------------------------------

# wallet.settle_premium (sql/settle_premium.sql) pays for sets: a lottery win, or inside a first-
# come purchase. wallet.buy_premium (sql/buy_premium.sql) is a whole first-come purchase: the key's
# claim, checks, limits, settle_premium, one free bucket and the key's answer. One round trip
# each: the rush's hot path.
_SETTLE = text(
    "SELECT * FROM wallet.settle_premium(:region_id, :campaign_id, :application_id, :actor, :resident_id, :yen,"
    " :points, :sets, :now, :purchase_id, :journal_id, :ids)"
).bindparams(
    bindparam("region_id", type_=UUID), bindparam("campaign_id", type_=UUID), bindparam("application_id", type_=UUID),
    bindparam("actor", type_=Text), bindparam("resident_id", type_=UUID), bindparam("yen", type_=UUID),
    bindparam("points", type_=UUID), bindparam("sets", type_=Integer), bindparam("now", type_=DateTime(timezone=True)),
    bindparam("purchase_id", type_=UUID), bindparam("journal_id", type_=UUID), bindparam("ids", type_=ARRAY(UUID)),
)
_BUY = text(
    "SELECT * FROM wallet.buy_premium(:caller, :key, :request_hash, :region_id, :subject, :campaign_id, :sets, :now,"
    " :start, :purchase_id, :journal_id, :ids)"
).bindparams(
    bindparam("caller", type_=Text), bindparam("key", type_=Text), bindparam("request_hash", type_=Text),
    bindparam("region_id", type_=UUID), bindparam("subject", type_=Text), bindparam("campaign_id", type_=UUID),
    bindparam("sets", type_=Integer), bindparam("now", type_=DateTime(timezone=True)), bindparam("start", type_=Integer),
    bindparam("purchase_id", type_=UUID), bindparam("journal_id", type_=UUID), bindparam("ids", type_=ARRAY(UUID)),
)


async def settle_in_one_call(session: AsyncSession, **params: Any) -> Row[Any]:
    return (await session.execute(_SETTLE, params)).one()


async def buy_in_one_call(session: AsyncSession, **params: Any) -> Row[Any]:
    return (await session.execute(_BUY, params)).one()


# --- limits ---------------------------------------------------------------------------------------


async def raise_tally(session: AsyncSession, campaign_id: uuid.UUID, scope: str, holder: str, sets: int,
                      limit: int) -> int | None:
    """Add `sets` to the holder's tally if it stays within `limit`, in one statement that locks
    the holder's row until commit; the new tally, or None if the limit would be passed."""
    if sets > limit:
        return None
    statement = (
        pg_insert(PremiumTally)
        .values(campaign_id=campaign_id, scope=scope, holder=holder, sets=sets)
        .on_conflict_do_update(
            index_elements=[PremiumTally.campaign_id, PremiumTally.scope, PremiumTally.holder],
            set_={"sets": PremiumTally.sets + sets},
            where=PremiumTally.sets + sets <= limit,
        )
        .returning(PremiumTally.sets)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def tally(session: AsyncSession, campaign_id: uuid.UUID, scope: str, holder: str) -> int:
    query = select(PremiumTally.sets).where(
        PremiumTally.campaign_id == campaign_id, PremiumTally.scope == scope, PremiumTally.holder == holder
    )
    return int((await session.execute(query)).scalar_one_or_none() or 0)


# --- purchases ------------------------------------------------------------------------------------


async def purchase(session: AsyncSession, purchase_id: uuid.UUID) -> PremiumPurchase | None:
    return await session.get(PremiumPurchase, purchase_id)


async def purchase_lots(session: AsyncSession, purchase_ids: Sequence[uuid.UUID]) -> list[PremiumPurchaseLot]:
    query = (
        select(PremiumPurchaseLot).where(PremiumPurchaseLot.purchase_id.in_(purchase_ids))
        .order_by(PremiumPurchaseLot.purchase_id, PremiumPurchaseLot.seq)
    )
    return list((await session.execute(query)).scalars())


async def purchases(
    session: AsyncSession, *, resident_id: uuid.UUID | None = None, campaign_id: uuid.UUID | None = None,
    after_id: uuid.UUID | None, limit: int,
) -> list[PremiumPurchase]:
    query = select(PremiumPurchase)
    if resident_id is not None:
        query = query.where(PremiumPurchase.resident_id == resident_id)
    if campaign_id is not None:
        query = query.where(PremiumPurchase.campaign_id == campaign_id)
    if after_id is not None:
        query = query.where(PremiumPurchase.id < after_id)
    return list((await session.execute(query.order_by(PremiumPurchase.id.desc()).limit(limit))).scalars())


async def purchase_of_application(session: AsyncSession, application_id: uuid.UUID) -> PremiumPurchase | None:
    query = select(PremiumPurchase).where(PremiumPurchase.application_id == application_id)
    return (await session.execute(query)).scalar_one_or_none()


# --- lottery --------------------------------------------------------------------------------------


async def insert_application(session: AsyncSession, **values: Any) -> PremiumApplication | None:
    """None if the resident has already applied for this campaign."""
    statement = pg_insert(PremiumApplication).values(**values).on_conflict_do_nothing().returning(PremiumApplication)
    return (await session.execute(statement)).scalar_one_or_none()


async def application(session: AsyncSession, application_id: uuid.UUID, *, lock: bool = False) -> PremiumApplication | None:
    query = select(PremiumApplication).where(PremiumApplication.id == application_id)
    if lock:
        query = query.with_for_update(key_share=True)
    return (await session.execute(query.execution_options(populate_existing=True))).scalar_one_or_none()


async def application_of(session: AsyncSession, campaign_id: uuid.UUID, resident_id: uuid.UUID) -> PremiumApplication | None:
    query = select(PremiumApplication).where(
        PremiumApplication.campaign_id == campaign_id, PremiumApplication.resident_id == resident_id
    )
    return (await session.execute(query)).scalar_one_or_none()


async def applications(
    session: AsyncSession, *, campaign_id: uuid.UUID | None = None, resident_id: uuid.UUID | None = None,
    after_id: uuid.UUID | None = None, limit: int | None = None, status: str | None = None,
) -> list[PremiumApplication]:
    """Newest first when paged; all of a campaign's in id order when `limit` is None (the draw)."""
    query = select(PremiumApplication)
    if campaign_id is not None:
        query = query.where(PremiumApplication.campaign_id == campaign_id)
    if resident_id is not None:
        query = query.where(PremiumApplication.resident_id == resident_id)
    if status is not None:
        query = query.where(PremiumApplication.status == status)
    if after_id is not None:
        query = query.where(PremiumApplication.id < after_id)
    query = query.execution_options(populate_existing=True)  # the draw updates them in bulk
    if limit is None:
        return list((await session.execute(query.order_by(PremiumApplication.id))).scalars())
    return list((await session.execute(query.order_by(PremiumApplication.id.desc()).limit(limit))).scalars())


async def record_draw(session: AsyncSession, results: Sequence[dict[str, Any]], decided_at: datetime) -> None:
    """Each application's rank, key, won sets and status, in one statement."""
    if not results:
        return
    await session.execute(
        text(
            """
            UPDATE wallet.premium_applications a
            SET draw_rank = r.rank, draw_key = r.key, won_sets = r.won, status = r.status, decided_at = :at
            FROM unnest(CAST(:ids AS uuid[]), CAST(:ranks AS integer[]), CAST(:keys AS text[]),
                        CAST(:wons AS integer[]), CAST(:statuses AS text[])) AS r (id, rank, key, won, status)
            WHERE a.id = r.id
            """
        ),
        {
            "ids": [r["id"] for r in results], "ranks": [r["rank"] for r in results],
            "keys": [r["key"] for r in results], "wons": [r["won"] for r in results],
            "statuses": [r["status"] for r in results], "at": decided_at,
        },
    )


async def set_application_status(session: AsyncSession, application_id: uuid.UUID, status: str, at: datetime) -> None:
    await session.execute(
        update(PremiumApplication).where(PremiumApplication.id == application_id).values(status=status, decided_at=at)
    )


async def release_unpaid(session: AsyncSession, campaign_id: uuid.UUID, at: datetime) -> list[PremiumApplication]:
    result = await session.execute(
        update(PremiumApplication)
        .where(PremiumApplication.campaign_id == campaign_id, PremiumApplication.status == "won")
        .values(status="released", decided_at=at)
        .returning(PremiumApplication)
    )
    return list(result.scalars())


async def offers_to_release(session: AsyncSession, now: datetime) -> list[PremiumOffer]:
    query = select(PremiumOffer).where(
        PremiumOffer.mode == "lottery", PremiumOffer.drawn_at.is_not(None), PremiumOffer.released_at.is_(None),
        PremiumOffer.payment_deadline <= now,
    )
    return list((await session.execute(query)).scalars())


# --- figures --------------------------------------------------------------------------------------


async def sales_figures(session: AsyncSession, campaign_id: uuid.UUID) -> dict[str, int]:
    row = (
        await session.execute(
            text(
                """
                SELECT
                  (SELECT coalesce(sum(sets), 0) FROM wallet.premium_purchases WHERE campaign_id = :c) AS sold_sets,
                  (SELECT count(*) FROM wallet.premium_purchases WHERE campaign_id = :c) AS purchases,
                  (SELECT count(DISTINCT resident_id) FROM wallet.premium_purchases WHERE campaign_id = :c) AS buyers,
                  (SELECT coalesce(sum(coin), 0) FROM wallet.premium_purchases WHERE campaign_id = :c) AS coin,
                  (SELECT coalesce(sum(points), 0) FROM wallet.premium_purchases WHERE campaign_id = :c) AS points,
                  (SELECT coalesce(sum(remaining), 0) FROM wallet.premium_stock WHERE campaign_id = :c) AS in_stock,
                  a.applications, a.applied_sets, a.winners, a.won_sets, a.released_sets
                FROM (SELECT count(*) AS applications, coalesce(sum(sets), 0) AS applied_sets,
                             count(*) FILTER (WHERE won_sets > 0) AS winners, coalesce(sum(won_sets), 0) AS won_sets,
                             coalesce(sum(won_sets) FILTER (WHERE status = 'released'), 0) AS released_sets
                      FROM wallet.premium_applications WHERE campaign_id = :c) a
                """
            ),
            {"c": campaign_id},
        )
    ).mappings().one()
    return {k: int(v) for k, v in row.items()}
