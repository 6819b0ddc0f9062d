"""Every SQL query of transit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.ext.asyncio import AsyncSession

from services.coupons.transit.models import Fare, FareProduct, Scan, ScanOutcome, Ticket, TransitOperator, Validator
from shared.clock import TOKYO

# --- bus operators ------------------------------------------------------------------------------


async def insert_operator(session: AsyncSession, **values: Any) -> TransitOperator | None:
    """None if the merchant is a bus operator already."""
    query = upsert(TransitOperator).values(**values).on_conflict_do_nothing().returning(TransitOperator)
    return (await session.execute(query)).scalar_one_or_none()


async def operator(session: AsyncSession, operator_id: uuid.UUID) -> TransitOperator | None:
    return await session.get(TransitOperator, operator_id)


async def operator_of_merchant(session: AsyncSession, region_id: uuid.UUID, merchant_id: uuid.UUID) -> TransitOperator | None:
    query = select(TransitOperator).where(
        TransitOperator.region_id == region_id, TransitOperator.merchant_id == merchant_id
    )
    return (await session.execute(query)).scalar_one_or_none()


async def operators(session: AsyncSession, region_id: uuid.UUID) -> list[TransitOperator]:
    query = select(TransitOperator).where(TransitOperator.region_id == region_id).order_by(TransitOperator.id)
    return list((await session.execute(query)).scalars())


# --- fare products ------------------------------------------------------------------------------


async def insert_product(session: AsyncSession, **values: Any) -> FareProduct | None:
    """None if the operator has a product of that name already."""
    query = upsert(FareProduct).values(**values).on_conflict_do_nothing().returning(FareProduct)
    return (await session.execute(query)).scalar_one_or_none()


async def insert_fares(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    await session.execute(insert(Fare), list(rows))


async def product(session: AsyncSession, product_id: uuid.UUID) -> FareProduct | None:
    return await session.get(FareProduct, product_id)


async def products(
    session: AsyncSession, region_id: uuid.UUID, *, operator_id: uuid.UUID | None, status: str | None,
    after_id: uuid.UUID | None, limit: int,
) -> list[FareProduct]:
    query = select(FareProduct).where(FareProduct.region_id == region_id)
    if operator_id is not None:
        query = query.where(FareProduct.operator_id == operator_id)
    if status is not None:
        query = query.where(FareProduct.status == status)
    if after_id is not None:
        query = query.where(FareProduct.id < after_id)
    return list((await session.execute(query.order_by(FareProduct.id.desc()).limit(limit))).scalars())


async def fares(session: AsyncSession, product_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]:
    query = select(Fare.product_id, Fare.rider_category, Fare.amount).where(Fare.product_id.in_(product_ids))
    found: dict[uuid.UUID, dict[str, int]] = {product_id: {} for product_id in product_ids}
    for product_id, category, amount in await session.execute(query):
        found[product_id][category] = amount
    return found


async def retire_product(session: AsyncSession, product_id: uuid.UUID, at: datetime) -> FareProduct:
    query = (
        update(FareProduct).where(FareProduct.id == product_id)
        .values(status="retired", retired_at=func.coalesce(FareProduct.retired_at, at)).returning(FareProduct)
    )
    return (await session.execute(query)).scalar_one()


# --- tickets ------------------------------------------------------------------------------------


async def insert_ticket(session: AsyncSession, **values: Any) -> Ticket:
    return (await session.execute(insert(Ticket).values(**values).returning(Ticket))).scalar_one()


async def ticket(session: AsyncSession, ticket_id: uuid.UUID, *, lock: bool = False) -> Ticket | None:
    query = select(Ticket).where(Ticket.id == ticket_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def tickets(
    session: AsyncSession, region_id: uuid.UUID, resident: str, *, after_id: uuid.UUID | None, limit: int
) -> list[Ticket]:
    query = select(Ticket).where(Ticket.region_id == region_id, Ticket.resident == resident)
    if after_id is not None:
        query = query.where(Ticket.id < after_id)
    return list((await session.execute(query.order_by(Ticket.id.desc()).limit(limit))).scalars())


async def ticket_of_payment(
    session: AsyncSession, region_id: uuid.UUID, payment_id: uuid.UUID, *, lock: bool = False
) -> Ticket | None:
    """The ticket a payment bought, if it bought one."""
    query = select(Ticket).where(Ticket.region_id == region_id, Ticket.payment_id == payment_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def mark_refunded(session: AsyncSession, ticket_id: uuid.UUID, at: datetime) -> None:
    await session.execute(update(Ticket).where(Ticket.id == ticket_id).values(refunded_at=at))


async def record_ride(
    session: AsyncSession, ticket_id: uuid.UUID, *, activated_at: datetime, active_until: datetime | None
) -> Ticket:
    query = (
        update(Ticket).where(Ticket.id == ticket_id)
        .values(rides_taken=Ticket.rides_taken + 1, activated_at=activated_at, active_until=active_until)
        .returning(Ticket)
    )
    return (await session.execute(query)).scalar_one()


# --- validators ---------------------------------------------------------------------------------


async def insert_validator(session: AsyncSession, **values: Any) -> Validator:
    return (await session.execute(insert(Validator).values(**values).returning(Validator))).scalar_one()


async def validators(session: AsyncSession, operator_id: uuid.UUID) -> list[Validator]:
    query = select(Validator).where(Validator.operator_id == operator_id).order_by(Validator.id.desc())
    return list((await session.execute(query)).scalars())


async def validator(session: AsyncSession, validator_id: uuid.UUID) -> Validator | None:
    return await session.get(Validator, validator_id)


async def revoke_validator(session: AsyncSession, validator_id: uuid.UUID, at: datetime) -> Validator:
    query = (
        update(Validator).where(Validator.id == validator_id)
        .values(revoked_at=func.coalesce(Validator.revoked_at, at)).returning(Validator)
    )
    return (await session.execute(query)).scalar_one()


async def active_validator(session: AsyncSession, secret_hash: str) -> tuple[Validator, uuid.UUID] | None:
    """The unrevoked validator with this key hash, and its bus operator's merchant id."""
    query = (
        select(Validator, TransitOperator.merchant_id)
        .join(TransitOperator, TransitOperator.id == Validator.operator_id)
        .where(Validator.secret_hash == secret_hash, Validator.revoked_at.is_(None))
    )
    row = (await session.execute(query)).first()
    return (row[0], row[1]) if row else None


