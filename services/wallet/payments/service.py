"""Paying at the shop: stores and their QR codes, fee plans, payments, refunds, dynamic payment
requests and merchant-to-merchant transfers.

Fees. A plan gives a rate in basis points and a rounding rule (default: down to the yen, so a
merchant never pays a fraction of a yen); the plan used is the one in force at the moment of the
payment, and its rate and the fee are stored with the payment. A plan may cap the fees a merchant
pays per fiscal year (年度, from 1 April, Tokyo time): the payment that reaches the cap pays only
what is left under it, later ones pay nothing. A merchant's payments and the transfers it receives
count towards one yearly total, and a refund gives back to it the fee it returns. Payments and
transfers are charged by one rule, `wallet.charge_fee` (payments/sql/charge_fee.sql), and refunds
give back by `wallet.return_fee` (payments/sql/return_fee.sql).

Refunds return the fee pro rata, rounded down on the running total: after refunds totalling R of
a payment of A with fee F, the fee returned so far is floor(F × R / A). Partial refunds therefore
never return more fee than a single full refund would, and a payment refunded in full returns all
of its fee, to the yen.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, DateTime, Row, SmallInteger, Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.directory import service as directory
from services.wallet.directory.errors import MerchantNotFound
from services.wallet.directory.models import Merchant, Region
from services.wallet.ledger import service as ledger
from services.wallet.ledger.errors import AccountInactive, InsufficientBalance
from services.wallet.ledger.models import AccountKind, JournalKind, Lot, Status
from services.wallet.payments import discounts, hooks
from services.wallet.payments import repository as repo
from services.wallet.payments.errors import (
    AmountMismatch,
    AmountRequired,
    InvalidAmount,
    InvalidFeePlan,
    MerchantInactive,
    NotEligibleHere,
    PaymentNotFound,
    PaymentRequestCancelled,
    PaymentRequestExpired,
    PaymentRequestNotFound,
    PaymentRequestPaid,
    PayoutExceedsBalance,
    PayoutKeyReused,
    QRChecksumMismatch,
    QRCurrency,
    QRForeign,
    QRMalformed,
    QRMismatch,
    RedemptionExceedsPoints,
    RedemptionKeyReused,
    RefundExceedsRemaining,
    RefundWindowClosed,
    SelfTransfer,
    StoreNameTaken,
    StoreNotFound,
)
from services.wallet.payments.models import (
    FeeKind,
    FeePlan,
    Payment,
    PaymentDiscount,
    PaymentLot,
    PaymentMethod,
    PaymentRequest,
    Rounding,
    Store,
)
from services.wallet.payments.receipt import render_html as render_receipt
from shared import audit, emvco
from shared.audit import Actor
from shared.clock import Clock, fiscal_year, tokyo_date
from shared.ids import from_short_id, new_id, short_id
from shared.money import Unit

DEFAULT_PAYMENT_RATE_BP = 200  # Aizu: 2 % of the payment amount
DEFAULT_TRANSFER_RATE_BP = 0  # merchant-to-merchant transfers keep money circulating: free by default


# --- region and merchant set-up -----------------------------------------------------------------


async def create_default_fee_plans(session: AsyncSession, region: Region, actor: str) -> None:
    for kind, rate in ((FeeKind.PAYMENT, DEFAULT_PAYMENT_RATE_BP), (FeeKind.TRANSFER, DEFAULT_TRANSFER_RATE_BP)):
        await repo.insert_fee_plan(
            session, id=new_id(), region_id=region.id, merchant_id=None, kind=kind.value, rate_bp=rate,
            rounding=Rounding.DOWN.value, yearly_cap=None, effective_from=region.created_at,
            created_by=actor, created_at=region.created_at,
        )


async def create_store(
    session: AsyncSession, clock: Clock, merchant: Merchant, *, name: str, name_ja: str, terminal_label: str | None
) -> Store:
    store = await repo.insert_store(
        session, id=new_id(), region_id=merchant.region_id, merchant_id=merchant.id, name=name, name_ja=name_ja,
        terminal_label=terminal_label, created_at=clock.now(),
    )
    if store is None:
        raise StoreNameTaken(f"{merchant.name_ja} already has a store named {name!r}.")
    return store


async def add_store(
    session: AsyncSession, clock: Clock, actor: Actor, merchant: Merchant, details: dict[str, Any]
) -> Store:
    directory.check_printable(details, "name_ja")
    store = await create_store(session, clock, merchant, **details)
    await audit.record(
        session, clock, actor, region_id=merchant.region_id, action="store.create",
        target_type="store", target_id=store.id, after={"merchant_id": str(merchant.id), **details},
    )
    return store


async def list_stores(session: AsyncSession, merchant: Merchant) -> list[Store]:
    return await repo.stores(session, merchant.id)


async def stores_in_region(
    session: AsyncSession, region_id: uuid.UUID, store_ids: list[uuid.UUID]
) -> list[tuple[Store, Merchant]]:
    """The region's stores among `store_ids`, each with its merchant (others' and unknown ids left out)."""
    return await repo.stores_with_merchants(session, region_id, store_ids) if store_ids else []


@dataclass(frozen=True)
class StoreQR:
    store: Store
    merchant: Merchant
    region: Region
    payload: str


async def store_qr(session: AsyncSession, store: Store, merchant: Merchant) -> StoreQR:
    """The static MPM code printed at the register."""
    region = await directory.region_by_id(session, store.region_id)
    return StoreQR(store, merchant, region, _payload(region, _code_of(store, merchant)))


def _code_of(store: Store, merchant: Merchant) -> repo.StoreCode:
    return repo.StoreCode(store.id, store.region_id, merchant.id, merchant.mcc, merchant.name, merchant.name_ja,
                          store.name_ja, store.terminal_label)


def _payload(
    region: Region | directory.RegionIdentity, code: repo.StoreCode, request: PaymentRequest | None = None
) -> str:
    """The code the server prints for a store (and, dynamic, for one payment request)."""
    return emvco.build_payload(
        guid=region.qr_guid, store_id=str(code.store_id), mcc=code.mcc, name=code.merchant_name, city=region.name,
        name_ja=code.name_ja, city_ja=region.name_ja, terminal=code.terminal_label,
        amount=request.amount if request else None, bill_number=short_id(request.id) if request else None,
    )


# --- fee plans --------------------------------------------------------------------------------


async def add_fee_plan(
    session: AsyncSession, clock: Clock, actor: Actor, region: Region, merchant_id: uuid.UUID | None,
    details: dict[str, Any],
) -> FeePlan:
    """A new plan from `effective_from` on (operator; audited). Plans already in force are never
    rewritten: a change takes effect from its start, and payments keep the rate they were made at."""
    effective_from = details.get("effective_from") or clock.now()
    if effective_from < clock.now() - timedelta(minutes=1):
        raise InvalidFeePlan("A fee plan cannot start in the past: payments already made keep their fee.")
    plan = await repo.insert_fee_plan(
        session, id=new_id(), region_id=region.id, merchant_id=merchant_id, kind=details["kind"],
        rate_bp=details["rate_bp"], rounding=details["rounding"], yearly_cap=details.get("yearly_cap"),
        effective_from=effective_from, created_by=actor.subject, created_at=clock.now(),
    )
    await audit.record(
        session, clock, actor, region_id=region.id, action="fee_plan.create", target_type="fee_plan",
        target_id=plan.id,
        after={"merchant_id": str(merchant_id) if merchant_id else None, "kind": plan.kind, "rate_bp": plan.rate_bp,
               "rounding": plan.rounding, "yearly_cap": plan.yearly_cap, "effective_from": effective_from.isoformat()},
    )
    return plan


async def list_fee_plans(session: AsyncSession, region: Region, merchant_id: uuid.UUID | None) -> list[FeePlan]:
    return await repo.fee_plans(session, region.id, merchant_id)


# --- paying -----------------------------------------------------------------------------------


async def pay_by_qr(
    session: AsyncSession, clock: Clock, region: directory.RegionIdentity, subject: str, payload: str,
    amount: int | None,
) -> Payment:
    """The resident `subject` names scanned a merchant's QR (static: types the amount; dynamic: it
    is in the code)."""
    scanned = await resolve_qr(session, region, payload)
    payment, _ = await pay_at_store(
        session, clock, region=region, subject=subject, store_id=scanned.store.store_id,
        request=scanned.request, price=amount,
    )
    return payment


async def pay_at_store(
    session: AsyncSession, clock: Clock, *, region: directory.RegionIdentity, subject: str, store_id: uuid.UUID,
    request: PaymentRequest | None, price: int | None, discount: discounts.Discount | None = None,
    actor: str | None = None,
) -> tuple[Payment, PaymentDiscount | None]:
    """Pay a store its `price` (a dynamic code's request: the request's amount, claimed once),
    less the discount if there is one."""
    if request is not None:
        await _claim_request(session, clock, request)
        if price is not None and price != request.amount:
            raise AmountMismatch(f"The shop asked for {request.amount} yen, not {price}.", expected=request.amount)
        price = request.amount
    elif price is None:
        raise AmountRequired("Type the amount the shop asks for.")
    if discount is not None:
        discounts.check(discount, price)
    paid = await pay(
        session, clock, region=region, subject=subject, store_id=store_id,
        amount=price - discount.amount if discount else price,
        method=PaymentMethod.MPM_DYNAMIC if request else PaymentMethod.MPM_STATIC,
        order_reference=request.order_reference if request else None, discount=discount, actor=actor,
    )
    if request is not None:
        await repo.link_payment_request(session, request.id, paid[0].id)
    return paid


async def payment_request_at(session: AsyncSession, store_id: uuid.UUID, request_id: uuid.UUID) -> PaymentRequest:
    """A store's payment request, by id (as `resolve_qr` found it in a dynamic code)."""
    request = await repo.payment_request(session, request_id)
    if request is None or request.store_id != store_id:
        raise PaymentRequestNotFound("The shop's payment request does not exist.")
    return request


