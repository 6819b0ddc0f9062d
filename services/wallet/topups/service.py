"""Top-ups and cash-outs: issuance journals against the region's bank clearing or counter cash
account, and the lots a top-up creates."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.directory import service as directory
from services.wallet.directory.errors import WalletNotFound
from services.wallet.directory.models import Region
from services.wallet.ledger import lots
from services.wallet.ledger import service as ledger
from services.wallet.ledger.errors import InsufficientBalance
from services.wallet.ledger.models import AccountKind, JournalKind, LotSource
from services.wallet.topups import repository as repo
from services.wallet.topups.errors import (
    AmountAboveMaximum,
    AmountBelowMinimum,
    AmountNotMultipleOfStep,
    WebhookReplayed,
)
from shared import audit, webhooks
from shared.audit import Actor
from shared.clock import Clock
from shared.config import Settings
from shared.ids import new_id
from shared.money import Unit

# --- top-ups and cash-outs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Movement:
    journal_id: uuid.UUID
    wallet_id: uuid.UUID
    amount: int
    balance_after: int
    created_at: datetime


def check_topup_amount(region: Region, amount: int) -> None:
    if amount < region.topup_min:
        raise AmountBelowMinimum(f"The smallest top-up is {region.topup_min} yen.", minimum=region.topup_min)
    if amount > region.topup_max:
        raise AmountAboveMaximum(f"The largest top-up is {region.topup_max} yen.", maximum=region.topup_max)
    if amount % region.topup_step:
        raise AmountNotMultipleOfStep(f"Top-ups go in steps of {region.topup_step} yen.", step=region.topup_step)


async def _topup(
    session: AsyncSession, clock: Clock, wallet: directory.Wallet, source: AccountKind, amount: int, *,
    actor: str, reference: str | None, memo: str | None,
) -> Movement:
    check_topup_amount(wallet.region, amount)
    issuer = await ledger.system_account(session, wallet.region.id, source, wallet.account.unit)
    posted = await ledger.post_journal(
        session, clock, region_id=wallet.region.id, kind=JournalKind.TOPUP, actor=actor,
        legs=[ledger.Leg(wallet.account, amount, ceiling=wallet.region.balance_cap), ledger.Leg(issuer, -amount)],
        reference=reference, memo=memo,
    )
    months = wallet.region.coin_expiry_months
    expires_at = lots.end_of_months_after(posted.created_at, months) if months else None
    await lots.issue(
        session, account=wallet.account, amount=amount, source=LotSource.TOPUP, journal_id=posted.journal_id,
        rule=lots.LotRule(expires_at=expires_at), now=posted.created_at,
    )
    return Movement(posted.journal_id, wallet.account.id, amount, posted.balances_after[wallet.account.id], posted.created_at)


async def counter_topup(
    session: AsyncSession, clock: Clock, actor: Actor, wallet: directory.Wallet, amount: int, memo: str | None
) -> Movement:
    """チャージ at a city counter: cash in hand, recorded by an operator."""
    movement = await _topup(
        session, clock, wallet, AccountKind.COUNTER_CASH, amount,
        actor=actor.subject, reference=None, memo=memo,
    )
    await audit.record(
        session, clock, actor, region_id=wallet.region.id, action="wallet.topup.counter",
        target_type="account", target_id=wallet.account.id,
        after={"amount": amount, "journal_id": str(movement.journal_id), "balance_after": movement.balance_after},
    )
    return movement


def verify_bank_signature(settings: Settings, clock: Clock, timestamp: str, signature: str, body: bytes) -> None:
    """The bank signs by the scheme of every webhook (shared/webhooks.py) with the bank's secret."""
    webhooks.verify(
        settings.bank_webhook_secret, timestamp, signature, body, now=clock.now(),
        tolerance_seconds=settings.bank_webhook_tolerance_seconds,
    )


async def bank_topup(
    session: AsyncSession, clock: Clock, *, event_id: str, account_id: uuid.UUID, amount: int
) -> Movement:
    """チャージ from a linked bank account, announced by the bank's signed webhook."""
    found = await directory.wallet(session, account_id)
    if found is None:
        raise WalletNotFound(f"No wallet {account_id}.")
    resident, account = found
    region = await directory.region_by_id(session, account.region_id)
    movement = await _topup(
        session, clock, directory.Wallet(resident, account, region, await directory.resident_account(session, resident.id, Unit.POINT.value)),
        AccountKind.BANK_CLEARING, amount,
        actor="bank", reference=event_id, memo=None,
    )
    # A replayed event id conflicts here and the whole transaction, top-up included, rolls back.
    if not await repo.insert_bank_event(
        session, id=new_id(), region_id=region.id, event_id=event_id, journal_id=movement.journal_id,
        received_at=clock.now(),
    ):
        raise WebhookReplayed(f"Bank event {event_id!r} was already processed.", event_id=event_id)
    return movement


async def cashout(
    session: AsyncSession, clock: Clock, actor: Actor, wallet: directory.Wallet, amount: int, reason: str
) -> Movement:
    """払戻し: prepaid value paid back to the resident's bank account, only in the cases the law
    allows (moving away, service closure); recorded by an operator."""
    account_id = wallet.account.id
    clearing = await ledger.system_account(session, wallet.region.id, AccountKind.BANK_CLEARING, wallet.account.unit)
    posted = await ledger.post_journal(
        session, clock, region_id=wallet.region.id, kind=JournalKind.CASHOUT, actor=actor.subject,
        legs=[ledger.Leg(wallet.account, -amount), ledger.Leg(clearing, amount)], reference=reason,
    )
    # Behind the wallet's lock, taken by the posting: any coin lot that is not expired.
    if await lots.take_coin(session, wallet.account, amount, now=posted.created_at, unrestricted_only=False) is None:
        usable = await lots.usable_total(session, wallet.account, now=posted.created_at, unrestricted_only=False)
        raise InsufficientBalance(
            f"Only {usable} yen of the balance has not expired; {amount} was asked.", balance=usable, required=amount
        )
    movement = Movement(posted.journal_id, account_id, amount, posted.balances_after[account_id], posted.created_at)
    await audit.record(
        session, clock, actor, region_id=wallet.region.id, action="wallet.cashout",
        target_type="account", target_id=account_id,
        after={"amount": amount, "reason": reason, "journal_id": str(movement.journal_id),
               "balance_after": movement.balance_after},
    )
    return movement
