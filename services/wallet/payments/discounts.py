"""Discounts on payments, and the sponsors who fund some of them.

A discount lowers the price: the resident pays price − discount, which is the payment's amount,
and the fee is charged on it as on any payment (wallet.pay). Who gives the discount up is explicit:

- the shop (`shop`): nothing more moves; the shop took less, and the discount is recorded;
- a sponsor (`sponsor`): the sponsor's budget pays the shop the discount by a `sponsor_credit`
  journal in the payment's transaction, with no fee on it (the fee was charged on what the
  resident paid). A budget that cannot cover the discount refuses it, and the payment with it.

Sponsors. A sponsor (a city campaign, a shopping-street association …) holds a budget account of
kind `sponsor_budget` in yen. The city funds it from the region's yen campaign fund by a
`funding` journal, the way campaign budgets are funded in points, so a sponsor can only give
what was issued to it. The budget keeps its balance on its row and a credit is one conditional
update: it can never go negative, and the credits of one sponsor queue on that row for the rest
of their transaction (those of different sponsors do not meet). A payment takes the sponsor's
row after the payer's accounts and before any reward campaign's budget (its hooks run after),
and a refund the same way, so the two never wait on each other in opposite orders.

A sponsor may also pay a merchant outright for something the merchant gives a resident on the
sponsor's account, with no payment of the resident's (a bus fare granted in a bundle of coupons):
a `sponsor_payment` journal from the budget to the merchant, by the same conditional update, so a
short budget refuses it and nothing moves; no fee (no resident paid).

Refunds give the sponsor back its share of the discount, pro rata on the running totals as the
fee: after refunds totalling R of a payment of amount A with a sponsor discount D, the shop has
paid back floor(D × R / A) by `sponsor_reversal` journals, so a full refund returns all of it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.directory import service as directory
from services.wallet.directory.errors import MerchantNotFound
from services.wallet.ledger import service as ledger
from services.wallet.ledger.errors import InsufficientBalance
from services.wallet.ledger.models import Account, AccountKind, JournalKind, Status
from services.wallet.payments import repository as repo
from services.wallet.payments.errors import (
    InvalidAmount,
    InvalidDiscount,
    MerchantInactive,
    SponsorBudgetExhausted,
    SponsorNameTaken,
    SponsorNotFound,
)
from services.wallet.payments.models import DiscountFunder, Payment, PaymentDiscount, Sponsor
from shared import audit
from shared.audit import Actor
from shared.clock import Clock
from shared.ids import new_id
from shared.money import Unit


@dataclass(frozen=True)
class Discount:
    """Yen off a payment's price, and who gives them up."""

    amount: int
    funded_by: DiscountFunder
    sponsor_id: uuid.UUID | None = None  # the sponsor whose budget pays the shop (funded_by sponsor)
    reference: str | None = None  # the caller's, kept with the discount (e.g. a coupon redemption id)


def check(discount: Discount, price: int) -> None:
    if not 0 < discount.amount < price:
        raise InvalidDiscount(
            f"A discount is more than 0 and less than the price ({price} yen), not {discount.amount}; "
            "a free item is redeemed without a payment.", price=price, discount=discount.amount,
        )
    if (discount.funded_by == DiscountFunder.SPONSOR) != (discount.sponsor_id is not None):
        raise InvalidDiscount("A sponsor's discount names its sponsor; a shop's discount names none.")


async def budget_for(session: AsyncSession, region_id: uuid.UUID, discount: Discount) -> Account | None:
    """The budget that pays a sponsor's discount (None for the shop's), found before any write."""
    if discount.sponsor_id is None:
        return None
    return (await sponsor(session, region_id, discount.sponsor_id)).budget_account


def pay_arguments(discount: Discount | None, credit_journal_id: uuid.UUID | None, actor: str | None) -> dict:
    """What `wallet.pay` records the payment's discount from (NULLs: no discount). A sponsor's
    names the journal `apply` posts next by `credit_journal_id`."""
    return {
        "discount": discount.amount if discount else None,
        "discount_funder": discount.funded_by.value if discount else None,
        "sponsor_id": discount.sponsor_id if discount else None,
        "credit_journal_id": credit_journal_id,
        "discount_reference": discount.reference if discount else None,
        "discount_by": actor if discount else None,
    }


