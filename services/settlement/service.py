"""Settlement's foundations: the cycle each merchant is settled on, the bank account its payouts
go to, and the region's source account and payout settings, as a settlement run reads them.

**Cycles.** The operator sets a merchant's cycle (periods.py: monthly, twice monthly, on demand);
without one a merchant is settled monthly. A change takes effect at once and is a new row, never
an edit: `cycles_at(at=period.end)` tells a run, whenever it runs, which merchants the period
is theirs. Since a run settles every line not yet settled (periods.py, the grace period), a
merchant that changes cycle mid-period is neither paid twice nor skipped.

**Payout accounts.** The operator or the merchant's admin sets the account (bank code, branch
code, 普通/当座/貯蓄, account number, holder name). Codes are checked against the zengin-code
data and the holder name turned into the transfer file's characters (zengin.to_zengin) before
anything is stored; a refusal stores nothing. Because bank data changes (mergers, closed
branches), a run asks again when it pays: `accounts_for` gives the payable merchants with the
file's view of their accounts and holds back, with the reason, those without one or whose
bank or branch has disappeared. Never a silent drop.

**The source account.** The consortium's account the money leaves from, with the 委託者コード its
bank gave it: the transfer file's header (`requester`).

Service functions take the region (its code), an explicit `Actor` and the merchant's id; who may
see or do what is access.py's, which the endpoints ask first. Changes are audited.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.settlement import banks, zengin
from services.settlement import repository as repo
from services.settlement.errors import (
    BankCodeUnknown,
    BranchCodeUnknown,
    DayOutOfRange,
    HolderNameInvalid,
    PayoutAccountNotFound,
    RequesterNameInvalid,
    SourceAccountNotFound,
)
from services.settlement.models import PayoutAccount, SourceAccount
from services.settlement.periods import FIRST_DAY, LAST_DAY, Cycle, Period, period_for
from services.settlement.zengin import AccountType
from services.wallet import public
from shared import audit
from shared.audit import Actor
from shared.clock import Clock
from shared.errors import Problem
from shared.ids import new_id

DEFAULT_CYCLE = Cycle.MONTHLY
HOLDER_NAME_MAX = 30  # the data record's payee name
REQUESTER_NAME_MAX = 40  # the header's requester name


# --- cycles -------------------------------------------------------------------------------------------


def period_of(cycle: Cycle, day: date) -> Period:
    """`periods.period_for`, refusing day-out-of-range for a day settlement has no period for."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise DayOutOfRange(f"{day} is outside {FIRST_DAY} to {LAST_DAY}.")
    return period_for(cycle, day)


@dataclass(frozen=True)
class CycleView:
    merchant_id: uuid.UUID
    cycle: Cycle
    effective_at: datetime | None  # None: never set, the default
    set_by: str | None


async def set_cycle(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, merchant_id: uuid.UUID, cycle: Cycle
) -> CycleView:
    """Settle the merchant on `cycle` from now on. Setting the cycle in force changes nothing."""
    merchant = await public.merchant(session, region=region, merchant_id=merchant_id)
    now = clock.now()
    before = await cycle_of(session, region=region, merchant_id=merchant.id, at=now)
    if before.cycle == cycle and before.effective_at is not None:
        return before
    row = await repo.insert_cycle(
        session, id=new_id(), region_id=merchant.region_id, merchant_id=merchant.id, cycle=Cycle(cycle).value,
        effective_at=now, set_by=actor.subject,
    )
    await audit.record(
        session, clock, actor, region_id=merchant.region_id, action="settlement_cycle.set", target_type="merchant",
        target_id=merchant.id, before={"cycle": before.cycle.value}, after={"cycle": row.cycle},
    )
    return CycleView(merchant.id, Cycle(row.cycle), row.effective_at, row.set_by)


async def cycle_of(session: AsyncSession, *, region: str, merchant_id: uuid.UUID, at: datetime) -> CycleView:
    """The merchant's cycle in force at `at` (the merchant is the region's: checked by the caller)."""
    region_id = await public.region_id(session, region=region)
    found = (await repo.cycles_at(session, region_id, [merchant_id], at)).get(merchant_id)
    if found is None:
        return CycleView(merchant_id, DEFAULT_CYCLE, None, None)
    return CycleView(merchant_id, Cycle(found.cycle), found.effective_at, found.set_by)


