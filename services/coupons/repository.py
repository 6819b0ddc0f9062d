"""Every query of the coupons service."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, Integer, Row, Text, and_, bindparam, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.coupons.models import Claim, ClaimStatus, Coupon, CouponStatus, CouponStock, Holding, Redemption
from shared.db import fetch_on_driver
from shared.models import IdempotencyRecord

# --- coupons ------------------------------------------------------------------------------------


async def insert_coupon(session: AsyncSession, **values: Any) -> Coupon:
    return (await session.execute(insert(Coupon).values(**values).returning(Coupon))).scalar_one()


async def coupon(session: AsyncSession, coupon_id: uuid.UUID, *, lock: bool = False) -> Coupon | None:
    query = select(Coupon).where(Coupon.id == coupon_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def update_coupon(session: AsyncSession, coupon_id: uuid.UUID, **values: Any) -> Coupon:
    query = update(Coupon).where(Coupon.id == coupon_id).values(**values).returning(Coupon)
    options = {"synchronize_session": False, "populate_existing": True}  # the row as updated, not as first loaded
    return (await session.execute(query, execution_options=options)).scalar_one()


async def coupons(
    session: AsyncSession, region_id: uuid.UUID, *, merchant_id: uuid.UUID | None, status: str | None,
    after_id: uuid.UUID | None, limit: int,
) -> list[Coupon]:
    """The region's coupons, newest first; with `merchant_id`, that merchant's only."""
    query = select(Coupon).where(Coupon.region_id == region_id)
    if merchant_id is not None:
        query = query.where(Coupon.merchant_id == merchant_id)
    if status is not None:
        query = query.where(Coupon.status == status)
    if after_id is not None:
        query = query.where(Coupon.id < after_id)
    return list((await session.execute(query.order_by(Coupon.id.desc()).limit(limit))).scalars())


async def has_stock_buckets(session: AsyncSession, coupon_id: uuid.UUID) -> bool:
    query = select(literal(1)).where(CouponStock.coupon_id == coupon_id).limit(1)
    return (await session.execute(query)).first() is not None


async def insert_stock_buckets(session: AsyncSession, coupon_id: uuid.UUID, remaining: list[int]) -> None:
    rows = [{"coupon_id": coupon_id, "bucket": i, "remaining": n} for i, n in enumerate(remaining)]
    await session.execute(insert(CouponStock), rows)


async def stock_left(session: AsyncSession, coupon_id: uuid.UUID) -> int:
    query = select(func.coalesce(func.sum(CouponStock.remaining), 0)).where(CouponStock.coupon_id == coupon_id)
    return int((await session.execute(query)).scalar_one())


def _in_window(now: datetime) -> Any:
    return and_(Coupon.status == CouponStatus.ACTIVE, Coupon.valid_from <= now, Coupon.valid_until > now)


async def available(
    session: AsyncSession, region_id: uuid.UUID, subject: str, now: datetime, *, after_id: uuid.UUID | None, limit: int
) -> list[Coupon]:
    """Coupons the resident may claim now: active, in their window, with stock left and the
    resident's own limit not reached; newest first."""
    held = (
        select(Holding.held).where(Holding.coupon_id == Coupon.id, Holding.subject == subject).scalar_subquery()
    )
    stocked = select(literal(1)).where(CouponStock.coupon_id == Coupon.id, CouponStock.remaining > 0).exists()
    query = select(Coupon).where(
        Coupon.region_id == region_id, _in_window(now), stocked, func.coalesce(held, 0) < Coupon.per_resident_limit,
    )
    if after_id is not None:
        query = query.where(Coupon.id < after_id)
    return list((await session.execute(query.order_by(Coupon.id.desc()).limit(limit))).scalars())


# --- claims -------------------------------------------------------------------------------------

_CLAIM = text(
    "SELECT outcome, name, kind, valid_from, valid_until, per_resident_limit FROM coupons.claim_coupon("
    ":region_id, :coupon_id, :subject, :now, :start, :claim_id, :code)"
).bindparams(
    bindparam("region_id", type_=UUID(as_uuid=True)), bindparam("coupon_id", type_=UUID(as_uuid=True)),
    bindparam("subject", type_=Text), bindparam("start", type_=Integer),
    bindparam("claim_id", type_=UUID(as_uuid=True)), bindparam("code", type_=Text),
)


async def claim_coupon(session: AsyncSession, **values: Any) -> Row[Any]:
    """The claim in one statement (sql/claim_coupon.sql): its outcome and the coupon's answer fields."""
    return (await session.execute(_CLAIM, values)).one()


