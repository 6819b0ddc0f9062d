"""Every SQL query of paying at the shop."""


from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Row,
    Select,
    SmallInteger,
    Text,
    and_,
    any_,
    bindparam,
    case,
    column,
    func,
    insert,
    select,
    table,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.directory.models import Merchant, Resident
from services.wallet.ledger import repository as ledger_repo
from services.wallet.ledger.models import Account, Lot
from services.wallet.payments.models import (
    FeePlan,
    Payment,
    PaymentDiscount,
    PaymentLot,
    PaymentRequest,
    Refund,
    ResidentCard,
    Sponsor,
    Store,
)

# --- stores -----------------------------------------------------------------------------------


async def insert_store(session: AsyncSession, **values: Any) -> Store | None:
    """The new store; None if the merchant already has one of that name."""
    query = pg_insert(Store).values(**values).on_conflict_do_nothing().returning(Store)
    return (await session.execute(query)).scalar_one_or_none()


async def store_with_merchant(session: AsyncSession, store_id: uuid.UUID) -> tuple[Store, Merchant] | None:
    query = select(Store, Merchant).join(Merchant, Merchant.id == Store.merchant_id).where(Store.id == store_id)
    row = (await session.execute(query)).first()
    return (row[0], row[1]) if row else None


@dataclass(frozen=True)
class StoreCode:
    """What a store's QR code is made of."""

    store_id: uuid.UUID
    region_id: uuid.UUID
    merchant_id: uuid.UUID
    mcc: str
    merchant_name: str  # romanised, EMVCo 59
    merchant_name_ja: str
    name_ja: str  # the store's, EMVCo 64/01
    terminal_label: str | None


# Built once and read as plain columns: every payment by QR reads it (no ORM objects on the path).
_STORE_CODE = (
    select(Store.id, Store.region_id, Store.merchant_id, Merchant.mcc, Merchant.name, Merchant.name_ja, Store.name_ja,
           Store.terminal_label)
    .join(Merchant, Merchant.id == Store.merchant_id)
    .where(Store.id == bindparam("store_id"))
)


async def store_code(session: AsyncSession, store_id: uuid.UUID) -> StoreCode | None:
    row = (await session.execute(_STORE_CODE, {"store_id": store_id})).first()
    return StoreCode(*row) if row else None


async def stores(session: AsyncSession, merchant_id: uuid.UUID) -> list[Store]:
    query = select(Store).where(Store.merchant_id == merchant_id).order_by(Store.id)
    return list((await session.execute(query)).scalars())


async def stores_with_merchants(
    session: AsyncSession, region_id: uuid.UUID, store_ids: list[uuid.UUID]
) -> list[tuple[Store, Merchant]]:
    query = (
        select(Store, Merchant).join(Merchant, Merchant.id == Store.merchant_id)
        .where(Store.region_id == region_id, Store.id.in_(store_ids)).order_by(Store.id)
    )
    return [(row[0], row[1]) for row in await session.execute(query)]


async def store_by_name(session: AsyncSession, merchant_id: uuid.UUID, name: str) -> Store | None:
    query = select(Store).where(Store.merchant_id == merchant_id, Store.name == name)
    return (await session.execute(query)).scalar_one_or_none()


# --- who paid ---------------------------------------------------------------------------------


async def payers(
    session: AsyncSession, region_id: uuid.UUID, *, since: datetime, until: datetime, among: Sequence[str],
    sectors: Sequence[str] | None,
) -> list[str]:
    """Subjects of `among` who paid in [since, until), at merchants of `sectors` if given; a
    payment refunded in full is as if it had not been made."""
    query = (
        select(Resident.subject).distinct()
        .join(Account, Account.resident_id == Resident.id)
        .join(Payment, Payment.resident_account_id == Account.id)
        .where(
            Resident.region_id == region_id,
            Resident.subject == any_(bindparam("among", list(among), type_=ARRAY(Text))),
            Payment.region_id == region_id, Payment.created_at >= since, Payment.created_at < until,
            Payment.refunded_amount < Payment.amount,
        )
    )
    if sectors is not None:
        query = query.join(Merchant, Merchant.id == Payment.merchant_id).where(
            Merchant.sector == any_(bindparam("sectors", list(sectors), type_=ARRAY(Text)))
        )
    return list((await session.execute(query.order_by(Resident.subject))).scalars())