async def apply(
    session: AsyncSession, clock: Clock, *, payment: Payment, discount: Discount, budget: Account | None,
    credit_journal_id: uuid.UUID | None, actor: str,
) -> PaymentDiscount:
    """For a sponsor's discount of a payment just written (with its record, by `wallet.pay`), pay
    the shop by the journal the record names; the record, as written. It carries the payment's
    time, so a statement puts the credit in the payment's period."""
    if budget is not None:
        assert credit_journal_id is not None, "a sponsor's discount names its credit journal"
        merchant = await directory.merchant_account(session, payment.merchant_id, Unit.YEN.value)
        try:
            await ledger.post_journal(
                session, clock, region_id=payment.region_id, kind=JournalKind.SPONSOR_CREDIT, actor=actor,
                legs=[ledger.Leg(budget, -discount.amount), ledger.Leg(merchant, discount.amount)],
                reference=str(payment.id), journal_id=credit_journal_id,
            )
        except InsufficientBalance as exc:
            raise SponsorBudgetExhausted(
                f"The sponsor's budget holds {exc.extra['balance']} yen; the discount is {discount.amount}.",
                budget=exc.extra["balance"], discount=discount.amount,
            ) from None
    return PaymentDiscount(
        payment_id=payment.id, region_id=payment.region_id, merchant_id=payment.merchant_id,
        price=payment.amount + discount.amount, discount=discount.amount, funded_by=discount.funded_by.value,
        sponsor_id=discount.sponsor_id, credit_journal_id=credit_journal_id, reversed=0,
        reference=discount.reference, created_by=actor, created_at=payment.created_at,
    )


@dataclass(frozen=True)
class Reversal:
    amount: int
    journal_id: uuid.UUID | None


async def reverse_share(
    session: AsyncSession, clock: Clock, *, payment: Payment, refunded_total: int, actor: str
) -> Reversal:
    """The sponsor's share of a refund that brings the refunds of `payment` (locked, totals not
    yet updated) to `refunded_total`, paid back by the shop."""
    found = await repo.payment_discount(session, payment.id)
    if found is None or found.sponsor_id is None:
        return Reversal(0, None)
    back = found.discount * refunded_total // payment.amount - found.reversed
    if back == 0:
        return Reversal(0, None)
    budget = await repo.sponsor_budget(session, found.sponsor_id)
    merchant = await directory.merchant_account(session, payment.merchant_id, Unit.YEN.value)
    posted = await ledger.post_journal(
        session, clock, region_id=payment.region_id, kind=JournalKind.SPONSOR_REVERSAL, actor=actor,
        legs=[ledger.Leg(merchant, -back), ledger.Leg(budget, back)], reference=str(payment.id),
    )
    await repo.add_discount_reversed(session, payment.id, back)
    return Reversal(back, posted.journal_id)


async def recorded(session: AsyncSession, region_id: uuid.UUID, payment_id: uuid.UUID) -> PaymentDiscount | None:
    """The discount of a payment of the region, if it had one."""
    found = await repo.payment_discount(session, payment_id)
    return found if found is not None and found.region_id == region_id else None


@dataclass(frozen=True)
class SponsorPayment:
    journal_id: uuid.UUID
    sponsor_id: uuid.UUID
    merchant_id: uuid.UUID
    amount: int
    budget: int  # yen left in the sponsor's budget after it
    created_at: datetime


