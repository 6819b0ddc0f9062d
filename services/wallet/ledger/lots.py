"""Value lots: what a resident's balance is made of, and the rules each part carries.

Every top-up, premium set, grant and reward creates a lot in the resident's account of its unit —
`yen` (coin: paid-in money, counted in the unused prepaid balance) or `point` (free value). A lot
may be restricted to merchant classes (Aizu's 地元専用 half may only be spent at local shops),
usable only from a date, and expire. A wallet account's balance is always the sum of its lots'
`remaining`; `ledger verify` checks it.

**Spending order.** A payment takes the lots that may pay at that merchant at that moment in
the order of `wallet.spending_key` (services/wallet/ledger/sql/spending_key.sql: the one place
the order is written, with its reasons). If the eligible lots do not cover the amount, the
payment is refused with what is eligible; it is never paid from a lot that may not pay there.
Other spends (cash-out, a premium set bought with coin) take coin lots in the same order.

**Refunds** restore the lots a payment took, in reverse spending order (the last lot taken is
restored first). The share of a lot that has expired by then goes to the expiry account instead.

**Expiry.** A lot expires at midnight Asia/Tokyo (its `expires_at` is the first instant it is no
longer usable). "N months after the charge month" means the end of the Nth month after the
month of the top-up: charged on 2026-11-23 with N = 6, it expires at 2027-06-01 00:00 Tokyo.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.ledger import repository as repo
from services.wallet.ledger.models import Account, Lot, LotSource
from shared.clock import TOKYO, tokyo_date
from shared.ids import new_id


@dataclass(frozen=True)
class LotRule:
    """What a new lot may be spent on and until when."""

    restriction: Sequence[str] | None = None  # merchant class codes; None: every merchant
    usable_from: datetime | None = None
    expires_at: datetime | None = None


def end_of_months_after(at: datetime, months: int) -> datetime:
    """Midnight (Tokyo) after the last day of the `months`-th month after the month of `at`."""
    day = tokyo_date(at)
    index = day.year * 12 + (day.month - 1) + months + 1
    return datetime.combine(day.replace(year=index // 12, month=index % 12 + 1, day=1), time(), TOKYO)


async def issue(
    session: AsyncSession,
    *,
    account: Account,
    amount: int,
    source: LotSource,
    journal_id: uuid.UUID | None,
    rule: LotRule,
    now: datetime,
    campaign_id: uuid.UUID | None = None,
) -> Lot:
    """A new lot of `amount` in `account` (whose balance the caller's journal has just raised)."""
    assert amount > 0 and account.kind == "resident", "lots belong to resident accounts"
    return await repo.insert_lot(
        session,
        id=new_id(), region_id=account.region_id, account_id=account.id, unit=account.unit, source=source.value,
        campaign_id=campaign_id, journal_id=journal_id,
        restriction=list(rule.restriction) if rule.restriction is not None else None,
        usable_from=rule.usable_from, expires_at=rule.expires_at, amount=amount, remaining=amount, expired=0,
        created_at=now,
    )


@dataclass(frozen=True)
class Taken:
    lot_id: uuid.UUID
    unit: str
    amount: int


async def take_coin(session: AsyncSession, account: Account, amount: int, *, now: datetime,
                    unrestricted_only: bool) -> list[Taken] | None:
    """Take `amount` from the coin lots of `account` (whose row the caller has locked), in
    spending order; None (and nothing taken) if the usable lots do not cover it."""
    lots = await repo.usable_lots(session, [account.id], now=now, merchant_class=None,
                                  unrestricted_only=unrestricted_only)
    if sum(lot.remaining for lot in lots) < amount:
        return None
    taken: list[Taken] = []
    left = amount
    for lot in lots:
        part = min(lot.remaining, left)
        await repo.change_lot_remaining(session, lot.id, -part)
        taken.append(Taken(lot.id, lot.unit, part))
        left -= part
        if left == 0:
            break
    return taken


async def usable_total(session: AsyncSession, account: Account, *, now: datetime, unrestricted_only: bool) -> int:
    lots = await repo.usable_lots(session, [account.id], now=now, merchant_class=None,
                                  unrestricted_only=unrestricted_only)
    return sum(lot.remaining for lot in lots)