async def cycles_at(
    session: AsyncSession, *, region: str, merchant_ids: Sequence[uuid.UUID], at: datetime
) -> dict[uuid.UUID, Cycle]:
    """Each merchant's cycle in force at `at`: a run passes its period's end, and settles in it
    the merchants whose cycle is the period's."""
    region_id = await public.region_id(session, region=region)
    found = await repo.cycles_at(session, region_id, merchant_ids, at)
    return {m: Cycle(found[m].cycle) if m in found else DEFAULT_CYCLE for m in merchant_ids}


async def cycle_history(session: AsyncSession, *, region: str, merchant_id: uuid.UUID) -> list[CycleView]:
    region_id = await public.region_id(session, region=region)
    return [CycleView(r.merchant_id, Cycle(r.cycle), r.effective_at, r.set_by)
            for r in await repo.cycle_history(session, region_id, merchant_id)]


# --- payout accounts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BankDetails:
    """An account as a person gives it (the codes are digits of the right length already: the API's schema)."""

    bank_code: str
    branch_code: str
    account_type: AccountType
    account_number: str


def _branch(details: BankDetails | PayoutAccount | SourceAccount) -> banks.Branch:
    """The bank's branch, or the refusal that names which code is unknown."""
    if not banks.bank_known(details.bank_code):
        raise BankCodeUnknown(f"No bank has the code {details.bank_code}.", bank_code=details.bank_code)
    found = banks.branch(details.bank_code, details.branch_code)
    if found is None:
        raise BranchCodeUnknown(
            f"Bank {details.bank_code} has no branch {details.branch_code}.", bank_code=details.bank_code,
            branch_code=details.branch_code,
        )
    return found


def _transferable(name: str, width: int, refusal: type[Problem]) -> str:
    """The name as the transfer file carries it, or `refusal` naming what it cannot carry."""
    try:
        converted = zengin.to_zengin(name)
    except zengin.NotZenginText as exc:
        # An invisible or unpaired code point is named by its number: the problem stays valid JSON.
        shown = [ch if ch.isprintable() else f"U+{ord(ch):04X}" for ch in exc.characters]
        raise refusal(
            f"The name has characters a transfer file cannot carry: {' '.join(shown)}. Use katakana, "
            "upper-case letters, digits, spaces and ( ) - . / ,", characters=shown,
        ) from None
    if not converted:
        raise refusal("The name is empty.", characters=[])
    if len(converted) > width:
        raise refusal(f"{converted!r} is {len(converted)} characters in a transfer file; at most {width} fit.",
                      characters=[])
    return converted


@dataclass(frozen=True)
class PayoutAccountView:
    account: PayoutAccount
    branch: banks.Branch | None  # None: its bank or branch is no longer in the zengin-code data


def _record(row: PayoutAccount | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"bank_code": row.bank_code, "branch_code": row.branch_code, "account_type": row.account_type,
            "account_number": row.account_number, "holder_name": row.holder_name}


async def set_payout_account(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, merchant_id: uuid.UUID, details: BankDetails,
    holder_name: str,
) -> PayoutAccountView:
    """Pay the merchant to this account from now on. Refuses bank-code-unknown,
    branch-code-unknown, holder-name-invalid; nothing is stored then."""
    merchant = await public.merchant(session, region=region, merchant_id=merchant_id)
    branch = _branch(details)
    holder = _transferable(holder_name, HOLDER_NAME_MAX, HolderNameInvalid)
    before = _record(await repo.payout_account(session, merchant.region_id, merchant.id))
    row = await repo.put_payout_account(
        session, region_id=merchant.region_id, merchant_id=merchant.id, bank_code=details.bank_code,
        branch_code=details.branch_code, account_type=AccountType(details.account_type).value,
        account_number=details.account_number, holder_name=holder, updated_by=actor.subject, updated_at=clock.now(),
    )
    await audit.record(
        session, clock, actor, region_id=merchant.region_id, action="payout_account.set", target_type="merchant",
        target_id=merchant.id, before=before, after=_record(row),
    )
    return PayoutAccountView(row, branch)


def _view(row: PayoutAccount) -> PayoutAccountView:
    return PayoutAccountView(row, banks.branch(row.bank_code, row.branch_code))


async def payout_account(session: AsyncSession, *, region: str, merchant_id: uuid.UUID) -> PayoutAccountView:
    region_id = await public.region_id(session, region=region)
    found = await repo.payout_account(session, region_id, merchant_id)
    if found is None:
        raise PayoutAccountNotFound(f"Merchant {merchant_id} has no payout account.")
    return _view(found)