@dataclass(frozen=True)
class ScannedCode:
    """A scanned merchant code, resolved to what the server holds: the store and, for a dynamic
    code, the payment request (not yet claimed)."""

    store: repo.StoreCode
    request: PaymentRequest | None


async def resolve_qr(session: AsyncSession, region: directory.RegionIdentity, payload: str) -> ScannedCode:
    """Read a scanned code and refuse it unless every field the server knows is what the server
    itself would print for that store (and request) today. The CRC only proves the code was not
    damaged; anyone can recompute it. A forged sticker could otherwise show one shop's name and pay
    another, or a dynamic code show ¥1 on the resident's screen while the request charges ¥880."""
    qr = _read_qr(payload, region)
    store = await repo.store_code(session, _store_id(qr))
    if store is None or store.region_id != region.id:
        raise StoreNotFound("The code names a store that is not a merchant here.")
    request = await _payment_request(session, qr, store.store_id) if qr.dynamic else None
    expected = _payload(region, store, request)
    if payload != expected:  # our own code, as printed, is the same text; others are compared field by field
        known = emvco.parse_payload(expected)
        differing = [name for name in emvco.MerchantQR.__dataclass_fields__ if getattr(qr, name) != getattr(known, name)]
        if differing:
            raise QRMismatch(
                f"The code's {', '.join(differing)} differ from what {store.merchant_name_ja} has registered: do not "
                "pay it; ask the shop for its current code.", fields=differing,
            )
    return ScannedCode(store, request)