_CLAIM_KEYED = text(
    "SELECT outcome, name, kind, valid_from, valid_until, per_resident_limit, first_hash, first_status,"
    " first_response FROM coupons.claim_coupon_keyed(:caller, :key, :request_hash, :region_id, :coupon_id,"
    " :subject, :now, :start, :claim_id, :code)"
).bindparams(
    bindparam("caller", type_=Text), bindparam("key", type_=Text), bindparam("request_hash", type_=Text),
    bindparam("region_id", type_=UUID(as_uuid=True)), bindparam("coupon_id", type_=UUID(as_uuid=True)),
    bindparam("subject", type_=Text), bindparam("start", type_=Integer),
    bindparam("claim_id", type_=UUID(as_uuid=True)), bindparam("code", type_=Text),
)


async def claim_coupon_keyed(session: AsyncSession, **values: Any) -> Row[Any]:
    """The key's claim and the claim in one statement (sql/claim_coupon_keyed.sql): outcome
    'replay' with the key's first answer, or the claim's outcome and the coupon's answer fields
    (with, for a claim made, the answer now stored for the key)."""
    return (await session.execute(_CLAIM_KEYED, values)).one()


_ALONE_ARGS = ("caller", "key", "request_hash", "region_id", "coupon_id", "subject", "now", "start", "claim_id", "code")
_CLAIM_ALONE = (
    "SELECT outcome, name, kind, valid_from, valid_until, per_resident_limit, first_hash, first_status,"
    " first_response FROM coupons.claim_coupon_alone($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
)


async def claim_coupon_alone(session: AsyncSession, **values: Any) -> Any:
    """claim_coupon_keyed's claim as a statement on its own (sql/claim_coupon_alone.sql): through
    the driver's connection, outside any transaction, so that it commits by itself (no BEGIN, no
    COMMIT, no ORM), the key's claim undone by the function on a refusal; unless the session
    already holds a connection (then in its transaction, on it, so that a request never waits for
    a second one: its owner commits). The row has claim_coupon_keyed's fields, by name (["outcome"])."""
    args = [values[name] for name in _ALONE_ARGS]
    if session.in_transaction():
        return (await session.execute(text(_CLAIM_ALONE.replace("$", ":p")), {
            f"p{i}": value for i, value in enumerate(args, 1)})).mappings().one()
    async with session.bind.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        return await driver.fetchrow(_CLAIM_ALONE, *args)


# A claim of a coupon found sold out, refused without the request's transaction: the same
# conditions under which coupons.claim_coupon answers out_of_stock (the coupon of the region,
# active, in its window, no stock left, read without a lock as the function reads them), and no
# record of the caller's Idempotency-Key, so that a key that has an answer (a claim that
# succeeded, or another request's) still gets it, or its 422, from the request's own path.
_SOLD_OUT = f"""
SELECT EXISTS (
    SELECT 1 FROM coupons.coupons c
     WHERE c.id = $1 AND c.region_id = $2 AND c.status = 'active' AND $3 >= c.valid_from AND $3 < c.valid_until
       AND NOT EXISTS (SELECT 1 FROM coupons.stock s WHERE s.coupon_id = c.id AND s.remaining > 0)
       AND NOT EXISTS (SELECT 1 FROM {IdempotencyRecord.__table__.fullname} k WHERE k.caller = $4 AND k.key = $5))
"""


async def sold_out(
    session: AsyncSession, *, coupon_id: uuid.UUID, region_id: uuid.UUID, now: datetime, caller: str, key: str
) -> bool:
    """Whether a claim with this key would be refused as out of stock, read in one statement
    on its own: through the driver's connection, outside any transaction (no BEGIN, no
    ROLLBACK, no ORM), unless the session already holds a connection (then on it, so that a
    request never waits for a second one)."""
    args = (coupon_id, region_id, now, caller, key)
    if session.in_transaction():
        return bool((await session.execute(text(_SOLD_OUT.replace("$", ":p")), {
            f"p{i}": value for i, value in enumerate(args, 1)})).scalar_one())
    async with session.bind.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
        return bool(await driver.fetchval(_SOLD_OUT, *args))


async def claim_with_coupon(
    session: AsyncSession, claim_id: uuid.UUID, *, lock: bool = False
) -> tuple[Claim, Coupon] | None:
    query = select(Claim, Coupon).join(Coupon, Coupon.id == Claim.coupon_id).where(Claim.id == claim_id)
    if lock:
        query = query.with_for_update(of=Claim)
    row = (await session.execute(query)).first()
    return (row[0], row[1]) if row else None