async def pay_merchant(
    session: AsyncSession, clock: Clock, actor: Actor, *, region_id: uuid.UUID, sponsor_id: uuid.UUID,
    merchant_id: uuid.UUID, amount: int, reference: str | None,
) -> SponsorPayment:
    """The sponsor's budget pays the merchant `amount` yen (module docstring); refuses
    invalid-amount, sponsor-not-found, merchant-not-found, merchant-inactive (an inactive shop is
    not paid for what it can no longer give) and sponsor-budget-exhausted, before anything moves."""
    if amount <= 0:
        raise InvalidAmount(f"A sponsor pays a positive number of yen, not {amount}.")
    found = await sponsor(session, region_id, sponsor_id)
    merchant = await directory.merchant(session, merchant_id)
    if merchant is None or merchant.region_id != region_id:
        raise MerchantNotFound(f"No merchant {merchant_id} in this region.")
    if merchant.status != Status.ACTIVE:
        raise MerchantInactive(f"{merchant.name_ja} is {merchant.status}; it is paid for nothing new.")
    account = await directory.merchant_account(session, merchant_id, Unit.YEN.value)
    try:
        posted = await ledger.post_journal(
            session, clock, region_id=region_id, kind=JournalKind.SPONSOR_PAYMENT, actor=actor.subject,
            legs=[ledger.Leg(found.budget_account, -amount), ledger.Leg(account, amount)], reference=reference,
        )
    except InsufficientBalance as exc:
        raise SponsorBudgetExhausted(
            f"The sponsor's budget holds {exc.extra['balance']} yen; {amount} is to be paid.",
            budget=exc.extra["balance"], required=amount,
        ) from None
    budget = posted.balances_after[found.budget_account.id]
    await audit.record(
        session, clock, actor, region_id=region_id, action="sponsor.pay", target_type="sponsor", target_id=sponsor_id,
        after={"merchant_id": str(merchant_id), "amount": amount, "journal_id": str(posted.journal_id),
               "reference": reference, "budget": budget},
    )
    return SponsorPayment(posted.journal_id, sponsor_id, merchant_id, amount, budget, posted.created_at)


# --- sponsors ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SponsorView:
    sponsor: Sponsor
    budget_account: Account
    budget: int  # yen left to fund discounts


async def sponsor(session: AsyncSession, region_id: uuid.UUID, sponsor_id: uuid.UUID) -> SponsorView:
    found = await repo.sponsor_with_budget(session, sponsor_id)
    if found is None or found[0].region_id != region_id:
        raise SponsorNotFound(f"No sponsor {sponsor_id} in this region.")
    return SponsorView(found[0], found[1], found[1].balance)


async def create_sponsor(
    session: AsyncSession, clock: Clock, actor: Actor, *, region_id: uuid.UUID, name: str, name_ja: str
) -> SponsorView:
    now = clock.now()
    created = await repo.insert_sponsor(
        session, id=new_id(), region_id=region_id, name=name, name_ja=name_ja, created_by=actor.subject, created_at=now,
    )
    if created is None:
        raise SponsorNameTaken(f"{name!r} is already a sponsor in this region.")
    budget = await ledger.insert_account(
        session, id=new_id(), region_id=region_id, kind=AccountKind.SPONSOR_BUDGET.value, unit=Unit.YEN.value,
        sponsor_id=created.id, status=Status.ACTIVE.value, tracks_balance=True, may_go_negative=False, created_at=now,
    )
    await audit.record(
        session, clock, actor, region_id=region_id, action="sponsor.create", target_type="sponsor",
        target_id=created.id, after={"name": name, "name_ja": name_ja, "budget_account_id": str(budget.id)},
    )
    return SponsorView(created, budget, 0)


async def fund_sponsor(
    session: AsyncSession, clock: Clock, actor: Actor, *, region_id: uuid.UUID, sponsor_id: uuid.UUID, amount: int
) -> tuple[uuid.UUID, SponsorView]:
    """The city puts `amount` yen into the sponsor's budget from its yen campaign fund."""
    if amount <= 0:
        raise InvalidAmount(f"A sponsor is funded with a positive number of yen, not {amount}.")
    found = await sponsor(session, region_id, sponsor_id)
    fund = await ledger.system_account(session, region_id, AccountKind.CAMPAIGN_FUND, Unit.YEN.value)
    posted = await ledger.post_journal(
        session, clock, region_id=region_id, kind=JournalKind.FUNDING, actor=actor.subject,
        legs=[ledger.Leg(fund, -amount), ledger.Leg(found.budget_account, amount)], reference=str(sponsor_id),
    )
    budget = posted.balances_after[found.budget_account.id]
    await audit.record(
        session, clock, actor, region_id=region_id, action="sponsor.fund", target_type="sponsor", target_id=sponsor_id,
        after={"amount": amount, "journal_id": str(posted.journal_id), "budget": budget},
    )
    return posted.journal_id, SponsorView(found.sponsor, found.budget_account, budget)