def _read_qr(payload: str, region: directory.RegionIdentity) -> emvco.MerchantQR:
    try:
        qr = emvco.parse_payload(payload)
    except emvco.QRChecksumError as exc:
        raise QRChecksumMismatch(str(exc)) from None
    except emvco.QRCurrencyError as exc:
        raise QRCurrency(str(exc)) from None
    except emvco.InvalidQR as exc:
        raise QRMalformed(str(exc)) from None
    if qr.guid != region.qr_guid:
        raise QRForeign(f"This code is for {qr.guid!r}, not for {region.name_ja} ({region.qr_guid}).")
    return qr


def _store_id(qr: emvco.MerchantQR) -> uuid.UUID:
    try:
        return uuid.UUID(qr.store_id)
    except (TypeError, ValueError):
        raise QRMalformed("The code names no store.") from None


async def _payment_request(session: AsyncSession, qr: emvco.MerchantQR, store_id: uuid.UUID) -> PaymentRequest:
    try:
        request_id = from_short_id(qr.bill_number or "")
    except ValueError:
        raise QRMalformed("The dynamic code carries no payment request.") from None
    return await payment_request_at(session, store_id, request_id)


async def _claim_request(session: AsyncSession, clock: Clock, request: PaymentRequest) -> None:
    if not await repo.claim_payment_request(session, request.id, clock.now()):
        await session.refresh(request)
        if request.status == "paid":
            raise PaymentRequestPaid("This payment request was already paid.")
        if request.status == "cancelled":
            raise PaymentRequestCancelled("The shop cancelled this payment request.")
        raise PaymentRequestExpired("This payment request has expired; ask the shop for a new one.")


