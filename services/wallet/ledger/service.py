"""Posting: `post_journal`, the one way Python moves value (the hot paths' database functions
write journals too, and the database checks both alike at commit).

Functions take the request's session and flush; the request dependency commits once."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.ledger import repository as repo
from services.wallet.ledger.errors import AccountInactive, BalanceCapExceeded, InsufficientBalance
from services.wallet.ledger.models import (
    ISSUANCE_JOURNALS,
    ISSUANCE_KINDS,
    JOURNAL_LEGS,
    REDEMPTION_LEGS,
    Account,
    AccountKind,
    JournalKind,
    Status,
)
from shared.clock import Clock
from shared.ids import new_id

# --- posting: the one way value moves ----------------------------------------------------------


@dataclass(frozen=True)
class Leg:
    account: Account
    amount: int  # what the account gains (+) or gives up (−)
    ceiling: int | None = None  # a balance the account may not exceed (the wallet cap)
    # A debit the caller has already set aside cover for (a premium set in stock is backed by the
    # campaign budget when it is stocked): appended without locking or summing the account.
    covered: bool = False


@dataclass(frozen=True)
class Posted:
    journal_id: uuid.UUID
    created_at: datetime
    balances_after: dict[uuid.UUID, int]  # for balance-tracking accounts


def lock_order(leg: Leg) -> tuple[bool, uuid.UUID]:
    return leg.account.kind != AccountKind.RESIDENT, leg.account.id


async def post_journal(
    session: AsyncSession,
    clock: Clock,
    *,
    region_id: uuid.UUID,
    kind: JournalKind,
    actor: str,
    legs: Sequence[Leg],
    reference: str | None = None,
    memo: str | None = None,
    even_if_inactive: bool = False,
    journal_id: uuid.UUID | None = None,
) -> Posted:
    """Record one immutable journal. Checks and locks residents' wallet accounts first, then the
    others, each in account-id order — the order every posting takes (a payment holds its wallet
    when it draws a reward from a campaign budget) — so two journals never deadlock; refuses (and
    changes nothing) if any debit would overdraw, any credit would pass its ceiling, or any
    account is not active (unless `even_if_inactive`: expiry follows the rules a lot was given,
    whatever the wallet's status). `journal_id`: the id a record written before it names (a
    payment's discount record names its sponsor's credit journal); else a new one."""
    _assert_balanced(region_id, kind, legs)
    balances_after: dict[uuid.UUID, int] = {}
    for leg in sorted(legs, key=lock_order):
        account = leg.account
        if account.status != Status.ACTIVE and not even_if_inactive:
            raise AccountInactive(f"The {account.kind} account is {account.status}.", account_id=str(account.id))
        if account.tracks_balance:
            balance = await repo.apply_to_tracked(
                session, account.id, leg.amount, leg.ceiling, even_if_inactive=even_if_inactive
            )
            if balance is None:
                raise await _refusal(session, leg)
            balances_after[account.id] = balance
        elif leg.amount < 0 and not account.may_go_negative and not leg.covered:
            available = await repo.lock_and_sum(session, account.id)
            if available + leg.amount < 0:
                raise InsufficientBalance(
                    f"The {account.kind} account holds {available}; {-leg.amount} is needed.",
                    balance=available,
                    required=-leg.amount,
                )
    journal_id, now = journal_id or new_id(), clock.now()
    await repo.insert_journal(
        session,
        {"id": journal_id, "region_id": region_id, "kind": kind.value, "actor": actor,
         "reference": reference, "memo": memo, "created_at": now},
        [
            {"id": new_id(), "journal_id": journal_id, "account_id": leg.account.id, "region_id": region_id,
             "unit": leg.account.unit, "amount": leg.amount,
             "balance_after": balances_after.get(leg.account.id), "created_at": now}
            for leg in legs
        ],
    )
    return Posted(journal_id, now, balances_after)


def _assert_balanced(region_id: uuid.UUID, kind: JournalKind, legs: Sequence[Leg]) -> None:
    """Programming errors, not user errors: fail loudly (invariants 1 and 4)."""
    assert len(legs) >= 2, "a journal moves value between two or more accounts"
    assert len({leg.account.id for leg in legs}) == len(legs), "one leg per account"
    totals: dict[str, int] = defaultdict(int)
    for leg in legs:
        assert isinstance(leg.amount, int) and leg.amount != 0, f"bad leg amount {leg.amount!r}"
        assert leg.account.region_id == region_id, "a journal stays inside one region"
        totals[leg.account.unit] += leg.amount
        if AccountKind(leg.account.kind) in ISSUANCE_KINDS:
            assert kind in ISSUANCE_JOURNALS, f"{kind} may not touch {leg.account.kind}"
    assert all(total == 0 for total in totals.values()), f"journal does not balance: {dict(totals)}"
    if kind in JOURNAL_LEGS:
        giver, gainer = JOURNAL_LEGS[kind]
        shape = sorted((leg.amount > 0, leg.account.kind) for leg in legs)
        assert shape == [(False, giver), (True, gainer)], f"a {kind} journal moves {giver} to {gainer}, not {shape}"
    if kind is JournalKind.POINT_REDEMPTION:
        legs_shape = sorted((leg.account.kind, leg.account.unit, 1 if leg.amount > 0 else -1) for leg in legs)
        assert legs_shape == sorted((k.value, u.value, s) for k, u, s in REDEMPTION_LEGS), \
            f"a point redemption moves {legs_shape}"
        assert len({abs(leg.amount) for leg in legs}) == 1, "a point redemption moves one amount"
        assert len({leg.account.merchant_id for leg in legs if leg.account.kind == AccountKind.MERCHANT}) == 1, \
            "a point redemption is one merchant's"


async def _refusal(session: AsyncSession, leg: Leg) -> Exception:
    current = await repo.account(session, leg.account.id)
    assert current is not None
    await session.refresh(current)
    if current.status != Status.ACTIVE:
        return AccountInactive(f"The account is {current.status}.", account_id=str(current.id))
    if leg.amount < 0:
        return InsufficientBalance(
            f"The balance is {current.balance}; {-leg.amount} is needed.",
            balance=current.balance,
            required=-leg.amount,
        )
    return BalanceCapExceeded(
        f"The balance is {current.balance}; adding {leg.amount} would pass the cap of {leg.ceiling}.",
        balance=current.balance,
        balance_cap=leg.ceiling,
    )


# Queries the modules above use as they are: they call this service, never the repository.
Violation = repo.Violation
account = repo.account
accounts = repo.accounts
change_lot_remaining = repo.change_lot_remaining
entries_sum = repo.entries_sum
expired_lots = repo.expired_lots
find_violations = repo.find_violations
history = repo.history
insert_account = repo.insert_account
live_lots = repo.live_lots
lock_accounts = repo.lock_accounts
lock_available = repo.lock_available
lot = repo.lot
lots_expiring_between = repo.lots_expiring_between
system_account = repo.system_account
system_accounts = repo.system_accounts
update_account_status = repo.update_account_status