# --- fee plans --------------------------------------------------------------------------------


async def insert_fee_plan(session: AsyncSession, **values: Any) -> FeePlan:
    return (await session.execute(insert(FeePlan).values(**values).returning(FeePlan))).scalar_one()


async def fee_plans(session: AsyncSession, region_id: uuid.UUID, merchant_id: uuid.UUID | None) -> list[FeePlan]:
    condition = FeePlan.merchant_id.is_(None) if merchant_id is None else FeePlan.merchant_id == merchant_id
    query = select(FeePlan).where(FeePlan.region_id == region_id, condition).order_by(FeePlan.effective_from.desc())
    return list((await session.execute(query)).scalars())


@dataclass(frozen=True)
class Charged:
    """A fee charged, with the plan it was charged under (its id and rate are kept with the charge)."""

    fee: int
    plan_id: uuid.UUID
    rate_bp: int


_CHARGE_FEE = text(
    "SELECT fee, plan_id, rate_bp FROM wallet.charge_fee(:region_id, :merchant_id, :kind, :amount, :at, :fiscal_year)"
).bindparams(
    bindparam("region_id", type_=UUID), bindparam("merchant_id", type_=UUID), bindparam("kind", type_=Text),
    bindparam("amount", type_=BigInteger), bindparam("at", type_=DateTime(timezone=True)),
    bindparam("fiscal_year", type_=SmallInteger),
)


async def charge_fee(
    session: AsyncSession, region_id: uuid.UUID, merchant_id: uuid.UUID, kind: str, amount: int, at: datetime,
    fiscal_year: int,
) -> Charged:
    """The fee `merchant_id` pays on `amount` it receives at `at`, by the rule payments use too
    (wallet.charge_fee, services/wallet/payments/sql/charge_fee.sql): the plan in force, its
    rounding, and under a capped plan the merchant's fiscal-year total, locked and raised."""
    row = (await session.execute(_CHARGE_FEE, {
        "region_id": region_id, "merchant_id": merchant_id, "kind": kind, "amount": amount, "at": at,
        "fiscal_year": fiscal_year,
    })).one()
    return Charged(row.fee, row.plan_id, row.rate_bp)


_RETURN_FEE = text("SELECT wallet.return_fee(:payment_id, :fee)").bindparams(
    bindparam("payment_id", type_=UUID), bindparam("fee", type_=BigInteger)
)


async def return_fee(session: AsyncSession, payment_id: uuid.UUID, fee: int) -> None:
    """Give what a refund returns of the payment's fee back to its merchant's fiscal-year total
    (wallet.return_fee, services/wallet/payments/sql/return_fee.sql)."""
    await session.execute(_RETURN_FEE, {"payment_id": payment_id, "fee": fee})


# --- payments and refunds -----------------------------------------------------------------------


async def insert_payment(session: AsyncSession, **values: Any) -> Payment:
    return (await session.execute(insert(Payment).values(**values).returning(Payment))).scalar_one()