async def pay(
    session: AsyncSession,
    clock: Clock,
    *,
    region: directory.RegionIdentity,
    store_id: uuid.UUID,
    amount: int,
    method: PaymentMethod,
    account_id: uuid.UUID | None = None,
    subject: str | None = None,
    order_reference: str | None = None,
    card_id: uuid.UUID | None = None,
    discount: discounts.Discount | None = None,
    actor: str | None = None,
) -> tuple[Payment, PaymentDiscount | None]:
    """One journal: the resident pays `amount`; the merchant gets it less the fee; fee income
    gets the fee; the plan, rate and fee are stored with the payment. The payer is the wallet
    `account_id`, or the wallet of resident `subject` in the region. A `discount` (checked by the
    caller against the price, `amount` + the discount) is recorded with the payment as given by
    `actor`, and a sponsor's budget pays it to the shop (payments/discounts.py), before the hooks
    run; without one, nothing is added to the path.

    This is the hot path, so it runs as one database function, `wallet.pay`
    (services/wallet/payments/sql/pay.sql): lock the payer's coin and point accounts, take the
    lots that may pay at this merchant in spending order (`wallet.spending_key`), charge the fee
    (`wallet.charge_fee`, which transfers are charged by too: the plan in force, its rounding
    `wallet.fee_for`, and under a capped plan the merchant's fiscal-year total, the one lock a
    payment takes besides the payer's, taken after them), write the journal, its entries, the
    payment, which lots paid it and the discount's record. Merchant and fee income are credited
    without a lock, in the units the payer paid in: the fee is split between yen and points in
    proportion (the points share rounded down)."""
    assert discount is None or actor is not None, "a discount is given by someone"
    budget = await discounts.budget_for(session, region.id, discount) if discount is not None else None
    now = clock.now()
    payment_id, journal_id = new_id(), new_id()
    credit_journal_id = new_id() if budget is not None else None
    row = (
        await session.execute(
            PAY,
            {"region_id": region.id, "account_id": account_id, "subject": subject, "store_id": store_id,
             "amount": amount, "method": method.value, "order_reference": order_reference, "card_id": card_id,
             "now": now, "fiscal_year": fiscal_year(now), "payment_id": payment_id, "journal_id": journal_id,
             "entry_ids": [new_id() for _ in range(6)], **discounts.pay_arguments(discount, credit_journal_id, actor)},
        )
    ).one()
    if row.outcome == "no_store":
        raise StoreNotFound("The code names a store that is not a merchant here.")
    if row.outcome == "merchant_inactive":
        raise MerchantInactive("The shop is suspended or closed; it cannot take payments.", merchant_id=str(row.merchant_id))
    if row.outcome == "account_inactive":
        raise AccountInactive("The wallet is suspended or closed.")
    if row.outcome == "insufficient":
        if row.balance >= amount:
            raise NotEligibleHere(
                f"Of the {row.balance} the wallet holds, {row.eligible} may be spent at this shop now; {amount} is "
                "needed. The rest is restricted to other shops, not yet usable, or expired.",
                balance=row.balance, eligible=row.eligible, required=amount,
            )
        raise InsufficientBalance(
            f"The balance is {row.balance}; {amount} is needed.", balance=row.balance, required=amount
        )
    assert row.outcome == "ok", row.outcome
    payment = Payment(
        id=payment_id, region_id=region.id, journal_id=journal_id, resident_account_id=row.account_id,
        merchant_id=row.merchant_id, store_id=store_id, method=method.value, amount=amount, fee=row.fee,
        fee_rate_bp=row.fee_rate_bp, fee_plan_id=row.fee_plan_id, fiscal_year=fiscal_year(now), refunded_amount=0,
        fee_returned=0, point_amount=row.point_amount, fee_point=row.fee_point, refunded_point=0,
        fee_returned_point=0, reward_points=0, order_reference=order_reference, card_id=card_id, created_at=now,
    )
    applied = None
    if discount is not None:
        applied = await discounts.apply(
            session, clock, payment=payment, discount=discount, budget=budget, credit_journal_id=credit_journal_id,
            actor=actor,
        )
    for paid in hooks.on_paid:
        payment.reward_points += await paid(
            session, clock, payment_id=payment_id, region_id=region.id, merchant_id=row.merchant_id, amount=amount,
            point_amount=row.point_amount, wallet_account_id=row.account_id,
        )
    if payment.reward_points:
        await repo.set_reward_points(session, payment_id, payment.reward_points)
    return payment, applied


PAY = text(
    "SELECT * FROM wallet.pay(:region_id, :account_id, :subject, :store_id, :amount, :method, :order_reference,"
    " :card_id, :now, :fiscal_year, :payment_id, :journal_id, :entry_ids, :discount, :discount_funder, :sponsor_id,"
    " :credit_journal_id, :discount_reference, :discount_by)"
).bindparams(
    bindparam("region_id", type_=UUID), bindparam("account_id", type_=UUID), bindparam("subject", type_=Text),
    bindparam("store_id", type_=UUID), bindparam("amount", type_=BigInteger), bindparam("method", type_=Text),
    bindparam("order_reference", type_=Text), bindparam("card_id", type_=UUID),
    bindparam("now", type_=DateTime(timezone=True)), bindparam("fiscal_year", type_=SmallInteger),
    bindparam("payment_id", type_=UUID), bindparam("journal_id", type_=UUID),
    bindparam("entry_ids", type_=ARRAY(UUID)), bindparam("discount", type_=BigInteger),
    bindparam("discount_funder", type_=Text), bindparam("sponsor_id", type_=UUID),
    bindparam("credit_journal_id", type_=UUID), bindparam("discount_reference", type_=Text),
    bindparam("discount_by", type_=Text),
)


# --- dynamic payment requests -------------------------------------------------------------------


async def create_payment_request(
    session: AsyncSession, clock: Clock, actor: Actor, store: Store, merchant: Merchant, amount: int,
    order_reference: str,
) -> tuple[PaymentRequest, str]:
    if merchant.status != Status.ACTIVE:
        raise MerchantInactive(f"{merchant.name_ja} is {merchant.status}; it cannot take payments.")
    region = await directory.region_by_id(session, store.region_id)
    now = clock.now()
    request = await repo.insert_payment_request(
        session, id=new_id(), region_id=region.id, merchant_id=merchant.id, store_id=store.id, amount=amount,
        order_reference=order_reference, status="open",
        expires_at=now + timedelta(minutes=region.payment_request_minutes), created_by=actor.subject, created_at=now,
    )
    return request, _payload(region, _code_of(store, merchant), request)