async def list_payout_accounts(
    session: AsyncSession, *, region: str, after_merchant_id: uuid.UUID | None, limit: int
) -> list[PayoutAccountView]:
    region_id = await public.region_id(session, region=region)
    return [_view(r) for r in await repo.payout_accounts(session, region_id, after_merchant_id=after_merchant_id,
                                                         limit=limit)]


class HoldReason(StrEnum):
    """Why a run holds a merchant's payout back (the problem types the single lookups raise)."""

    NO_ACCOUNT = PayoutAccountNotFound.slug
    BANK_UNKNOWN = BankCodeUnknown.slug
    BRANCH_UNKNOWN = BranchCodeUnknown.slug


@dataclass(frozen=True)
class Payee:
    """A merchant's account as the transfer file names it (`zengin.Transfer(payee.account,
    payee.holder_name, amount)`), as stored at `updated_at`."""

    merchant_id: uuid.UUID
    account: zengin.Account
    holder_name: str
    updated_at: datetime


@dataclass(frozen=True)
class Payees:
    payable: dict[uuid.UUID, Payee]
    held_back: dict[uuid.UUID, HoldReason]


def _file_account(details: PayoutAccount | SourceAccount, branch: banks.Branch) -> zengin.Account:
    return zengin.Account(
        details.bank_code, zengin.fit_name(branch.bank_kana, 15), details.branch_code,
        zengin.fit_name(branch.branch_kana, 15), AccountType(details.account_type), details.account_number,
    )


def _payee(row: PayoutAccount) -> Payee | HoldReason:
    if not banks.bank_known(row.bank_code):
        return HoldReason.BANK_UNKNOWN
    branch = banks.branch(row.bank_code, row.branch_code)
    if branch is None:
        return HoldReason.BRANCH_UNKNOWN
    return Payee(row.merchant_id, _file_account(row, branch), row.holder_name, row.updated_at)


async def accounts_for(session: AsyncSession, *, region: str, merchant_ids: Sequence[uuid.UUID]) -> Payees:
    """For a run: of `merchant_ids`, those that can be paid and their accounts, and those held
    back with the reason. Every merchant asked for is in exactly one of the two."""
    region_id = await public.region_id(session, region=region)
    rows = {r.merchant_id: r for r in await repo.payout_accounts(session, region_id, list(merchant_ids))}
    payable: dict[uuid.UUID, Payee] = {}
    held_back: dict[uuid.UUID, HoldReason] = {}
    for merchant_id in merchant_ids:
        found = _payee(rows[merchant_id]) if merchant_id in rows else HoldReason.NO_ACCOUNT
        if isinstance(found, Payee):
            payable[merchant_id] = found
        else:
            held_back[merchant_id] = found
    return Payees(payable, held_back)


async def account_of(session: AsyncSession, *, region: str, merchant_id: uuid.UUID) -> Payee:
    """One merchant's payee. Refuses payout-account-not-found, bank-code-unknown, branch-code-unknown."""
    region_id = await public.region_id(session, region=region)
    found = await repo.payout_account(session, region_id, merchant_id)
    if found is None:
        raise PayoutAccountNotFound(f"Merchant {merchant_id} has no payout account.")
    branch = _branch(found)
    return Payee(found.merchant_id, _file_account(found, branch), found.holder_name, found.updated_at)


@dataclass(frozen=True)
class OnboardedImport:
    """What `import_onboarded` did, merchant by merchant (oldest first)."""

    copied: list[uuid.UUID]
    kept: list[uuid.UUID]  # had a payout account already: left as it is
    refused: dict[uuid.UUID, Problem]  # what the onboarding record holds that a payout account may not


_ONBOARDING_TYPES = {1: AccountType.ORDINARY, 2: AccountType.CURRENT, 4: AccountType.SAVINGS}


