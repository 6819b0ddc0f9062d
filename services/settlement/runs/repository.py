"""Every SQL query of settlement runs. The run's lines are inserted and summed by one statement,
set-wise, from the wallet's query of its statement lines (public.statement_lines_before): a
month of a region is millions of lines, none of which passes through Python on the way in."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Row, Select, Text, and_, case, cast, func, insert, literal, or_, select, text
from sqlalchemy.dialects.postgresql import aggregate_order_by, distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.settlement.runs.models import RunMerchant, SettledLine, SettlementRun

_LINE_COLUMNS = ("journal_id", "merchant_id", "unit", "kind", "amount", "fee", "net", "occurred_at", "payment_id",
                 "refund_id", "counterparty_merchant_id")


async def try_lock_region(session: AsyncSession, region_id: uuid.UUID) -> bool:
    """The region's run lock for this transaction, if no other transaction holds it."""
    return (await session.execute(
        text("SELECT pg_try_advisory_xact_lock(hashtextextended('settlement-run:' || :region, 0))"),
        {"region": str(region_id)},
    )).scalar_one()


async def run(session: AsyncSession, region_id: uuid.UUID, label: str) -> SettlementRun | None:
    return (await session.execute(
        select(SettlementRun).where(SettlementRun.region_id == region_id, SettlementRun.label == label)
    )).scalar_one_or_none()


async def runs(session: AsyncSession, region_id: uuid.UUID, *, before_id: uuid.UUID | None, limit: int
               ) -> list[SettlementRun]:
    query = select(SettlementRun).where(SettlementRun.region_id == region_id)
    if before_id is not None:
        query = query.where(SettlementRun.id < before_id)
    return list((await session.execute(query.order_by(SettlementRun.id.desc()).limit(limit))).scalars())


async def insert_run(session: AsyncSession, **values: Any) -> SettlementRun:
    return (await session.execute(insert(SettlementRun).values(**values).returning(SettlementRun))).scalar_one()


async def settle_lines(
    session: AsyncSession, *, run_id: uuid.UUID, region_id: uuid.UUID, period_start: datetime, lines: Select
) -> list[Row[Any]]:
    """Insert every line of `lines` that no run has settled, as the run's, and return per merchant
    the count and the sums a statement shows, over both units (1 point = 1 yen), and the point
    lines' net besides (`point_net`: what is to be redeemed). A line is an adjustment when it,
    or the payment a refund gives back, is dated before the period's start."""
    wallet = lines.subquery("w")
    adjustment = or_(wallet.c.occurred_at < period_start,
                     and_(wallet.c.payment_at.is_not(None), wallet.c.payment_at < period_start))
    source = select(
        literal(run_id).label("run_id"), literal(region_id).label("region_id"),
        *(wallet.c[name] for name in _LINE_COLUMNS), adjustment.label("adjustment"),
    )
    # A line some run settled is in the key already: the key itself leaves it out (no anti-join,
    # whose plan over a table that starts empty would rescan it for every row inserted).
    inserted = pg_insert(SettledLine).from_select(
        ["run_id", "region_id", *_LINE_COLUMNS, "adjustment"], source
    ).on_conflict_do_nothing(
        index_elements=[SettledLine.journal_id, SettledLine.merchant_id, SettledLine.unit]
    ).returning(SettledLine.merchant_id, SettledLine.unit, SettledLine.kind, SettledLine.amount, SettledLine.fee,
                SettledLine.net, SettledLine.adjustment).cte("inserted")

    def whole(total: Any) -> Any:  # sum(bigint) is numeric: yen stay integers
        return cast(func.coalesce(total, 0), BigInteger)

    def total(*kinds: str) -> Any:
        return whole(func.sum(inserted.c.amount).filter(inserted.c.kind.in_(kinds)))

    query = select(
        inserted.c.merchant_id, func.count().label("lines"), total("payment").label("payments"),
        total("refund").label("refunds"), total("sponsor_credit", "sponsor_reversal", "sponsor_payment").label("sponsored"),
        whole(func.sum(inserted.c.fee)).label("fees"), total("transfer_in").label("transfers_in"),
        total("transfer_out").label("transfers_out"), total("payout", "payout_fee").label("other_payouts"),
        whole(func.sum(inserted.c.net).filter(inserted.c.adjustment)).label("adjustments"),
        whole(func.sum(inserted.c.net)).label("net"),
        whole(func.sum(inserted.c.net).filter(inserted.c.unit == "point")).label("point_net"),
    ).group_by(inserted.c.merchant_id)
    return list((await session.execute(query)).all())


async def carried_in(session: AsyncSession, region_id: uuid.UUID, merchant_ids: Sequence[uuid.UUID]
                     ) -> dict[uuid.UUID, tuple[int, int]]:
    """Each merchant's carry_out and point_carry_out of its latest run (merchants never settled
    are left out)."""
    query = (
        select(RunMerchant.merchant_id, RunMerchant.carry_out, RunMerchant.point_carry_out)
        .join(SettlementRun, SettlementRun.id == RunMerchant.run_id)
        .where(RunMerchant.region_id == region_id, RunMerchant.merchant_id.in_(list(merchant_ids)))
        .order_by(RunMerchant.merchant_id, SettlementRun.run_at.desc(), SettlementRun.id.desc())
        .ext(distinct_on(RunMerchant.merchant_id))
    )
    return {m: (c, p) for m, c, p in (await session.execute(query)).all()}


async def insert_lines(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(SettledLine), rows)


async def insert_merchants(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(RunMerchant), rows)