async def request_code(
    session: AsyncSession, request: PaymentRequest, store: Store, merchant: Merchant
) -> tuple[PaymentRequest, str]:
    """A payment request with its dynamic code."""
    region = await directory.region_by_id(session, store.region_id)
    return request, _payload(region, _code_of(store, merchant), request)


async def cancel_payment_request(
    session: AsyncSession, request: PaymentRequest, store: Store, merchant: Merchant
) -> tuple[PaymentRequest, str]:
    _, payload = await request_code(session, request, store, merchant)
    cancelled = await repo.cancel_payment_request(session, request.id)
    if cancelled is None:
        if request.status == "paid":
            raise PaymentRequestPaid("The request was already paid; refund the payment instead.")
        raise PaymentRequestCancelled("The request was already cancelled.")
    return cancelled, payload


# --- payments seen and refunded -----------------------------------------------------------------


@dataclass(frozen=True)
class PaymentDetail:
    payment: Payment
    lots: list[tuple[PaymentLot, Lot]]  # in spending order
    store: Store
    merchant: Merchant


async def payment_detail(session: AsyncSession, payment: Payment) -> PaymentDetail:
    """A payment with the lots that paid it, and the shop that issues its receipt."""
    found = await repo.store_with_merchant(session, payment.store_id)
    assert found is not None
    return PaymentDetail(payment, list(reversed(await repo.payment_lots(session, payment.id))), *found)


async def receipt(session: AsyncSession, payment: Payment) -> str:
    found = await repo.store_with_merchant(session, payment.store_id)
    assert found is not None
    region = await directory.region_by_id(session, payment.region_id)
    return render_receipt(payment, found[0], found[1], region)


async def refund(
    session: AsyncSession, clock: Clock, actor: Actor, payment: Payment, amount: int, reason: str | None
) -> tuple[Payment, int]:
    """A refund by the merchant's staff (or terminal) of a payment of theirs."""
    refunded = await refund_payment(
        session, clock, actor, region_id=payment.region_id, payment_id=payment.id, amount=amount, reason=reason,
    )
    return refunded.payment, refunded.fee_returned


@dataclass(frozen=True)
class Refunded:
    payment: Payment  # with its running totals after this refund
    refund_id: uuid.UUID
    journal_id: uuid.UUID
    fee_returned: int
    sponsor_reversed: int  # of a sponsor's discount, given back to the sponsor (payments/discounts.py)
    sponsor_journal_id: uuid.UUID | None
    created_at: datetime