async def import_onboarded(session: AsyncSession, clock: Clock, *, region: str, actor: Actor) -> OnboardedImport:
    """Give each merchant without a payout account the bank account it gave at onboarding (the
    wallet's merchant record), checked as `set_payout_account` checks any: the wallet stored it
    without the zengin-code data or the file's characters. A merchant whose record is refused
    keeps no account (a run holds it back) and is listed with the reason; the others are copied."""
    region_id = await public.region_id(session, region=region)
    onboarded = await public.onboarded_bank_accounts(session, region=region)
    having = {r.merchant_id for r in await repo.payout_accounts(session, region_id, [m.merchant_id for m in onboarded])}
    copied, kept, refused = [], [], {}
    for m in onboarded:
        if m.merchant_id in having:
            kept.append(m.merchant_id)
            continue
        details = BankDetails(m.bank_code, m.branch_code, _ONBOARDING_TYPES[m.account_type], m.account_number)
        try:
            async with session.begin_nested():
                await set_payout_account(session, clock, region=region, actor=actor, merchant_id=m.merchant_id,
                                         details=details, holder_name=m.holder_kana)
        except Problem as problem:
            refused[m.merchant_id] = problem
        else:
            copied.append(m.merchant_id)
    return OnboardedImport(copied, kept, refused)


# --- the source account -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceDetails:
    requester_code: str  # 委託者コード, 10 digits
    requester_name: str
    account: BankDetails


@dataclass(frozen=True)
class SourceAccountView:
    account: SourceAccount
    branch: banks.Branch | None


def _source_record(row: SourceAccount | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"requester_code": row.requester_code, "requester_name": row.requester_name, "bank_code": row.bank_code,
            "branch_code": row.branch_code, "account_type": row.account_type, "account_number": row.account_number}


async def set_source_account(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, details: SourceDetails
) -> SourceAccountView:
    """Send payouts from this account. Refuses bank-code-unknown, branch-code-unknown,
    requester-name-invalid; nothing is stored then."""
    region_id = await public.region_id(session, region=region)
    branch = _branch(details.account)
    name = _transferable(details.requester_name, REQUESTER_NAME_MAX, RequesterNameInvalid)
    before = _source_record(await repo.source_account(session, region_id))
    row = await repo.put_source_account(
        session, region_id=region_id, requester_code=details.requester_code, requester_name=name,
        bank_code=details.account.bank_code, branch_code=details.account.branch_code,
        account_type=AccountType(details.account.account_type).value, account_number=details.account.account_number,
        updated_by=actor.subject, updated_at=clock.now(),
    )
    await audit.record(
        session, clock, actor, region_id=region_id, action="source_account.set", target_type="region",
        target_id=region_id, before=before, after=_source_record(row),
    )
    return SourceAccountView(row, branch)


async def source_account(session: AsyncSession, *, region: str) -> SourceAccountView:
    region_id = await public.region_id(session, region=region)
    found = await repo.source_account(session, region_id)
    if found is None:
        raise SourceAccountNotFound(f"Region {region} has no source account; the operator sets it.")
    return SourceAccountView(found, banks.branch(found.bank_code, found.branch_code))


async def requester(session: AsyncSession, *, region: str) -> zengin.Requester:
    """The transfer file's requester. Refuses source-account-not-found, bank-code-unknown,
    branch-code-unknown (a run then writes no file)."""
    found = (await source_account(session, region=region)).account
    return zengin.Requester(found.requester_code, found.requester_name, _file_account(found, _branch(found)))


# --- payout settings ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayoutSettingsView:
    on_demand_fee: int
    minimum_payout: int
    updated_by: str | None  # None: never set, the defaults
    updated_at: datetime | None


async def payout_settings(session: AsyncSession, *, region: str) -> PayoutSettingsView:
    region_id = await public.region_id(session, region=region)
    found = await repo.payout_settings(session, region_id)
    if found is None:
        return PayoutSettingsView(0, 0, None, None)
    return PayoutSettingsView(found.on_demand_fee, found.minimum_payout, found.updated_by, found.updated_at)


async def set_payout_settings(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, on_demand_fee: int, minimum_payout: int
) -> PayoutSettingsView:
    """The on-demand payout fee and the minimum payout, from now on (a run records what it applied)."""
    region_id = await public.region_id(session, region=region)
    before = await payout_settings(session, region=region)
    row = await repo.put_payout_settings(
        session, region_id=region_id, on_demand_fee=on_demand_fee, minimum_payout=minimum_payout,
        updated_by=actor.subject, updated_at=clock.now(),
    )
    await audit.record(
        session, clock, actor, region_id=region_id, action="payout_settings.set", target_type="region",
        target_id=region_id, before={"on_demand_fee": before.on_demand_fee, "minimum_payout": before.minimum_payout},
        after={"on_demand_fee": row.on_demand_fee, "minimum_payout": row.minimum_payout},
    )
    return PayoutSettingsView(row.on_demand_fee, row.minimum_payout, row.updated_by, row.updated_at)