@dataclass(frozen=True)
class ClaimInUse:
    """A claim about to be used, as its checks need it."""

    id: uuid.UUID
    region_id: uuid.UUID
    subject: str
    status: str


@dataclass(frozen=True)
class CouponTerms:
    """What using a claim checks and computes of its coupon."""

    id: uuid.UUID
    region_id: uuid.UUID
    merchant_id: uuid.UUID | None
    kind: str
    value: int | None
    max_discount: int | None
    min_spend: int
    store_ids: list[uuid.UUID] | None
    valid_from: datetime
    valid_until: datetime
    funded_by: str
    sponsor_id: uuid.UUID | None
    status: str


_claims, _coupons = Claim.__table__, Coupon.__table__
# Plain columns (no ORM objects), on the session's driver (shared.db.fetch_on_driver): paying with
# a coupon reads its claim on the hot path.
_CLAIM_IN_USE = (
    "SELECT c.region_id, c.subject, c.status, "
    + ", ".join(f"k.{name}" for name in CouponTerms.__dataclass_fields__)
    + " FROM coupons.claims c JOIN coupons.coupons k ON k.id = c.coupon_id WHERE c.id = $1"
)
_CLAIM_IN_USE_LOCKED = _CLAIM_IN_USE + " FOR UPDATE OF c"


async def claim_in_use(
    session: AsyncSession, claim_id: uuid.UUID, *, lock: bool
) -> tuple[ClaimInUse, CouponTerms] | None:
    """A claim and its coupon's terms, the claim's row locked (`lock`) until the commit."""
    rows = await fetch_on_driver(session, _CLAIM_IN_USE_LOCKED if lock else _CLAIM_IN_USE, claim_id)
    if not rows:
        return None
    region_id, subject, status, *terms = rows[0]
    return ClaimInUse(claim_id, region_id, subject, status), CouponTerms(*terms)


async def claim_by_code(session: AsyncSession, code: str) -> tuple[Claim, Coupon] | None:
    query = (
        select(Claim, Coupon).join(Coupon, Coupon.id == Claim.coupon_id).where(Claim.code == code)
        .with_for_update(of=Claim)
    )
    row = (await session.execute(query)).first()
    return (row[0], row[1]) if row else None


async def claims_of(
    session: AsyncSession, region_id: uuid.UUID, subject: str, *, after_id: uuid.UUID | None, limit: int
) -> list[tuple[Claim, Coupon]]:
    query = (
        select(Claim, Coupon).join(Coupon, Coupon.id == Claim.coupon_id)
        .where(Claim.region_id == region_id, Claim.subject == subject)
    )
    if after_id is not None:
        query = query.where(Claim.id < after_id)
    rows = await session.execute(query.order_by(Claim.id.desc()).limit(limit))
    return [(row[0], row[1]) for row in rows]


async def mark_claim(session: AsyncSession, claim_id: uuid.UUID, **values: Any) -> None:
    await session.execute(update(Claim).where(Claim.id == claim_id).values(**values),
                          execution_options={"synchronize_session": False})


async def release_holding(session: AsyncSession, coupon_id: uuid.UUID, subject: str) -> None:
    query = (
        update(Holding).where(Holding.coupon_id == coupon_id, Holding.subject == subject)
        .values(held=Holding.held - 1)
    )
    await session.execute(query, execution_options={"synchronize_session": False})


async def restock(session: AsyncSession, coupon_id: uuid.UUID, bucket: int) -> None:
    query = (
        update(CouponStock).where(CouponStock.coupon_id == coupon_id, CouponStock.bucket == bucket)
        .values(remaining=CouponStock.remaining + 1)
    )
    await session.execute(query, execution_options={"synchronize_session": False})


# --- redemptions ----------------------------------------------------------------------------------


# The redemption and its claim marked redeemed, in one statement built once (every column is
# given: nothing to read back).
_redemptions = Redemption.__table__
_REDEMPTION_COLUMNS = tuple(c.name for c in _redemptions.c)
_REDEEM = (
    f"WITH made AS (INSERT INTO coupons.redemptions ({', '.join(_REDEMPTION_COLUMNS)})"
    f" VALUES ({', '.join(f'${n}' for n in range(1, len(_REDEMPTION_COLUMNS) + 1))}))"
    f" UPDATE coupons.claims SET status = '{ClaimStatus.REDEEMED.value}',"
    f" redeemed_at = ${_REDEMPTION_COLUMNS.index('redeemed_at') + 1} WHERE id = ${_REDEMPTION_COLUMNS.index('claim_id') + 1}"
)