async def refund_payment(
    session: AsyncSession, clock: Clock, actor: Actor, *, region_id: uuid.UUID, payment_id: uuid.UUID, amount: int,
    reason: str | None,
) -> Refunded:
    """Give (part of) a payment back to the wallet it came from, within the region's window.
    Several partial refunds may add up to the payment, never more.

    The lots the payment took are restored in reverse spending order (services/wallet/ledger/lots.py);
    what belongs to a lot that expired meanwhile goes to the expiry account instead of the wallet.
    The fee comes back per unit in proportion to what is refunded of that unit, counted on the
    running totals so that partial refunds never return more than was charged:
    returned(unit) = floor(fee(unit) × refunded(unit) / paid(unit)). A sponsor's discount goes
    back to the sponsor the same way (payments/discounts.py)."""
    if amount <= 0:
        raise InvalidAmount(f"A refund is a positive number of yen, not {amount}.")
    payment = await repo.payment(session, payment_id, lock=True)  # one refund of a payment at a time
    if payment is None or payment.region_id != region_id:
        raise PaymentNotFound(f"No payment {payment_id}.")
    remaining = payment.amount - payment.refunded_amount
    if amount > remaining:
        raise RefundExceedsRemaining(
            f"{remaining} yen of this payment is left to refund; {amount} was asked.", remaining=remaining
        )
    region = await directory.region_by_id(session, payment.region_id)
    last_day = tokyo_date(payment.created_at) + timedelta(days=region.refund_window_days)
    now = clock.now()
    if tokyo_date(now) > last_day:
        raise RefundWindowClosed(
            f"The shop could refund this payment until the end of {last_day.isoformat()} (Tokyo); "
            "ask the operator.", last_day=last_day.isoformat()
        )
    resident = await ledger.account(session, payment.resident_account_id)
    assert resident is not None and resident.resident_id is not None
    points = await directory.resident_account(session, resident.resident_id, Unit.POINT.value)
    await ledger.lock_accounts(session, [resident.id, points.id])  # the lots change behind this lock
    back = await _restore_lots(session, payment, amount, now)

    coin_paid = payment.amount - payment.point_amount
    fee_yen = payment.fee - payment.fee_point
    refunded_yen = payment.refunded_amount - payment.refunded_point + back.total(Unit.YEN)
    refunded_point = payment.refunded_point + back.total(Unit.POINT)
    fee_back = {
        Unit.YEN: (fee_yen * refunded_yen // coin_paid if coin_paid else 0)
        - (payment.fee_returned - payment.fee_returned_point),
        Unit.POINT: (payment.fee_point * refunded_point // payment.point_amount if payment.point_amount else 0)
        - payment.fee_returned_point,
    }
    expired = {unit: await ledger.system_account(session, region.id, AccountKind.EXPIRED, unit.value) for unit in Unit}
    fee_income = {
        unit: await ledger.system_account(session, region.id, AccountKind.FEE_INCOME, unit.value) for unit in Unit
    }
    merchant = {a.unit: a for a in await directory.merchant_accounts(session, payment.merchant_id)}
    legs: list[ledger.Leg] = []
    for unit, wallet_account in ((Unit.YEN, resident), (Unit.POINT, points)):
        legs += [
            ledger.Leg(wallet_account, back.live[unit]),
            ledger.Leg(expired[unit], back.expired[unit]),
            ledger.Leg(merchant[unit.value], -(back.total(unit) - fee_back[unit])),
            ledger.Leg(fee_income[unit], -fee_back[unit]),
        ]
    posted = await ledger.post_journal(
        session, clock, region_id=region.id, kind=JournalKind.REFUND, actor=actor.subject,
        legs=[leg for leg in legs if leg.amount], reference=str(payment.id), memo=reason,
    )
    fee_returned = fee_back[Unit.YEN] + fee_back[Unit.POINT]
    await repo.return_fee(session, payment.id, fee_returned)  # under a yearly cap, room to charge again
    reversal = await discounts.reverse_share(
        session, clock, payment=payment, refunded_total=payment.refunded_amount + amount, actor=actor.subject
    )
    clawed = 0
    for refunded in hooks.on_refunded:
        clawed += await refunded(
            session, clock, payment_id=payment.id, region_id=region.id, amount=payment.amount,
            refunded_total=payment.refunded_amount + amount, points=points,
        )
    refund_id = new_id()
    updated = await repo.record_refund(
        session, payment.id,
        {"refunded_amount": amount, "fee_returned": fee_returned, "refunded_point": back.total(Unit.POINT),
         "fee_returned_point": fee_back[Unit.POINT], "reward_points": -clawed},
        {"id": refund_id, "region_id": region.id, "payment_id": payment.id, "merchant_id": payment.merchant_id,
         "journal_id": posted.journal_id, "amount": amount, "fee_returned": fee_returned,
         "point_amount": back.total(Unit.POINT), "fee_returned_point": fee_back[Unit.POINT],
         "expired_amount": sum(back.expired.values()), "sponsor_reversed": reversal.amount,
         "sponsor_journal_id": reversal.journal_id, "reason": reason, "created_by": actor.subject,
         "created_at": posted.created_at},
    )
    after: dict[str, Any] = {"amount": amount, "fee_returned": fee_returned, "reason": reason}
    if reversal.amount:
        after["sponsor_reversed"] = reversal.amount
    await audit.record(
        session, clock, actor, region_id=region.id, action="payment.refund", target_type="payment",
        target_id=payment.id, after=after,
    )
    return Refunded(updated, refund_id, posted.journal_id, fee_returned, reversal.amount, reversal.journal_id,
                    posted.created_at)


@dataclass
class _Restored:
    live: dict[Unit, int]  # back into the wallet's lots
    expired: dict[Unit, int]  # belonged to lots that expired meanwhile: to the expiry account

    def total(self, unit: Unit) -> int:
        return self.live[unit] + self.expired[unit]


async def _restore_lots(session: AsyncSession, payment: Payment, amount: int, now: datetime) -> _Restored:
    """Put `amount` back into the lots the payment took, the last taken first."""
    restored = _Restored({u: 0 for u in Unit}, {u: 0 for u in Unit})
    left = amount
    for taken, lot in await repo.payment_lots(session, payment.id):
        give = min(taken.amount - taken.restored, left)
        if give <= 0:
            continue
        unit = Unit(taken.unit)
        if lot.expires_at is not None and lot.expires_at <= now:
            await ledger.change_lot_remaining(session, lot.id, 0, expired=give)
            restored.expired[unit] += give
        else:
            await ledger.change_lot_remaining(session, lot.id, give)
            restored.live[unit] += give
        await repo.mark_lot_restored(session, payment.id, taken.seq, give)
        left -= give
        if left == 0:
            break
    assert left == 0, f"payment {payment.id}: its lots cover {amount - left} of the {amount} refunded"
    return restored


async def merchant_payments(
    session: AsyncSession, merchant: Merchant, *, after_id: uuid.UUID | None, limit: int,
    since: datetime | None, until: datetime | None, store_id: uuid.UUID | None,
) -> list[Payment]:
    return await repo.merchant_payments(
        session, merchant.id, after_id=after_id, limit=limit, since=since, until=until, store_id=store_id
    )


# --- merchant-to-merchant transfers ---------------------------------------------------------------


@dataclass(frozen=True)
class Transfer:
    journal_id: uuid.UUID
    from_merchant_id: uuid.UUID
    to_merchant_id: uuid.UUID
    amount: int
    fee: int
    fee_rate_bp: int
    created_at: datetime


async def transfer(
    session: AsyncSession, clock: Clock, actor: Actor, payer: Merchant, to_id: uuid.UUID, amount: int,
    memo: str | None,
) -> Transfer:
    """The restaurant pays the farmer from its balance, before payout: money keeps circulating.
    The payee bears the transfer fee, charged by the rule its payments are (`wallet.charge_fee`):
    its transfer plan in force (0 % by default), rounded by that plan, under the yearly cap its
    payments count towards too."""
    if to_id == payer.id:
        raise SelfTransfer("A merchant cannot transfer to itself.")
    payee = await directory.merchant(session, to_id)
    if payee is None or payee.region_id != payer.region_id:
        raise MerchantNotFound(f"No merchant {to_id} in this region.")
    for party in (payer, payee):
        if party.status != Status.ACTIVE:
            raise MerchantInactive(f"{party.name_ja} is {party.status}.")
    region = await directory.region_by_id(session, payer.region_id)
    now = clock.now()
    charged = await repo.charge_fee(session, region.id, payee.id, FeeKind.TRANSFER.value, amount, now, fiscal_year(now))
    legs = [
        ledger.Leg(await directory.merchant_account(session, payer.id, Unit.YEN.value), -amount),
        ledger.Leg(await directory.merchant_account(session, payee.id, Unit.YEN.value), amount - charged.fee),
    ]
    if charged.fee:
        fee_income = await ledger.system_account(session, region.id, AccountKind.FEE_INCOME, Unit.YEN.value)
        legs.append(ledger.Leg(fee_income, charged.fee))
    posted = await ledger.post_journal(
        session, clock, region_id=region.id, kind=JournalKind.TRANSFER, actor=actor.subject,
        legs=[leg for leg in legs if leg.amount], reference=str(payee.id), memo=memo,
    )
    result = Transfer(posted.journal_id, payer.id, payee.id, amount, charged.fee, charged.rate_bp, posted.created_at)
    await audit.record(
        session, clock, actor, region_id=region.id, action="merchant.transfer", target_type="merchant",
        target_id=payer.id,
        after={"to": str(payee.id), "amount": amount, "fee": charged.fee, "journal_id": str(posted.journal_id)},
    )
    return result



# --- merchants' statement lines -------------------------------------------------------------------


async def statement_lines(
    session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime, merchant_id: uuid.UUID | None
) -> AsyncIterator[Row[Any]]:
    """Every movement of the region's merchants' balances in [since, until) (one merchant's, with
    `merchant_id`), in (merchant, time, journal, unit) order, streamed: wallet.statement_lines,
    whose rules are in payments/sql/statement_lines.sql."""
    async for row in repo.statement_lines(session, region_id, since, until, merchant_id):
        yield row


# --- payouts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payout:
    journal_id: uuid.UUID
    merchant_id: uuid.UUID
    amount: int
    reference: str | None
    created_at: datetime
    fee: int = 0  # charged besides `amount` (an on-demand payout's), by its own journal
    fee_journal_id: uuid.UUID | None = None


async def post_payout(
    session: AsyncSession, clock: Clock, actor: Actor, *, region_id: uuid.UUID, merchant_id: uuid.UUID, amount: int,
    reference: str | None, key: str | None = None, fee: int = 0,
) -> Payout:
    """振込: `amount` yen of the merchant's balance leave circulation for its bank account (a
    `payout` journal to bank clearing), never more than the balance. A suspended or closed shop
    is still paid what it holds. A `fee` (an on-demand payout's) is taken besides, from the
    merchant to fee income, by a `payout_fee` journal: the balance must cover both. With a `key`
    (kept as the journals' reference) a payout is posted once: the same key again returns the
    payout it made, and refuses payout-key-reused for another merchant, amount or fee."""
    if amount <= 0 or fee < 0:
        raise InvalidAmount(f"A payout is a positive number of yen and its fee not negative, not {amount} and {fee}.")
    if key is not None:
        reference = key
        if made := await repo.payout_by_reference(session, region_id, key):
            kinds = {row.kind: row for row in made}
            paid, charged = kinds.get(JournalKind.PAYOUT.value), kinds.get(JournalKind.PAYOUT_FEE.value)
            if paid is None or (paid.merchant_id, paid.amount, charged.amount if charged else 0) != (
                    merchant_id, amount, fee):
                raise PayoutKeyReused(f"The payout key {key!r} was used for another payout.")
            return Payout(paid.journal_id, merchant_id, amount, key, paid.created_at, fee,
                          charged.journal_id if charged else None)
    merchant = await directory.merchant(session, merchant_id)
    if merchant is None or merchant.region_id != region_id:
        raise MerchantNotFound(f"No merchant {merchant_id} in this region.")
    account = await directory.merchant_account(session, merchant_id, Unit.YEN.value)
    clearing = await ledger.system_account(session, region_id, AccountKind.BANK_CLEARING, Unit.YEN.value)
    try:
        posted = await ledger.post_journal(
            session, clock, region_id=region_id, kind=JournalKind.PAYOUT, actor=actor.subject,
            legs=[ledger.Leg(account, -amount), ledger.Leg(clearing, amount)], reference=reference,
            even_if_inactive=True,
        )
        charged = None
        if fee > 0:
            income = await ledger.system_account(session, region_id, AccountKind.FEE_INCOME, Unit.YEN.value)
            charged = await ledger.post_journal(
                session, clock, region_id=region_id, kind=JournalKind.PAYOUT_FEE, actor=actor.subject,
                legs=[ledger.Leg(account, -fee), ledger.Leg(income, fee)], reference=reference,
                even_if_inactive=True,
            )
    except InsufficientBalance as exc:
        raise PayoutExceedsBalance(
            f"{merchant.name_ja} holds {exc.extra['balance']} yen; a payout of {amount} and a fee of {fee} were asked.",
            balance=exc.extra["balance"], requested=amount + fee,
        ) from None
    await audit.record(
        session, clock, actor, region_id=region_id, action="merchant.payout", target_type="merchant",
        target_id=merchant_id, after={"amount": amount, "journal_id": str(posted.journal_id), "reference": reference,
                                      "fee": fee, "fee_journal_id": str(charged.journal_id) if charged else None},
    )
    return Payout(posted.journal_id, merchant_id, amount, reference, posted.created_at, fee,
                  charged.journal_id if charged else None)


# --- point redemptions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Redemption:
    journal_id: uuid.UUID
    merchant_id: uuid.UUID
    amount: int  # points retired, and as many yen paid to the merchant
    reference: str
    created_at: datetime


async def redeem_points(
    session: AsyncSession, clock: Clock, actor: Actor, *, region_id: uuid.UUID, merchant_id: uuid.UUID, amount: int,
    key: str,
) -> Redemption:
    """ポイント換金: `amount` of the merchant's points retire to the region's campaign fund, which
    issued them as premiums, grants and rewards, and the fund pays the merchant as many yen (1
    point = 1 yen): one `point_redemption` journal of four entries, balanced in each unit. Never
    more than the merchant's points; a suspended or closed shop is still redeemed what it holds,
    as it is still paid out. Keyed (the key kept as the journal's reference) like a payout: the
    same key returns the redemption it made, and refuses redemption-key-reused for another
    merchant or amount."""
    if amount <= 0:
        raise InvalidAmount(f"A redemption is a positive number of points, not {amount}.")
    if made := await repo.redemption_by_reference(session, region_id, key):
        if (made.merchant_id, made.amount) != (merchant_id, amount):
            raise RedemptionKeyReused(f"The redemption key {key!r} was used for another redemption.")
        return Redemption(made.journal_id, merchant_id, amount, key, made.created_at)
    merchant = await directory.merchant(session, merchant_id)
    if merchant is None or merchant.region_id != region_id:
        raise MerchantNotFound(f"No merchant {merchant_id} in this region.")
    accounts = {a.unit: a for a in await directory.merchant_accounts(session, merchant_id)}
    fund_point = await ledger.system_account(session, region_id, AccountKind.CAMPAIGN_FUND, Unit.POINT.value)
    fund_yen = await ledger.system_account(session, region_id, AccountKind.CAMPAIGN_FUND, Unit.YEN.value)
    try:
        posted = await ledger.post_journal(
            session, clock, region_id=region_id, kind=JournalKind.POINT_REDEMPTION, actor=actor.subject,
            legs=[ledger.Leg(accounts[Unit.POINT.value], -amount), ledger.Leg(fund_point, amount),
                  ledger.Leg(fund_yen, -amount), ledger.Leg(accounts[Unit.YEN.value], amount)],
            reference=key, even_if_inactive=True,
        )
    except InsufficientBalance as exc:
        raise RedemptionExceedsPoints(
            f"{merchant.name_ja} holds {exc.extra['balance']} points; a redemption of {amount} was asked.",
            balance=exc.extra["balance"], requested=amount,
        ) from None
    await audit.record(
        session, clock, actor, region_id=region_id, action="merchant.points_redeemed", target_type="merchant",
        target_id=merchant_id, after={"amount": amount, "journal_id": str(posted.journal_id), "reference": key},
    )
    return Redemption(posted.journal_id, merchant_id, amount, key, posted.created_at)


# Queries the modules above use as they are: they call this service, never the repository.
find_violations = repo.find_violations
payment = repo.payment
payment_request = repo.payment_request
store_with_merchant = repo.store_with_merchant
stores = repo.stores
payers = repo.payers
statement_lines_before = repo.statement_lines_before
