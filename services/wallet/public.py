"""The wallet's public surface: the only wallet module that other services (services/coupons,
services/settlement) import (a contract in pyproject.toml holds them to it).

Every function works in the caller's session and never commits: the caller's request dependency
or job runner commits once, so "pay with a coupon" or "run a settlement" commits or fails as one
unit with what the calling service writes. Each function that writes runs in a savepoint of the
caller's transaction: when it refuses (a `Problem`, with its own `type`), nothing it did remains,
whatever the caller does next; value moves only when it returns. Functions take the region (its
code, as tokens carry it) and an explicit `Actor`: who acts, for the journals' `actor` and the
audit trail (`Actor.of(principal)` at an endpoint; a service or job names itself). Who may see
or do what is the endpoint's check, before it calls here.

Reading a scanned code
    `resolve_qr(session, region=, payload=) -> ScannedStore`: the store (and, for a dynamic code,
    the shop's payment request, not yet claimed) behind a merchant QR the resident scanned, if
    every field is what the server itself prints for it. Refuses qr-malformed, qr-checksum-
    mismatch, qr-currency, qr-foreign, qr-mismatch, store-not-found, payment-request-not-found.

Paying
    `pay(session, clock, region=, actor=, payer=, store_id=, price=, payment_request_id=,
    discount=) -> PaidPayment`: resident `payer` (their subject) pays the store `price` yen (for a
    dynamic request: its amount, claimed once) less an optional `Discount`, in one transaction
    with the payment's hooks. The fee is charged on what the resident paid. A discount funded by
    the shop only lowers the price; one funded by a sponsor also makes the sponsor's yen budget
    pay the shop the discount, by a `sponsor_credit` journal of its own (no fee on it).
    Refuses amount-required, amount-mismatch, invalid-discount, sponsor-not-found,
    sponsor-budget-exhausted, store-not-found, merchant-inactive, account-inactive,
    insufficient-balance, balance-not-eligible-here, payment-request-paid / -cancelled /
    -expired / -not-found, and whatever problem a hook raises.
    `savepoint=False` leaves out the savepoint (two round trips): only for a caller whose
    whole transaction is rolled back whenever `pay` refuses (it never catches the problem, as a
    payment with a coupon does not), so that nothing of a refused payment can remain.
    `publish_paid(redis, paid)`: tell the shop's terminals (`GET /v1/merchants/{id}/events`)
    of the payment; call it only after the commit (a FastAPI background task does), as the
    wallet's own payment endpoints do. A lost notice is caught up from the database when a
    terminal reconnects.

Refunding
    `refund(session, clock, region=, actor=, payment_id=, amount=, reason=) -> RefundMade`:
    (part of) a payment back to the wallet it came from, by the rules of every refund
    (payments/service.py): within the region's refund window, never more than what remains, the
    fee back pro rata, and a sponsor's discount back to the sponsor pro rata on the running
    totals, floor(discount × refunded / amount), so a full refund returns all of it. Refuses
    invalid-amount, payment-not-found, refund-exceeds-remaining, refund-window-closed,
    insufficient-balance (the shop no longer holds what it must give back), and a hook's problem.

Paying a merchant out
    `post_payout(session, clock, region=, actor=, merchant_id=, amount=, reference=, key=, fee=0)
    -> Payout`: a `payout` journal takes `amount` yen of the merchant's balance to bank clearing
    (振込; the money leaves circulation), even for a suspended or closed shop; a `fee` (the
    on-demand payout fee) goes besides from the merchant to fee income by a `payout_fee` journal
    (a statement line of its own kind). With `key=` (a settlement run's, kept as the journals'
    reference) it is posted once: the same key returns the payout made. Refuses invalid-amount,
    merchant-not-found, payout-exceeds-balance (more than the merchant holds now, fee included),
    payout-key-reused (the key paid another merchant, amount or fee).
    `redeem_points(session, clock, region=, actor=, merchant_id=, amount=, key=) -> Redemption`:
    ポイント換金, for a settlement run to pay the merchant for the points residents spent at its
    shop: a `point_redemption` journal retires `amount` of the merchant's points to the region's
    campaign fund (which issued them) and the fund pays the merchant as many yen (1 point = 1
    yen), four entries balanced in each unit; two statement lines of the merchant's (points −,
    yen +) of kind `point_redemption`. Keyed like `post_payout` (a run's key, kept as the
    journal's reference): the same key returns the redemption made. Refuses invalid-amount,
    merchant-not-found, redemption-exceeds-points (more than the merchant holds now),
    redemption-key-reused. A refund that must take back points a redemption retired is refused
    insufficient-balance, as one is after a payout took the shop's yen.

Statement lines
    `statement_lines(session, region=, since=, until=, merchant_id=) -> AsyncIterator[StatementLine]`:
    every movement of merchants' balances that occurred in [since, until): payments, refunds on
    their own date, fees, B2B transfers in and out, sponsor credits and their reversals, payouts
    and their fees, point redemptions (a point and a yen line),
    from the read-only view `wallet.statement_lines` (payments/sql/statement_lines.sql), streamed
    in (merchant, time, journal, unit) order. A line is keyed by (journal_id, merchant_id, unit);
    `ledger verify` proves that the lines are the merchants' entries, journal by journal. A line's
    time is its journal's (a sponsor's credit and reversals: their payment's and refund's, so they
    fall in the same period), stamped before commit: a reader cutting a period at `until` must
    wait out the commit lag (a grace period) before trusting that nothing more lands before it.
    With `include_imported=True` the payments and refunds imported from a previous platform
    (services/wallet/history) come too, in the same order, marked `imported` (their old id in
    `source_key`; `journal_id` is the imported row's own id, no journal: they moved no value here
    and were settled by the previous platform, so a settlement run must never pay them out; a
    report of earlier years reads them).
    `statement_lines_before(session, region=, until=, merchant_ids=, units=("yen",)) -> Select`: the
    same lines of those merchants before `until` as a query (columns as `StatementLine`'s, and
    `payment_at`, a refund's payment's time), for a caller that reads millions set-wise in SQL
    (a settlement run inserts from it) instead of streaming them through Python.
    `payment_discount(session, region=, payment_id=) -> DiscountRecord | None` reads one
    payment's discount and who funded it.

Activity (for settlement's KPI report)
    `activity(session, region=, since=, until=) -> Activity`: the region's activity in the Tokyo
    days [since, until), grouped by the database: per day and merchant sector the payments
    (count, what residents paid in coin and points, the fee charged); per day of refund, day of
    the payment refunded and sector the refunds (a refund counts on its own date; the payment's
    day tells which baseline rate its fee saving used); per month the point grants, the
    merchant-to-merchant transfers and the payouts (count and amount), the residents who took
    part (a top-up, payment, premium set or grant) and the merchants that traded (were paid, or
    sent or received a transfer), and both of those distinct over the whole period.

    `unused_balance(session, region=, at=) -> UnusedBalance`: residents' unused paid-in value
    (yen; points are free value and not in it) at the instant `at`, as it stood then, with the
    wallets holding some and the totals per journal kind it was summed from (the base-date
    report, 基準日未使用残高).

Importing history (移行)
    `import_history(session, clock, region=, actor=, batch=, batch_id=, progress=None) -> Imported`:
    a previous platform's merchants (found by id or name, or onboarded with `MerchantDetails`),
    residents, top-ups, payments, refunds and grants (a `HistoryBatch` of typed rows, each with its
    line in the file), checked in full and then written all at once: the movements kept as
    imported rows, each resident's closing balance carried over by an `opening` journal from the
    region's migration account (services/wallet/history/service.py says why). Rows already
    imported (by key) are skipped. `progress(phase, done, total)` is awaited along the way.
    Refuses history-refused (422) or history-overlaps (409: history at or after the region's own
    began), each with every problem in `errors` (line, key, field, code, detail), writing nothing.
    `check_history(session, clock, region=, batch=) -> list[RowProblem]` finds the same problems
    and writes nothing (for a file some of whose rows could not even be read).

Sponsors
    A sponsor (e.g. a city campaign) has a budget account of kind `sponsor_budget` in yen. The
    city funds it from the region's yen campaign fund by a `funding` journal (value is issued
    only that way, as campaign budgets are funded in points); its discounts draw on it by one
    conditional update, so it can never go negative. `create_sponsor(session, clock, region=,
    actor=, name=, name_ja=) -> SponsorBudget` (refuses sponsor-name-taken),
    `fund_sponsor(session, clock, region=, actor=, sponsor_id=, amount=) -> SponsorBudget`
    (refuses invalid-amount, sponsor-not-found), `sponsor(session, region=, sponsor_id=)`.
    `sponsor_pays(session, clock, region=, actor=, sponsor_id=, merchant_id=, amount=, reference=)
    -> SponsorPayment`: the sponsor's budget pays a merchant `amount` yen outright, for what the
    merchant gives a resident on the sponsor's account with no payment of theirs (a bus fare in
    a bundle), by a `sponsor_payment` journal (no fee; a statement line of its own kind). The
    same conditional update as a discount's: a budget short of `amount` refuses and nothing
    moves. Refuses invalid-amount, sponsor-not-found, merchant-not-found, merchant-inactive,
    sponsor-budget-exhausted.

Regions, merchants, residents and notices (for coupons' segments and transit)
    `region_id(session, region=) -> UUID`: the region's id, for rows another service keys by it
    (refuses region-not-found). `region_codes(session) -> list[str]`: every region hosted here. `residents(session, region=, among=None) -> list[str]`: subjects
    of the region's residents whose wallet is active ("all residents"), of `among` if given.
    `payers(session, region=, since=, until=, among=, sectors=None) -> list[str]`: those of
    `among` who paid in [since, until), at merchants of the given `Sector`s if any; a payment
    refunded in full does not count. The caller passes only residents who agreed to their
    activity being used, so the wallet never tells anyone about the others.
    `post_notices(session, clock, region=, actor=, subjects=, kind=, payload=) -> int`: one
    notice (GET /v1/wallet/notices) per subject that is a resident with an active wallet; how
    many were made (audited once, with the count).
    `merchant(session, region=, merchant_id=) -> MerchantProfile`: a merchant of the region as
    another service may know it (names, sector, status) and its stores, e.g. for transit to mark
    a bus company as a bus operator and take ticket fares at one of its stores. Refuses
    merchant-not-found (none of that id in this region): `MerchantNotFound`, which another
    service raises too where a caller may not see a merchant, so both refusals read the same.
    `onboarded_bank_accounts(session, region=) -> list[OnboardedBankAccount]`: every merchant of
    the region with the bank account it gave when it was onboarded (the merchant record's), oldest
    merchant first, e.g. for settlement to copy into its own payout accounts, checking each.
    `stores(session, region=, store_ids=) -> list[ShopStore]`: those of `store_ids` that are the
    region's stores, each with its merchant and whether it may take payments now (e.g. for a
    region-wide coupon valid at a listed set of stores); an id of another region or of no store is
    left out.
    `balance(session, clock, region=, subject=) -> Balance`: what the resident's wallet can pay
    with now (yen and points; not yet usable or expired value left out), e.g. for a partner
    service's checkout to show before the resident approves it. A resident's first call makes
    their wallet, as the wallet's own `GET /v1/wallet` does.
    `resident_wallet_account(session, clock, region=, subject=) -> uuid.UUID`: the coin account of
    the resident `subject` names (their wallet, created on their first call as every request
    does), the `wallet_account_id` that `OnPaid` hooks are given: e.g. the data platform's
    sharing choices, so that its hook recognises a payer by one lookup of its own.

Hooks
    `register_hooks(paid=, refunded=)`, called by the composition root (app/wiring.py) only:
    `OnPaid` runs after each payment's journal is written and `OnRefunded` after each refund's
    (HTTP or here), in the same session and transaction, the payer's accounts locked. A hook that
    raises a `Problem` refuses: the payment or refund fails with it and none of it is committed.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.directory import service as directory
from services.wallet.directory.errors import MerchantNotFound
from services.wallet.directory.models import Sector
from services.wallet.history import service as history
from services.wallet.history.service import (
    HistoryBatch,
    Imported,
    MerchantRow,
    MovementRow,
    Progress,
    Record,
    ResidentRow,
    RowProblem,
)
from services.wallet.ledger.models import Status
from services.wallet.payments import discounts, hooks, notify
from services.wallet.payments import service as payments
from services.wallet.payments.discounts import Discount, DiscountFunder, PaymentDiscount
from services.wallet.payments.hooks import OnPaid, OnRefunded
from services.wallet.payments.schemas import PaymentOut
from services.wallet.statements import service as statements
from services.wallet.statements.service import Activity, KindTotal, MonthActivity, RefundDay, SalesDay, UnusedBalance
from services.wallet.schemas import MerchantCreate as MerchantDetails
from shared.audit import Actor
from shared.clock import Clock
from shared.money import Unit

__all__ = [
    "Activity", "Actor", "Balance", "Discount", "DiscountFunder", "DiscountRecord", "HistoryBatch", "Imported", "KindTotal",
    "LineKind", "MerchantDetails", "MerchantNotFound", "MerchantProfile", "MerchantRow", "MonthActivity", "MovementRow",
    "OnPaid", "OnRefunded", "OnboardedBankAccount", "PaidPayment", "Payout", "Progress", "Record", "Redemption", "RefundDay",
    "RefundMade", "RequestedPayment", "ResidentRow", "RowProblem", "SalesDay", "ScannedStore", "Sector", "ShopStore",
    "SponsorBudget", "SponsorPayment", "StatementLine", "UnusedBalance", "activity", "balance", "check_history", "create_sponsor",
    "fund_sponsor", "import_history", "merchant", "onboarded_bank_accounts", "pay", "payers", "payment_discount",
    "post_notices", "post_payout", "publish_paid", "redeem_points", "refund", "region_codes", "region_id",
    "register_hooks", "resident_wallet_account", "residents", "resolve_qr", "sponsor", "sponsor_pays",
    "statement_lines", "statement_lines_before", "stores", "unused_balance",
]


# --- reading a scanned code ---------------------------------------------------------------------


@dataclass(frozen=True)
class RequestedPayment:
    """A dynamic code's payment request: one sale's amount, single use."""

    id: uuid.UUID
    amount: int
    order_reference: str
    status: str  # open | paid | cancelled
    expires_at: datetime


@dataclass(frozen=True)
class ScannedStore:
    region_id: uuid.UUID
    store_id: uuid.UUID
    merchant_id: uuid.UUID
    mcc: str
    merchant_name_ja: str
    store_name_ja: str
    request: RequestedPayment | None  # a dynamic code's; None for the printed static code


async def resolve_qr(session: AsyncSession, *, region: str, payload: str) -> ScannedStore:
    identity = await directory.region_identity(session, region)
    scanned = await payments.resolve_qr(session, identity, payload)
    store, request = scanned.store, scanned.request
    return ScannedStore(
        store.region_id, store.store_id, store.merchant_id, store.mcc, store.merchant_name_ja, store.name_ja,
        RequestedPayment(request.id, request.amount, request.order_reference, request.status, request.expires_at)
        if request else None,
    )


# --- paying ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiscountRecord:
    """A payment's discount: the price, the yen off, who gave them up, and (a sponsor's) the
    journal that paid the shop and what refunds have given back to the sponsor so far."""

    payment_id: uuid.UUID
    price: int
    discount: int
    funded_by: DiscountFunder
    sponsor_id: uuid.UUID | None
    credit_journal_id: uuid.UUID | None
    reversed: int
    reference: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: PaymentDiscount) -> DiscountRecord:
        return cls(row.payment_id, row.price, row.discount, DiscountFunder(row.funded_by), row.sponsor_id,
                   row.credit_journal_id, row.reversed, row.reference, row.created_at)


@dataclass(frozen=True)
class PaidPayment:
    id: uuid.UUID
    journal_id: uuid.UUID
    region_id: uuid.UUID
    merchant_id: uuid.UUID
    store_id: uuid.UUID
    wallet_account_id: uuid.UUID
    price: int
    amount: int  # what the resident paid: the price less the discount
    fee: int  # charged on `amount`
    point_amount: int  # of `amount`, paid in points
    reward_points: int  # given back by reward campaigns (hooks)
    discount: DiscountRecord | None
    created_at: datetime
    shop_notice: PaymentOut  # what the shop's terminals are told (publish_paid)


async def pay(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, payer: str, store_id: uuid.UUID,
    price: int | None, payment_request_id: uuid.UUID | None = None, discount: Discount | None = None,
    savepoint: bool = True,
) -> PaidPayment:
    identity = await directory.region_identity(session, region)
    async with session.begin_nested() if savepoint else contextlib.nullcontext():
        request = await payments.payment_request_at(session, store_id, payment_request_id) if payment_request_id else None
        payment, applied = await payments.pay_at_store(
            session, clock, region=identity, subject=payer, store_id=store_id, request=request, price=price,
            discount=discount, actor=actor.subject,
        )
    record = DiscountRecord.of(applied) if applied is not None else None
    return PaidPayment(
        payment.id, payment.journal_id, payment.region_id, payment.merchant_id, payment.store_id,
        payment.resident_account_id, payment.amount + (record.discount if record else 0), payment.amount, payment.fee,
        payment.point_amount, payment.reward_points, record, payment.created_at,
        PaymentOut.model_validate(payment),
    )


async def publish_paid(redis: Redis, paid: PaidPayment) -> None:
    await notify.publish_payment(redis, paid.shop_notice)


async def payment_discount(session: AsyncSession, *, region: str, payment_id: uuid.UUID) -> DiscountRecord | None:
    identity = await directory.region_identity(session, region)
    found = await discounts.recorded(session, identity.id, payment_id)
    return DiscountRecord.of(found) if found is not None else None


# --- refunding --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundMade:
    id: uuid.UUID
    journal_id: uuid.UUID
    payment_id: uuid.UUID
    merchant_id: uuid.UUID
    amount: int
    fee_returned: int
    sponsor_reversed: int  # of a sponsor's discount, back to the sponsor
    sponsor_journal_id: uuid.UUID | None
    refunded_total: int  # of the payment, with this refund
    created_at: datetime


async def refund(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, payment_id: uuid.UUID, amount: int,
    reason: str | None = None,
) -> RefundMade:
    identity = await directory.region_identity(session, region)
    async with session.begin_nested():
        made = await payments.refund_payment(
            session, clock, actor, region_id=identity.id, payment_id=payment_id, amount=amount, reason=reason
        )
    return RefundMade(
        made.refund_id, made.journal_id, made.payment.id, made.payment.merchant_id, amount, made.fee_returned,
        made.sponsor_reversed, made.sponsor_journal_id, made.payment.refunded_amount, made.created_at,
    )


# --- paying a merchant out ----------------------------------------------------------------------------

Payout = payments.Payout


async def post_payout(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, merchant_id: uuid.UUID, amount: int,
    reference: str | None = None, key: str | None = None, fee: int = 0,
) -> Payout:
    identity = await directory.region_identity(session, region)
    async with session.begin_nested():
        return await payments.post_payout(
            session, clock, actor, region_id=identity.id, merchant_id=merchant_id, amount=amount, reference=reference,
            key=key, fee=fee,
        )


Redemption = payments.Redemption


async def redeem_points(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, merchant_id: uuid.UUID, amount: int, key: str,
) -> Redemption:
    identity = await directory.region_identity(session, region)
    async with session.begin_nested():
        return await payments.redeem_points(
            session, clock, actor, region_id=identity.id, merchant_id=merchant_id, amount=amount, key=key,
        )


# --- statement lines ----------------------------------------------------------------------------------


class LineKind(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"
    TRANSFER_IN = "transfer_in"
    TRANSFER_OUT = "transfer_out"
    SPONSOR_CREDIT = "sponsor_credit"
    SPONSOR_REVERSAL = "sponsor_reversal"
    PAYOUT = "payout"
    PAYOUT_FEE = "payout_fee"  # an on-demand payout's fee (post_payout(fee=))
    SPONSOR_PAYMENT = "sponsor_payment"  # a sponsor paid the merchant outright (sponsor_pays)
    POINT_REDEMPTION = "point_redemption"  # its points redeemed into yen (redeem_points): a point and a yen line


@dataclass(frozen=True)
class StatementLine:
    """One movement of a merchant's balance, in the merchant's signs: `amount` is what it earns
    (+) or costs (−) before fees, `fee` the fee charged on it (negative: returned by a refund),
    `net` = amount − fee, what the balance moved."""

    journal_id: uuid.UUID
    merchant_id: uuid.UUID
    unit: str  # yen | point
    kind: LineKind
    amount: int
    fee: int
    net: int
    occurred_at: datetime
    payment_id: uuid.UUID | None  # payments, refunds, sponsor credits and reversals
    refund_id: uuid.UUID | None  # refunds and sponsor reversals
    counterparty_merchant_id: uuid.UUID | None  # transfers: the other merchant
    imported: bool = False  # from a previous platform (include_imported): settled there, never here
    source_key: str | None = None  # an imported line's id on the previous platform


async def statement_lines_before(
    session: AsyncSession, *, region: str, until: datetime, merchant_ids: Sequence[uuid.UUID],
    units: Sequence[str] = ("yen",),
) -> Select:
    identity = await directory.region_identity(session, region)
    return payments.statement_lines_before(identity.id, until, units, merchant_ids)


def _order(line: StatementLine) -> tuple[uuid.UUID, datetime, uuid.UUID, str]:
    return line.merchant_id, line.occurred_at, line.journal_id, line.unit


async def statement_lines(
    session: AsyncSession, *, region: str, since: datetime, until: datetime, merchant_id: uuid.UUID | None = None,
    include_imported: bool = False,
) -> AsyncIterator[StatementLine]:
    identity = await directory.region_identity(session, region)
    native = _native_lines(session, identity.id, since, until, merchant_id)
    if not include_imported:
        async for line in native:
            yield line
        return
    imported = _imported_lines(session, identity.id, since, until, merchant_id)
    # Both streams come in (merchant, time, journal, unit) order: merge them. (Imported history
    # ends before the region's own begins, but a merchant's lines interleave by merchant.)
    left, right = await anext(native, None), await anext(imported, None)
    while left is not None or right is not None:
        if right is None or (left is not None and _order(left) <= _order(right)):
            assert left is not None
            yield left
            left = await anext(native, None)
        else:
            yield right
            right = await anext(imported, None)


async def _native_lines(
    session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime, merchant_id: uuid.UUID | None
) -> AsyncIterator[StatementLine]:
    async for row in payments.statement_lines(session, region_id, since, until, merchant_id):
        yield StatementLine(
            row.journal_id, row.merchant_id, row.unit, LineKind(row.kind), row.amount, row.fee, row.net,
            row.occurred_at, row.payment_id, row.refund_id, row.counterparty_merchant_id,
        )


# --- activity --------------------------------------------------------------------------------------------


async def activity(session: AsyncSession, *, region: str, since: date, until: date) -> Activity:
    identity = await directory.region_identity(session, region)
    return await statements.activity(session, identity.id, since=since, until=until)


async def unused_balance(session: AsyncSession, *, region: str, at: datetime) -> UnusedBalance:
    identity = await directory.region_identity(session, region)
    return await statements.unused_balance(session, identity.id, at)


async def _imported_lines(
    session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime, merchant_id: uuid.UUID | None
) -> AsyncIterator[StatementLine]:
    async for row in history.sales_lines(session, region_id, since, until, merchant_id):
        assert row.merchant_id is not None
        sign = 1 if row.record == Record.PAYMENT else -1
        yield StatementLine(
            row.id, row.merchant_id, row.unit, LineKind.PAYMENT if sign > 0 else LineKind.REFUND, sign * row.amount,
            sign * row.fee, sign * (row.amount - row.fee), row.occurred_at, None, None, None, True, row.source_key,
        )


# --- importing history ----------------------------------------------------------------------------------


async def check_history(session: AsyncSession, clock: Clock, *, region: str, batch: HistoryBatch) -> list[RowProblem]:
    """Every problem `import_history` would refuse `batch` for; writes nothing."""
    found = await directory.hosted_region(session, region)
    return (await history.check(session, clock, found, batch)).problems



async def import_history(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, batch: HistoryBatch, batch_id: uuid.UUID,
    progress: Progress | None = None,
) -> Imported:
    found = await directory.hosted_region(session, region)
    async with session.begin_nested():
        return await history.write(session, clock, actor, found, batch, batch_id=batch_id, progress=progress)


# --- sponsors ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SponsorBudget:
    sponsor_id: uuid.UUID
    name: str
    name_ja: str
    account_id: uuid.UUID  # its `sponsor_budget` account
    budget: int  # yen left to fund discounts


def _budget(found: discounts.SponsorView) -> SponsorBudget:
    return SponsorBudget(found.sponsor.id, found.sponsor.name, found.sponsor.name_ja, found.budget_account.id, found.budget)


async def create_sponsor(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, name: str, name_ja: str
) -> SponsorBudget:
    identity = await directory.region_identity(session, region)
    async with session.begin_nested():
        return _budget(await discounts.create_sponsor(session, clock, actor, region_id=identity.id, name=name, name_ja=name_ja))


async def fund_sponsor(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, sponsor_id: uuid.UUID, amount: int
) -> SponsorBudget:
    identity = await directory.region_identity(session, region)
    async with session.begin_nested():
        _, found = await discounts.fund_sponsor(
            session, clock, actor, region_id=identity.id, sponsor_id=sponsor_id, amount=amount
        )
    return _budget(found)


async def sponsor(session: AsyncSession, *, region: str, sponsor_id: uuid.UUID) -> SponsorBudget:
    identity = await directory.region_identity(session, region)
    return _budget(await discounts.sponsor(session, identity.id, sponsor_id))


SponsorPayment = discounts.SponsorPayment


async def sponsor_pays(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, sponsor_id: uuid.UUID, merchant_id: uuid.UUID,
    amount: int, reference: str | None = None,
) -> SponsorPayment:
    identity = await directory.region_identity(session, region)
    async with session.begin_nested():
        return await discounts.pay_merchant(
            session, clock, actor, region_id=identity.id, sponsor_id=sponsor_id, merchant_id=merchant_id,
            amount=amount, reference=reference,
        )


# --- regions, merchants, residents and notices -----------------------------------------------------------


async def region_id(session: AsyncSession, *, region: str) -> uuid.UUID:
    return (await directory.region_identity(session, region)).id


async def region_codes(session: AsyncSession) -> list[str]:
    return [r.code for r in await directory.list_regions(session, after_id=None, limit=10_000)]


@dataclass(frozen=True)
class MerchantProfile:
    id: uuid.UUID
    region_id: uuid.UUID
    name: str
    name_ja: str
    sector: str
    status: str  # active | suspended | closed: only an active merchant is paid
    store_ids: tuple[uuid.UUID, ...]  # oldest first


async def merchant(session: AsyncSession, *, region: str, merchant_id: uuid.UUID) -> MerchantProfile:
    identity = await directory.region_identity(session, region)
    found = await directory.merchant(session, merchant_id)
    if found is None or found.region_id != identity.id:
        raise MerchantNotFound(f"No merchant {merchant_id} in region {identity.code}.")
    stores = await payments.stores(session, merchant_id)
    return MerchantProfile(
        found.id, found.region_id, found.name, found.name_ja, found.sector, found.status,
        tuple(store.id for store in stores),
    )


@dataclass(frozen=True)
class OnboardedBankAccount:
    merchant_id: uuid.UUID
    name_ja: str
    status: str  # active | suspended | closed
    bank_code: str  # 4 digits
    branch_code: str  # 3 digits
    account_type: int  # 全銀: 1 普通, 2 当座, 4 貯蓄
    account_number: str  # 7 digits
    holder_kana: str  # as given at onboarding (half-width katakana)


async def onboarded_bank_accounts(session: AsyncSession, *, region: str) -> list[OnboardedBankAccount]:
    found = await directory.hosted_region(session, region)
    merchants, after_id = [], None
    while page := await directory.list_merchants(session, found, after_id=after_id, limit=1_000):
        merchants += page
        after_id = page[-1].id
    return [
        OnboardedBankAccount(m.id, m.name_ja, m.status, m.bank_code, m.branch_code, m.account_type, m.account_number,
                             m.account_holder_kana)
        for m in reversed(merchants)
    ]


@dataclass(frozen=True)
class ShopStore:
    store_id: uuid.UUID
    merchant_id: uuid.UUID
    name_ja: str
    merchant_active: bool


async def stores(session: AsyncSession, *, region: str, store_ids: Sequence[uuid.UUID]) -> list[ShopStore]:
    identity = await directory.region_identity(session, region)
    return [
        ShopStore(store.id, shop.id, store.name_ja, shop.status == Status.ACTIVE)
        for store, shop in await payments.stores_in_region(session, identity.id, list(store_ids))
    ]


@dataclass(frozen=True)
class Balance:
    yen: int  # usable now (at some shop)
    points: int  # usable now (at some shop; some points only at local shops)


async def balance(session: AsyncSession, clock: Clock, *, region: str, subject: str) -> Balance:
    found = await directory.hosted_region(session, region)
    view = await statements.balance(session, clock, await directory.wallet_for(session, clock, found, subject))
    return Balance(view.usable[Unit.YEN.value], view.usable[Unit.POINT.value])


async def residents(session: AsyncSession, *, region: str, among: Collection[str] | None = None) -> list[str]:
    identity = await directory.region_identity(session, region)
    found = await directory.active_residents(session, identity.id, None if among is None else list(among))
    return [subject for _, subject in found]


async def resident_wallet_account(session: AsyncSession, clock: Clock, *, region: str, subject: str) -> uuid.UUID:
    found = await directory.hosted_region(session, region)
    async with session.begin_nested():
        return (await directory.wallet_for(session, clock, found, subject)).account.id


async def payers(
    session: AsyncSession, *, region: str, since: datetime, until: datetime, among: Collection[str],
    sectors: Collection[Sector] | None = None,
) -> list[str]:
    identity = await directory.region_identity(session, region)
    if not among:
        return []
    return await payments.payers(
        session, identity.id, since=since, until=until, among=list(among),
        sectors=None if sectors is None else [Sector(s).value for s in sectors],
    )


async def post_notices(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, subjects: Collection[str], kind: str,
    payload: dict[str, Any],
) -> int:
    identity = await directory.region_identity(session, region)
    async with session.begin_nested():
        return await directory.post_notices(
            session, clock, actor, region_id=identity.id, subjects=list(subjects), kind=kind, payload=payload
        )


# --- hooks --------------------------------------------------------------------------------------------------


def register_hooks(*, paid: OnPaid | None = None, refunded: OnRefunded | None = None) -> None:
    """For the composition root: run `paid` after every payment, `refunded` after every refund."""
    hooks.register(paid=paid, refunded=refunded)