async def run_merchants(session: AsyncSession, run_id: uuid.UUID, merchant_id: uuid.UUID | None = None
                        ) -> list[RunMerchant]:
    query = select(RunMerchant).where(RunMerchant.run_id == run_id)
    if merchant_id is not None:
        query = query.where(RunMerchant.merchant_id == merchant_id)
    return list((await session.execute(query.order_by(RunMerchant.merchant_id))).scalars())


def _text(column: Any) -> Any:
    return func.coalesce(cast(column, Text), "")


def _local_time(column: Any) -> Any:
    return func.to_char(func.timezone("Asia/Tokyo", column), "YYYY-MM-DD HH24:MI:SS")


def _of_run(query: Select, region_id: uuid.UUID, run_id: uuid.UUID, merchant_id: uuid.UUID | None) -> Select:
    query = query.where(SettledLine.region_id == region_id, SettledLine.run_id == run_id)
    return query if merchant_id is None else query.where(SettledLine.merchant_id == merchant_id)


# A line's order in its statement: time, then journal (and unit, the rest of the key).
_LINE_ORDER = (SettledLine.occurred_at, SettledLine.journal_id, SettledLine.unit)
_DAY_PAYMENT = and_(SettledLine.kind == "payment", SettledLine.adjustment.is_(False))


async def line_texts(session: AsyncSession, region_id: uuid.UUID, run_id: uuid.UUID, kinds: dict[str, str],
                     adjustment: str, point: str, merchant_id: uuid.UUID | None = None
                     ) -> AsyncIterator[tuple[uuid.UUID, str]]:
    """Per merchant, by merchant id, its statement lines as CSV rows written by the database (a
    month is millions of lines): time (Tokyo), kind (`kinds` labels, `point` after it on a line
    in points), amount, fee, net, payment,
    refund, journal and counterparty ids, `adjustment` or nothing; by time and journal, joined
    by CRLF. No field holds a comma, a quote or a line break, so none is quoted (as csv.writer)."""
    label = func.concat(
        case(*((SettledLine.kind == kind, literal(text_)) for kind, text_ in kinds.items()), else_=SettledLine.kind),
        case((SettledLine.unit == "point", literal(point)), else_=literal("")),
    )
    row = func.concat_ws(
        ",", _local_time(SettledLine.occurred_at), label, cast(SettledLine.amount, Text),
        cast(SettledLine.fee, Text), cast(SettledLine.net, Text), _text(SettledLine.payment_id),
        _text(SettledLine.refund_id), _text(SettledLine.journal_id), _text(SettledLine.counterparty_merchant_id),
        case((SettledLine.adjustment, literal(adjustment)), else_=literal("")),
    )
    joined = func.string_agg(row, aggregate_order_by(literal("\r\n"), *_LINE_ORDER))
    query = _of_run(select(SettledLine.merchant_id, joined), region_id, run_id, merchant_id)
    result = await session.stream(query.group_by(SettledLine.merchant_id).order_by(SettledLine.merchant_id),
                                  execution_options={"yield_per": 20})
    async for merchant, rows in result:
        yield merchant, rows


async def payment_days(session: AsyncSession, region_id: uuid.UUID, run_id: uuid.UUID,
                       merchant_id: uuid.UUID | None = None) -> AsyncIterator[Row[Any]]:
    """Per merchant and Tokyo date (YYYY-MM-DD), by both, its payments of the period (not
    adjustments): how many, their amount and fees, in both units (1 point = 1 yen). A payment
    partly in points has a line in each unit and counts once: a point line counts only when its
    payment has no yen line (a lookup by the key, for the point lines alone)."""
    day = func.to_char(func.timezone("Asia/Tokyo", SettledLine.occurred_at), "YYYY-MM-DD").label("day")
    yen_line = aliased(SettledLine)
    has_yen = select(literal(1)).where(yen_line.journal_id == SettledLine.journal_id,
                                       yen_line.merchant_id == SettledLine.merchant_id, yen_line.unit == "yen").exists()
    counted = case((SettledLine.unit == "yen", 1), (~has_yen, 1), else_=0)
    query = _of_run(select(SettledLine.merchant_id, day, cast(func.sum(counted), BigInteger).label("count"),
                           cast(func.sum(SettledLine.amount), BigInteger).label("amount"),
                           cast(func.sum(SettledLine.fee), BigInteger).label("fee")).where(_DAY_PAYMENT),
                    region_id, run_id, merchant_id)
    result = await session.stream(query.group_by(SettledLine.merchant_id, day).order_by(SettledLine.merchant_id, day),
                                  execution_options={"yield_per": 10_000})
    async for row in result:
        yield row


async def other_lines(session: AsyncSession, region_id: uuid.UUID, run_id: uuid.UUID,
                      merchant_id: uuid.UUID | None = None) -> AsyncIterator[Row[Any]]:
    """The run's lines that are not a payment of the period, by merchant, time and journal: the
    time as a Tokyo wall clock, the journal id as text, and the unit."""
    query = _of_run(select(SettledLine.merchant_id, _local_time(SettledLine.occurred_at).label("local_time"),
                           SettledLine.kind, SettledLine.amount, SettledLine.fee,
                           _text(SettledLine.journal_id).label("journal_id"), SettledLine.adjustment,
                           SettledLine.unit).where(~_DAY_PAYMENT), region_id, run_id, merchant_id)
    result = await session.stream(query.order_by(SettledLine.merchant_id, *_LINE_ORDER),
                                  execution_options={"yield_per": 10_000})
    async for row in result:
        yield row