async def payment(session: AsyncSession, payment_id: uuid.UUID, *, lock: bool = False) -> Payment | None:
    query = select(Payment).where(Payment.id == payment_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def set_reward_points(session: AsyncSession, payment_id: uuid.UUID, points: int) -> None:
    await session.execute(update(Payment).where(Payment.id == payment_id).values(reward_points=points))


async def record_refund(
    session: AsyncSession, payment_id: uuid.UUID, added: dict[str, int], refund: dict[str, Any]
) -> Payment:
    """Insert the refund and add `added` to the payment's running totals of the same names."""
    await session.execute(insert(Refund).values(**refund))
    result = await session.execute(
        update(Payment)
        .where(Payment.id == payment_id)
        .values({getattr(Payment, name): getattr(Payment, name) + value for name, value in added.items()})
        .returning(Payment)
    )
    return result.scalar_one()


async def payment_lots(session: AsyncSession, payment_id: uuid.UUID) -> list[tuple[PaymentLot, Lot]]:
    """The lots a payment took, the last taken first (the order a refund restores them in)."""
    query = (
        select(PaymentLot, Lot).join(Lot, Lot.id == PaymentLot.lot_id)
        .where(PaymentLot.payment_id == payment_id).order_by(PaymentLot.seq.desc())
    )
    return [(r[0], r[1]) for r in await session.execute(query)]


async def mark_lot_restored(session: AsyncSession, payment_id: uuid.UUID, seq: int, amount: int) -> None:
    await session.execute(
        update(PaymentLot).where(PaymentLot.payment_id == payment_id, PaymentLot.seq == seq)
        .values(restored=PaymentLot.restored + amount)
    )


async def refunds(session: AsyncSession, payment_id: uuid.UUID) -> list[Refund]:
    query = select(Refund).where(Refund.payment_id == payment_id).order_by(Refund.id)
    return list((await session.execute(query)).scalars())


async def merchant_payments(
    session: AsyncSession,
    merchant_id: uuid.UUID,
    *,
    after_id: uuid.UUID | None,
    limit: int,
    since: datetime | None = None,
    until: datetime | None = None,
    store_id: uuid.UUID | None = None,
    newest_first: bool = True,
) -> list[Payment]:
    conditions = [Payment.merchant_id == merchant_id]
    if since is not None:
        conditions.append(Payment.created_at >= since)
    if until is not None:
        conditions.append(Payment.created_at < until)
    if store_id is not None:
        conditions.append(Payment.store_id == store_id)
    if after_id is not None:
        conditions.append(Payment.id < after_id if newest_first else Payment.id > after_id)
    order = Payment.id.desc() if newest_first else Payment.id.asc()
    query = select(Payment).where(and_(*conditions)).order_by(order).limit(limit)
    return list((await session.execute(query)).scalars())


# --- discounts and sponsors ---------------------------------------------------------------------


async def payment_discount(session: AsyncSession, payment_id: uuid.UUID) -> PaymentDiscount | None:
    query = select(PaymentDiscount).where(PaymentDiscount.payment_id == payment_id)
    return (await session.execute(query.execution_options(populate_existing=True))).scalar_one_or_none()


async def add_discount_reversed(session: AsyncSession, payment_id: uuid.UUID, amount: int) -> None:
    await session.execute(
        update(PaymentDiscount).where(PaymentDiscount.payment_id == payment_id)
        .values(reversed=PaymentDiscount.reversed + amount)
    )


async def insert_sponsor(session: AsyncSession, **values: Any) -> Sponsor | None:
    """The new sponsor; None if the region already has one of that name."""
    query = pg_insert(Sponsor).values(**values).on_conflict_do_nothing().returning(Sponsor)
    return (await session.execute(query)).scalar_one_or_none()


async def sponsor_with_budget(session: AsyncSession, sponsor_id: uuid.UUID) -> tuple[Sponsor, Account] | None:
    query = select(Sponsor, Account).join(Account, Account.sponsor_id == Sponsor.id).where(Sponsor.id == sponsor_id)
    row = (await session.execute(query.execution_options(populate_existing=True))).first()
    return (row[0], row[1]) if row else None


async def sponsor_budget(session: AsyncSession, sponsor_id: uuid.UUID) -> Account:
    return (await session.execute(select(Account).where(Account.sponsor_id == sponsor_id))).scalar_one()


# --- merchants' statement lines -------------------------------------------------------------------

_STATEMENT_LINES = text(
    "SELECT journal_id, region_id, merchant_id, unit, kind, amount, fee, net, occurred_at, payment_id, refund_id,"
    " counterparty_merchant_id FROM wallet.statement_lines"
    " WHERE region_id = :region_id AND occurred_at >= :since AND occurred_at < :until"
    " AND (CAST(:merchant_id AS uuid) IS NULL OR merchant_id = CAST(:merchant_id AS uuid))"
    " ORDER BY merchant_id, occurred_at, journal_id, unit"
).bindparams(
    bindparam("region_id", type_=UUID), bindparam("merchant_id", type_=UUID),
    bindparam("since", type_=DateTime(timezone=True)), bindparam("until", type_=DateTime(timezone=True)),
)


async def statement_lines(
    session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime, merchant_id: uuid.UUID | None
) -> AsyncIterator[Row[Any]]:
    """The lines of wallet.statement_lines (payments/sql/statement_lines.sql) in [since, until),
    streamed (a month of a region can be millions of lines)."""
    result = await session.stream(
        _STATEMENT_LINES, {"region_id": region_id, "merchant_id": merchant_id, "since": since, "until": until}
    )
    async for row in result:
        yield row


_LINES = table(
    "statement_lines", column("journal_id"), column("region_id"), column("merchant_id"), column("unit"),
    column("kind"), column("amount"), column("fee"), column("net"), column("occurred_at"), column("payment_id"),
    column("refund_id"), column("counterparty_merchant_id"), schema="wallet",
)


def statement_lines_before(region_id: uuid.UUID, until: datetime, units: Sequence[str],
                           merchant_ids: Sequence[uuid.UUID]) -> Select:
    """wallet.statement_lines of `merchant_ids` in `units` before `until`, as a query for a
    caller to read set-wise (settlement inserts from it), with `payment_at`: a refund's (or a
    sponsor's reversal's) payment's time, NULL on every other line."""
    paid_at = select(Payment.created_at).where(Payment.id == _LINES.c.payment_id).scalar_subquery()
    return select(
        _LINES.c.journal_id, _LINES.c.merchant_id, _LINES.c.unit, _LINES.c.kind, _LINES.c.amount, _LINES.c.fee,
        _LINES.c.net, _LINES.c.occurred_at, _LINES.c.payment_id, _LINES.c.refund_id,
        _LINES.c.counterparty_merchant_id,
        case((_LINES.c.refund_id.is_not(None), paid_at)).label("payment_at"),
    ).where(
        _LINES.c.region_id == region_id, _LINES.c.occurred_at < until,
        _LINES.c.unit.in_(list(units)) if len(units) > 1 else _LINES.c.unit == units[0],
        _LINES.c.merchant_id == any_(bindparam("merchant_ids", list(merchant_ids), type_=ARRAY(UUID))),
    )


async def payout_by_reference(session: AsyncSession, region_id: uuid.UUID, reference: str) -> list[Row[Any]]:
    """A keyed payout's journals (the payout and its fee, if any) by their reference (a partial
    index holds these kinds only), each with the merchant and the yen it took."""
    return list((await session.execute(text(
        "SELECT j.id AS journal_id, j.kind, a.merchant_id, -e.amount AS amount, j.created_at"
        "  FROM wallet.journals j JOIN wallet.entries e ON e.journal_id = j.id"
        "  JOIN wallet.accounts a ON a.id = e.account_id AND a.kind = 'merchant'"
        " WHERE j.region_id = :region_id AND j.kind IN ('payout', 'payout_fee') AND j.reference = :reference"
    ).bindparams(bindparam("region_id", type_=UUID)), {"region_id": region_id, "reference": reference})).all())


async def redemption_by_reference(session: AsyncSession, region_id: uuid.UUID, reference: str) -> Row[Any] | None:
    """A keyed point redemption (a partial index holds that kind only): its merchant, the points
    it retired and when."""
    return (await session.execute(text(
        "SELECT j.id AS journal_id, a.merchant_id, -e.amount AS amount, j.created_at"
        "  FROM wallet.journals j JOIN wallet.entries e ON e.journal_id = j.id"
        "  JOIN wallet.accounts a ON a.id = e.account_id AND a.kind = 'merchant' AND a.unit = 'point'"
        " WHERE j.region_id = :region_id AND j.kind = 'point_redemption' AND j.reference = :reference"
    ).bindparams(bindparam("region_id", type_=UUID)), {"region_id": region_id, "reference": reference})).first()


# --- dynamic payment requests -------------------------------------------------------------------


async def insert_payment_request(session: AsyncSession, **values: Any) -> PaymentRequest:
    return (await session.execute(insert(PaymentRequest).values(**values).returning(PaymentRequest))).scalar_one()


async def payment_request(session: AsyncSession, request_id: uuid.UUID) -> PaymentRequest | None:
    return (await session.execute(select(PaymentRequest).where(PaymentRequest.id == request_id))).scalar_one_or_none()


async def claim_payment_request(session: AsyncSession, request_id: uuid.UUID, now: datetime) -> bool:
    """Single use: only one payment can move an open, unexpired request to paid."""
    result = await session.execute(
        update(PaymentRequest)
        .where(PaymentRequest.id == request_id, PaymentRequest.status == "open", PaymentRequest.expires_at > now)
        .values(status="paid")
        .returning(PaymentRequest.id)
    )
    return result.scalar_one_or_none() is not None


async def link_payment_request(session: AsyncSession, request_id: uuid.UUID, payment_id: uuid.UUID) -> None:
    await session.execute(
        update(PaymentRequest).where(PaymentRequest.id == request_id).values(payment_id=payment_id)
    )


async def cancel_payment_request(session: AsyncSession, request_id: uuid.UUID) -> PaymentRequest | None:
    result = await session.execute(
        update(PaymentRequest)
        .where(PaymentRequest.id == request_id, PaymentRequest.status == "open")
        .values(status="cancelled")
        .returning(PaymentRequest)
    )
    return result.scalar_one_or_none()


# --- resident cards ---------------------------------------------------------------------------


async def insert_card(session: AsyncSession, **values: Any) -> ResidentCard:
    return (await session.execute(insert(ResidentCard).values(**values).returning(ResidentCard))).scalar_one()


async def card(session: AsyncSession, card_id: uuid.UUID) -> ResidentCard | None:
    return await session.get(ResidentCard, card_id)


async def card_by_code(
    session: AsyncSession, region_id: uuid.UUID, code: str, *, lock: bool = False
) -> ResidentCard | None:
    """The card; with `lock`, its row held until commit (one PIN check or payment at a time)."""
    query = select(ResidentCard).where(ResidentCard.region_id == region_id, ResidentCard.code == code)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def retire_cards(session: AsyncSession, account_id: uuid.UUID, status: str) -> None:
    """Kill every usable card of a wallet (a new one replaces them, or they were lost)."""
    await session.execute(
        update(ResidentCard)
        .where(ResidentCard.account_id == account_id, ResidentCard.status.in_(("active", "locked")))
        .values(status=status)
    )


async def set_card_status(session: AsyncSession, card_id: uuid.UUID, status: str) -> ResidentCard:
    result = await session.execute(
        update(ResidentCard).where(ResidentCard.id == card_id).values(status=status).returning(ResidentCard)
    )
    return result.scalar_one()


async def count_wrong_pin(session: AsyncSession, card_id: uuid.UUID, lock_at: int) -> ResidentCard:
    result = await session.execute(
        update(ResidentCard)
        .where(ResidentCard.id == card_id)
        .values(
            failed_pins=ResidentCard.failed_pins + 1,
            status=case((ResidentCard.failed_pins + 1 >= lock_at, "locked"), else_=ResidentCard.status),
        )
        .returning(ResidentCard)
    )
    return result.scalar_one()


async def reset_wrong_pins(session: AsyncSession, card_id: uuid.UUID) -> None:
    """A right PIN clears the count of wrong ones."""
    await session.execute(update(ResidentCard).where(ResidentCard.id == card_id).values(failed_pins=0))


async def card_spent_since(session: AsyncSession, card_id: uuid.UUID, since: datetime) -> int:
    query = select(func.coalesce(func.sum(Payment.amount - Payment.refunded_amount), 0)).where(
        Payment.card_id == card_id, Payment.created_at >= since
    )
    return int((await session.execute(query)).scalar_one())






# What a payment's row says it moved must be what its journals moved, and its refunds must follow
# the documented rules (services/wallet/payments/service.py: fee back pro rata on the running
# totals; campaigns/rewards.py: the refunded share of the reward taken back). Sums per journal and
# account class, so that one query checks every payment.
_PAYMENT_MOVES = """
    SELECT e.journal_id,
           sum(e.amount) FILTER (WHERE a.kind = 'resident')::bigint AS resident,
           sum(e.amount) FILTER (WHERE a.kind = 'resident' AND e.unit = 'point')::bigint AS resident_point,
           sum(e.amount) FILTER (WHERE a.kind = 'expired')::bigint AS expired,
           sum(e.amount) FILTER (WHERE a.kind = 'merchant')::bigint AS merchant,
           sum(e.amount) FILTER (WHERE a.kind = 'fee_income')::bigint AS fee,
           sum(e.amount) FILTER (WHERE a.kind = 'fee_income' AND e.unit = 'point')::bigint AS fee_point
    FROM wallet.entries e JOIN wallet.accounts a ON a.id = e.account_id
    WHERE e.journal_id IN (SELECT journal_id FROM wallet.payments UNION ALL SELECT journal_id FROM wallet.refunds)
    GROUP BY e.journal_id
"""


async def find_violations(session: AsyncSession, region_id: uuid.UUID | None = None) -> list[ledger_repo.Violation]:
    """Each payment's record against its journals (`ledger verify`'s "payments" checks)."""
    rows = ledger_repo.violation_rows(session, region_id)
    found: list[ledger_repo.Violation] = []
    # The payment's journal: the resident paid `amount` (`point_amount` of it in points), the
    # merchant got it less the fee, fee income the fee (`fee_point` of it in points).
    for payment_id, amount, point_amount, fee, fee_point, *m in await rows(
        "SELECT p.id, p.amount, p.point_amount, p.fee, p.fee_point, m.* FROM wallet.payments p "
        f"JOIN ({_PAYMENT_MOVES}) m ON m.journal_id = p.journal_id WHERE true {{region}} "
        "AND (m.resident IS DISTINCT FROM -p.amount OR coalesce(m.resident_point, 0) <> -p.point_amount "
        "OR m.merchant IS DISTINCT FROM p.amount - p.fee OR coalesce(m.fee, 0) <> p.fee "
        "OR coalesce(m.fee_point, 0) <> p.fee_point)",
        "p",
    ):
        found.append(ledger_repo.Violation(
            "payments", f"payment {payment_id}",
            f"its journal moved resident {m[1]} ({m[2]} in points), merchant {m[4]}, fee {m[5]} ({m[6]} in points); "
            f"the payment says {amount} ({point_amount} in points) with fee {fee} ({fee_point} in points)",
        ))
    # Each refund's journal: back to the wallet (or to expiry) `amount`, `fee_returned` from fee
    # income, the rest from the merchant.
    for refund_id, payment_id, amount, fee_returned, *m in await rows(
        "SELECT r.id, r.payment_id, r.amount, r.fee_returned, m.* FROM wallet.refunds r "
        f"JOIN ({_PAYMENT_MOVES}) m ON m.journal_id = r.journal_id WHERE true {{region}} "
        "AND (coalesce(m.resident, 0) + coalesce(m.expired, 0) <> r.amount "
        "OR coalesce(m.fee, 0) <> -r.fee_returned OR coalesce(m.fee_point, 0) <> -r.fee_returned_point "
        "OR coalesce(m.merchant, 0) <> -(r.amount - r.fee_returned))",
        "r",
    ):
        found.append(ledger_repo.Violation(
            "payments", f"payment {payment_id}",
            f"refund {refund_id} of {amount} with fee {fee_returned} back: its journal moved resident {m[1]}, "
            f"expired {m[3]}, merchant {m[4]}, fee {m[5]}",
        ))
    # The running totals on the payment are the sums of its refunds.
    for payment_id, *totals in await rows(
        "SELECT p.id, p.refunded_amount, r.amount, p.fee_returned, r.fee_returned, p.refunded_point, r.point_amount,"
        " p.fee_returned_point, r.fee_returned_point FROM wallet.payments p "
        "JOIN (SELECT payment_id, sum(amount)::bigint AS amount, sum(fee_returned)::bigint AS fee_returned,"
        "      sum(point_amount)::bigint AS point_amount, sum(fee_returned_point)::bigint AS fee_returned_point"
        "      FROM wallet.refunds GROUP BY payment_id) r ON r.payment_id = p.id "
        "WHERE (p.refunded_amount, p.fee_returned, p.refunded_point, p.fee_returned_point)"
        " <> (r.amount, r.fee_returned, r.point_amount, r.fee_returned_point) {region}",
        "p",
    ):
        found.append(ledger_repo.Violation(
            "payments", f"payment {payment_id}",
            "refunded/fee returned/points refunded/point fee returned are {0}/{2}/{4}/{6}, its refunds sum to "
            "{1}/{3}/{5}/{7}".format(*totals),
        ))
    # The fee returned so far is the fee's share of what was refunded, per unit, rounded down.
    for payment_id, returned_yen, due_yen, returned_point, due_point in await rows(
        "SELECT id, yen, due_yen, point, due_point FROM ("
        "  SELECT p.id, p.region_id, p.fee_returned - p.fee_returned_point AS yen,"
        "    CASE WHEN p.amount > p.point_amount THEN (p.fee - p.fee_point) * (p.refunded_amount - p.refunded_point)"
        "      / (p.amount - p.point_amount) ELSE 0 END AS due_yen,"
        "    p.fee_returned_point AS point,"
        "    CASE WHEN p.point_amount > 0 THEN p.fee_point * p.refunded_point / p.point_amount ELSE 0 END AS due_point"
        "  FROM wallet.payments p WHERE p.refunded_amount > 0) f "
        "WHERE (yen, point) <> (due_yen, due_point) {region}",
        "f",
    ):
        found.append(ledger_repo.Violation(
            "payments", f"payment {payment_id}",
            f"fee returned {returned_yen} yen and {returned_point} points; the refunds so far make it "
            f"{due_yen} yen and {due_point} points",
        ))
    # Rewards: the payment's reward is what its campaigns paid less what refunds took back, and the
    # budget moved exactly that; never more taken back than the refunded share of the reward's base,
    # and all of that share when the reward's lot was never spent nor expired (it was there to take).
    # A base of the whole amount is refunded as the payment is; a coin base (less than the amount)
    # as its coin is, read from what the refunds gave back in points.
    for payment_id, campaign_id, points, clawed, due, budget_moved, spent, total in await rows(
        "SELECT p.id, r.campaign_id, r.points, r.clawed_back,"
        " r.points * CASE WHEN r.base = p.amount THEN p.refunded_amount"
        "   ELSE p.refunded_amount - p.refunded_point END / r.base,"
        " coalesce((SELECT sum(e.amount) FROM wallet.entries e JOIN wallet.journals j ON j.id = e.journal_id"
        "   JOIN wallet.accounts b ON b.id = e.account_id WHERE j.kind = 'reward' AND j.reference = p.id::text"
        "   AND b.campaign_id = r.campaign_id AND b.kind = 'campaign_budget'), 0)::bigint,"
        " EXISTS (SELECT 1 FROM wallet.payment_lots pl WHERE pl.lot_id = r.lot_id) OR l.expired > 0,"
        " (SELECT sum(points - clawed_back) FROM wallet.payment_rewards WHERE payment_id = p.id)::bigint <> p.reward_points"
        " FROM wallet.payment_rewards r JOIN wallet.payments p ON p.id = r.payment_id"
        " JOIN wallet.lots l ON l.id = r.lot_id WHERE true {region}",
        "p",
    ):
        if total:
            found.append(ledger_repo.Violation("payments", f"payment {payment_id}", "its reward_points differ from its rewards"))
        if budget_moved != -(points - clawed):
            found.append(ledger_repo.Violation(
                "payments", f"payment {payment_id}",
                f"campaign {campaign_id} rewarded {points} and took back {clawed}, but its budget moved {budget_moved}",
            ))
        if clawed > due or (clawed < due and not spent):
            found.append(ledger_repo.Violation(
                "payments", f"payment {payment_id}",
                f"campaign {campaign_id}: {clawed} of the reward taken back; the refunded share is {due}",
            ))
    found += await _discount_violations(rows)
    found += await _statement_violations(rows)
    return found


async def _discount_violations(rows: ledger_repo.Rows) -> list[ledger_repo.Violation]:
    """A discount's record against its payment and journals (payments/discounts.py): the price
    is what was paid plus the discount; a sponsor's credit moved the discount from its budget to
    the payment's shop; refunds gave back floor(discount × refunded / amount), each by a journal
    that moved its share from the shop to that budget."""
    found: list[ledger_repo.Violation] = []
    for payment_id, shop, price, amount, discount, credited, reversed_, due, given_back, moved_back in await rows(
        "SELECT payment_id, shop, price, amount, discount, credited, reversed, due, given_back, moved_back FROM ("
        "  SELECT d.payment_id, d.region_id, d.sponsor_id, d.merchant_id = p.merchant_id AS shop, d.price, p.amount,"
        "    d.discount, d.reversed,"
        # the credit journal's entries that are right: the discount out of the sponsor's budget,
        # into the payment's shop in yen (two, and nothing else in that journal)
        "    (SELECT count(*) FILTER (WHERE (a.sponsor_id = d.sponsor_id AND e.amount = -d.discount)"
        "       OR (a.merchant_id = d.merchant_id AND a.unit = 'yen' AND e.amount = d.discount))"
        "       || '/' || count(*) FROM wallet.entries e JOIN wallet.accounts a ON a.id = e.account_id"
        "      WHERE e.journal_id = d.credit_journal_id) AS credited,"
        "    CASE WHEN d.sponsor_id IS NULL THEN 0 ELSE d.discount * p.refunded_amount / p.amount END AS due,"
        "    (SELECT coalesce(sum(r.sponsor_reversed), 0) FROM wallet.refunds r"
        "      WHERE r.payment_id = d.payment_id)::bigint AS given_back,"
        "    (SELECT coalesce(sum(e.amount), 0) FROM wallet.refunds r"
        "      JOIN wallet.entries e ON e.journal_id = r.sponsor_journal_id JOIN wallet.accounts a ON a.id = e.account_id"
        "      WHERE r.payment_id = d.payment_id AND a.sponsor_id = d.sponsor_id)::bigint AS moved_back"
        "  FROM wallet.payment_discounts d JOIN wallet.payments p ON p.id = d.payment_id) x "
        "WHERE (NOT shop OR price <> amount + discount OR (sponsor_id IS NOT NULL AND credited <> '2/2')"
        " OR reversed <> due OR reversed <> given_back OR reversed <> moved_back) {region}",
        "x",
    ):
        found.append(ledger_repo.Violation(
            "payments", f"payment {payment_id}",
            f"discount {discount} on a price of {price} of which {amount} was paid (at its shop: {shop}); "
            f"right entries/all of its sponsor's credit: {credited}; {reversed_} given back to the sponsor, "
            f"{due} due, its refunds say {given_back}, their journals moved {moved_back}",
        ))
    return found


async def _statement_violations(rows: ledger_repo.Rows) -> list[ledger_repo.Violation]:
    """A merchant's statement lines (wallet.statement_lines) are its entries, journal by journal
    and unit by unit: settlement, which reads them, can neither miss a movement nor count one twice."""
    found: list[ledger_repo.Violation] = []
    for journal_id, merchant_id, unit, entries, lines, count in await rows(
        "SELECT journal_id, merchant_id, unit, entries, lines, count FROM ("
        "  SELECT coalesce(e.journal_id, l.journal_id) AS journal_id, coalesce(e.merchant_id, l.merchant_id) AS merchant_id,"
        "    coalesce(e.unit, l.unit) AS unit, coalesce(e.amount, 0) AS entries, coalesce(l.net, 0) AS lines,"
        "    coalesce(l.count, 0) AS count, coalesce(e.region_id, l.region_id) AS region_id"
        "  FROM (SELECT en.journal_id, a.merchant_id, en.unit, en.region_id, sum(en.amount)::bigint AS amount"
        "        FROM wallet.entries en JOIN wallet.accounts a ON a.id = en.account_id WHERE a.kind = 'merchant'"
        "        GROUP BY en.journal_id, a.merchant_id, en.unit, en.region_id) e"
        "  FULL JOIN (SELECT journal_id, merchant_id, unit, region_id, sum(net)::bigint AS net, count(*) AS count"
        "        FROM wallet.statement_lines GROUP BY journal_id, merchant_id, unit, region_id) l"
        "    ON l.journal_id = e.journal_id AND l.merchant_id = e.merchant_id AND l.unit = e.unit) m "
        "WHERE (entries <> lines OR count <> 1) {region}",
        "m",
    ):
        found.append(ledger_repo.Violation(
            "payments", f"journal {journal_id}",
            f"merchant {merchant_id} moved {entries} {unit}; its {count} statement line(s) say {lines}",
        ))
    return found