# --- scans --------------------------------------------------------------------------------------


async def scan(session: AsyncSession, region_id: uuid.UUID, validator_id: uuid.UUID, scan_id: uuid.UUID) -> Scan | None:
    query = select(Scan).where(Scan.region_id == region_id, Scan.validator_id == validator_id, Scan.scan_id == scan_id)
    return (await session.execute(query)).scalar_one_or_none()


async def insert_scan(session: AsyncSession, **values: Any) -> Scan | None:
    """None if a twin with the same scan id committed first (the insert waited for it)."""
    query = upsert(Scan).values(**values).on_conflict_do_nothing().returning(Scan)
    return (await session.execute(query)).scalar_one_or_none()


async def conflicts(
    session: AsyncSession, region_id: uuid.UUID, operator_id: uuid.UUID | None, *, after_id: uuid.UUID | None, limit: int
) -> list[Scan]:
    query = select(Scan).where(Scan.region_id == region_id, Scan.conflict.is_not(None))
    if operator_id is not None:
        query = query.where(Scan.operator_id == operator_id)
    if after_id is not None:
        query = query.where(Scan.id < after_id)
    return list((await session.execute(query.order_by(Scan.id.desc()).limit(limit))).scalars())


# --- counting -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductDay:
    day: date
    operator_id: uuid.UUID
    merchant_id: uuid.UUID
    product_id: uuid.UUID
    tickets_sold: int
    sales: int  # yen
    activations: int
    rides: int
    conflicts: int


def _tokyo_day(column: Any) -> Any:
    return func.date(func.timezone(str(TOKYO), column))


async def product_days(session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime) -> list[ProductDay]:
    """Per Tokyo day and product: tickets sold and their fares, activations, rides and conflicts."""
    sold_day = _tokyo_day(Ticket.purchased_at).label("day")
    sold = (
        select(sold_day, Ticket.product_id, func.count().label("tickets_sold"), func.sum(Ticket.fare).label("sales"))
        .where(Ticket.region_id == region_id, Ticket.purchased_at >= since, Ticket.purchased_at < until,
               Ticket.payment_id.is_not(None))  # bought: a ticket granted in a bundle is no sale
        .group_by(sold_day, Ticket.product_id)
    )
    ride_day = _tokyo_day(Scan.scanned_at).label("day")
    ridden = (
        select(
            ride_day, Scan.product_id,
            func.count().filter(Scan.outcome == ScanOutcome.ACTIVATION).label("activations"),
            func.count().label("rides"), func.count().filter(Scan.conflict.is_not(None)).label("conflicts"),
        )
        .where(Scan.region_id == region_id, Scan.scanned_at >= since, Scan.scanned_at < until)
        .group_by(ride_day, Scan.product_id)
    )
    totals: dict[tuple[date, uuid.UUID], list[int]] = {}
    for day, product_id, count, sales in await session.execute(sold):
        totals.setdefault((day, product_id), [0, 0, 0, 0, 0])[0:2] = [count, sales]
    for day, product_id, activations, rides, conflicted in await session.execute(ridden):
        totals.setdefault((day, product_id), [0, 0, 0, 0, 0])[2:5] = [activations, rides, conflicted]
    owner_rows = await session.execute(
        select(FareProduct.id, TransitOperator.id, TransitOperator.merchant_id)
        .join(TransitOperator, TransitOperator.id == FareProduct.operator_id)
        .where(FareProduct.id.in_({product_id for _, product_id in totals}))
    )
    owners = {product_id: (operator_id, merchant_id) for product_id, operator_id, merchant_id in owner_rows}
    return [
        ProductDay(day, *owners[product_id], product_id, *numbers)
        for (day, product_id), numbers in sorted(totals.items(), key=lambda item: (item[0][0], str(item[0][1])))
    ]


async def ticket_payment_ids(session: AsyncSession, region_id: uuid.UUID, payment_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Of these payments, those that bought a ticket."""
    query = select(Ticket.payment_id).where(Ticket.region_id == region_id, Ticket.payment_id.in_(payment_ids))
    return set((await session.execute(query)).scalars())


async def rides_of(
    session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime, residents: Sequence[str]
) -> list[tuple[str, datetime]]:
    """The rides (accepted scans, offline conflicts included: they happened) these residents took
    in [since, until), as (subject, when), in time order."""
    if not residents:
        return []
    query = (
        select(Ticket.resident, Scan.scanned_at)
        .join(Ticket, Ticket.id == Scan.ticket_id)
        .where(Scan.region_id == region_id, Scan.scanned_at >= since, Scan.scanned_at < until,
               Ticket.resident.in_(list(residents)))
        .order_by(Scan.scanned_at, Scan.id)
    )
    return [(subject, at) for subject, at in await session.execute(query)]