async def redeem(session: AsyncSession, **values: Any) -> Redemption:
    """Record the claim's redemption and mark the claim redeemed, at `redeemed_at` (on the
    session's driver: the hot path of a payment with a coupon)."""
    await fetch_on_driver(session, _REDEEM, *(values[name] for name in _REDEMPTION_COLUMNS))
    return Redemption(**values)


async def redemption_of_payment(session: AsyncSession, payment_id: uuid.UUID) -> Redemption | None:
    query = select(Redemption).where(Redemption.payment_id == payment_id).with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def mark_reversed(session: AsyncSession, redemption_id: uuid.UUID, at: datetime) -> None:
    await session.execute(update(Redemption).where(Redemption.id == redemption_id).values(reversed_at=at),
                          execution_options={"synchronize_session": False})


# --- counts (public.py) -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DayCount:
    day: date
    coupon_id: uuid.UUID
    merchant_id: uuid.UUID | None
    claims: int
    redemptions: int
    shop_discount: int
    sponsor_discount: int
    coupon_sales: int


def _tokyo_day(column: Any) -> Any:
    return func.date(func.timezone("Asia/Tokyo", column)).cast(Date)


async def daily_counts(
    session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime, merchant_id: uuid.UUID | None
) -> list[DayCount]:
    """Per Tokyo day and coupon, in [since, until): claims made (released ones included: they
    were claims), and redemptions not reversed with their discount by funder and sales."""
    claim_day = _tokyo_day(Claim.claimed_at).label("day")
    claims = (
        select(claim_day, Claim.coupon_id.label("coupon_id"), func.count().label("claims"))
        .where(Claim.region_id == region_id, Claim.claimed_at >= since, Claim.claimed_at < until)
        .group_by(claim_day, Claim.coupon_id)
    ).subquery()
    redeemed_day = _tokyo_day(Redemption.redeemed_at).label("day")
    by_sponsor = Redemption.funded_by == "sponsor"
    redemptions = (
        select(
            redeemed_day, Redemption.coupon_id.label("coupon_id"), func.count().label("redemptions"),
            func.coalesce(func.sum(Redemption.discount).filter(~by_sponsor), 0).label("shop_discount"),
            func.coalesce(func.sum(Redemption.discount).filter(by_sponsor), 0).label("sponsor_discount"),
            func.coalesce(func.sum(Redemption.paid), 0).label("coupon_sales"),
        )
        .where(Redemption.region_id == region_id, Redemption.redeemed_at >= since, Redemption.redeemed_at < until,
               Redemption.reversed_at.is_(None))
        .group_by(redeemed_day, Redemption.coupon_id)
    ).subquery()
    day = func.coalesce(claims.c.day, redemptions.c.day)
    coupon_id = func.coalesce(claims.c.coupon_id, redemptions.c.coupon_id)
    query = (
        select(
            day, coupon_id, Coupon.merchant_id, func.coalesce(claims.c.claims, 0),
            func.coalesce(redemptions.c.redemptions, 0), func.coalesce(redemptions.c.shop_discount, 0).cast(BigInteger),
            func.coalesce(redemptions.c.sponsor_discount, 0).cast(BigInteger),
            func.coalesce(redemptions.c.coupon_sales, 0).cast(BigInteger),
        )
        .select_from(claims.join(
            redemptions, and_(claims.c.day == redemptions.c.day, claims.c.coupon_id == redemptions.c.coupon_id),
            full=True,
        ))
        .join(Coupon, Coupon.id == coupon_id)
        .order_by(day, coupon_id)
    )
    if merchant_id is not None:
        query = query.where(Coupon.merchant_id == merchant_id)
    return [DayCount(*row) for row in await session.execute(query)]


async def held(session: AsyncSession, coupon_id: uuid.UUID) -> tuple[int, int]:
    """(claims held: claimed or redeemed, Σ the residents' holdings)."""
    held = select(func.count()).where(
        Claim.coupon_id == coupon_id, Claim.status.in_([ClaimStatus.CLAIMED, ClaimStatus.REDEEMED])
    ).scalar_subquery()
    holdings = select(func.coalesce(func.sum(Holding.held), 0)).where(Holding.coupon_id == coupon_id).scalar_subquery()
    row = (await session.execute(select(held, holdings))).one()
    return int(row[0]), int(row[1])


# --- audiences (audiences.py) ---------------------------------------------------------------------


async def audience_of(session: AsyncSession, coupon_id: uuid.UUID) -> Row[Any] | None:
    """(region_id, status, audience, segment_id) of a coupon, without loading the whole row."""
    query = select(Coupon.region_id, Coupon.status, Coupon.audience, Coupon.segment_id).where(Coupon.id == coupon_id)
    return (await session.execute(query)).first()
