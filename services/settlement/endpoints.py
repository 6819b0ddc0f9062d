"""The settlement API (/v1/settlement): merchants' settlement cycles and payout bank accounts,
the region's source account and payout settings, and the periods the cycles make. The operator
writes; the auditor reads; a merchant's admin sets and reads its own payout account, and its
people read its cycle. Settlement runs, statements, payout files and KPI reports build on these."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.settlement import access, service
from services.settlement.periods import Cycle, Period, period_at
from services.settlement.schemas import (
    CycleIn,
    CycleOut,
    PayoutAccountIn,
    PayoutAccountOut,
    PayoutSettingsIn,
    PayoutSettingsOut,
    PeriodOut,
    SourceAccountIn,
    SourceAccountOut,
)
from services.settlement.service import BankDetails, CycleView, PayoutAccountView, SourceAccountView, SourceDetails
from shared.audit import Actor
from shared.auth import Principal, Role, require
from shared.clock import Clock, Day
from shared.db import SessionDep
from shared.deps import ClockDep
from shared.idempotency import IdempotencyDep
from shared.openapi import PROBLEMS
from shared.pagination import CursorParam, LimitParam, Page, decode_cursor, page_of

router = APIRouter(prefix="/v1/settlement", tags=["settlement"])

Operator = Annotated[Principal, require(Role.OPERATOR)]
Overseer = Annotated[Principal, require(Role.OPERATOR, Role.AUDITOR)]
AccountSetter = Annotated[Principal, require(Role.OPERATOR, Role.MERCHANT_ADMIN)]
AccountReader = Annotated[Principal, require(Role.OPERATOR, Role.AUDITOR, Role.MERCHANT_ADMIN)]
MerchantReader = Annotated[Principal, require(Role.OPERATOR, Role.AUDITOR, Role.MERCHANT_ADMIN, Role.MERCHANT_STAFF)]


def period_out(found: Period) -> PeriodOut:
    return PeriodOut(
        cycle=found.cycle, label=found.label, first_day=found.first_day, last_day=found.last_day, start=found.start,
        end=found.end, pay_date=found.pay_date, readable_at=found.readable_at,
    )


def cycle_out(found: CycleView, clock: Clock) -> CycleOut:
    return CycleOut(
        merchant_id=found.merchant_id, cycle=found.cycle, effective_at=found.effective_at, set_by=found.set_by,
        current_period=period_out(period_at(found.cycle, clock.now())),
    )


def account_out(found: PayoutAccountView) -> PayoutAccountOut:
    a, b = found.account, found.branch
    return PayoutAccountOut(
        merchant_id=a.merchant_id, bank_code=a.bank_code, bank_name=b.bank_name if b else None,
        branch_code=a.branch_code, branch_name=b.branch_name if b else None, account_type=a.account_type,
        account_number=a.account_number, holder_name=a.holder_name, payable=b is not None,
        updated_by=a.updated_by, updated_at=a.updated_at,
    )


def source_out(found: SourceAccountView) -> SourceAccountOut:
    a, b = found.account, found.branch
    return SourceAccountOut(
        requester_code=a.requester_code, requester_name=a.requester_name, bank_code=a.bank_code,
        bank_name=b.bank_name if b else None, branch_code=a.branch_code, branch_name=b.branch_name if b else None,
        account_type=a.account_type, account_number=a.account_number, updated_by=a.updated_by,
        updated_at=a.updated_at,
    )


@router.get("/health")
async def health() -> dict[str, str]:
    return {"service": "settlement", "status": "ok"}


# --- periods --------------------------------------------------------------------------------------


@router.get("/periods", response_model=PeriodOut, responses=PROBLEMS)
async def settlement_period(
    principal: MerchantReader, clock: ClockDep,
    cycle: Annotated[Cycle, Query(description="the settlement cycle")],
    day: Annotated[Day | None, Query(alias="date", description="a Tokyo date; today's by default")] = None,
) -> PeriodOut:
    """The period of a cycle that a day is in, and its pay date (moved to the next bank business day)."""
    return period_out(service.period_of(cycle, day) if day is not None else period_at(cycle, clock.now()))


# --- cycles -----------------------------------------------------------------------------------------


@router.put("/merchants/{merchant_id}/cycle", response_model=CycleOut, responses=PROBLEMS)
async def set_settlement_cycle(
    merchant_id: uuid.UUID, body: CycleIn, principal: Operator, session: SessionDep, clock: ClockDep,
    idem: IdempotencyDep,
):
    """Settle a merchant on a cycle from now on (operator; audited). A run settles a merchant in
    the periods of the cycle in force at each period's end, and whatever of its trades is not
    yet settled, so a change is never paid twice nor skipped."""
    if replay := await idem.replay():
        return replay
    merchant = await access.merchant(session, principal, merchant_id)
    found = await service.set_cycle(
        session, clock, region=principal.region_code, actor=Actor.of(principal), merchant_id=merchant.id,
        cycle=body.cycle,
    )
    return await idem.respond(200, cycle_out(found, clock))


@router.get("/merchants/{merchant_id}/cycle", response_model=CycleOut, responses=PROBLEMS)
async def get_settlement_cycle(
    merchant_id: uuid.UUID, principal: MerchantReader, session: SessionDep, clock: ClockDep
) -> CycleOut:
    """A merchant's cycle now (a merchant's people: their own)."""
    merchant = await access.merchant(session, principal, merchant_id)
    return cycle_out(
        await service.cycle_of(session, region=principal.region_code, merchant_id=merchant.id, at=clock.now()), clock
    )


# --- payout accounts ------------------------------------------------------------------------------------


@router.put("/merchants/{merchant_id}/payout-account", response_model=PayoutAccountOut, responses=PROBLEMS)
async def set_payout_account(
    merchant_id: uuid.UUID, body: PayoutAccountIn, principal: AccountSetter, session: SessionDep, clock: ClockDep,
    idem: IdempotencyDep,
):
    """Set the bank account a merchant is paid to (operator, or the merchant's admin; audited).
    The bank and branch codes must be in the zengin-code data (422 bank-code-unknown,
    branch-code-unknown) and the holder name one a transfer file can carry (422
    holder-name-invalid); a refusal stores nothing."""
    if replay := await idem.replay():
        return replay
    merchant = await access.merchant(session, principal, merchant_id)
    found = await service.set_payout_account(
        session, clock, region=principal.region_code, actor=Actor.of(principal), merchant_id=merchant.id,
        details=BankDetails(body.bank_code, body.branch_code, body.account_type, body.account_number),
        holder_name=body.holder_name,
    )
    return await idem.respond(200, account_out(found))


@router.get("/merchants/{merchant_id}/payout-account", response_model=PayoutAccountOut, responses=PROBLEMS)
async def get_payout_account(merchant_id: uuid.UUID, principal: AccountReader, session: SessionDep) -> PayoutAccountOut:
    """A merchant's payout account (404 payout-account-not-found if none; its admin: their own)."""
    merchant = await access.merchant(session, principal, merchant_id)
    return account_out(await service.payout_account(session, region=principal.region_code, merchant_id=merchant.id))


@router.get("/payout-accounts", response_model=Page[PayoutAccountOut], responses=PROBLEMS)
async def list_payout_accounts(
    principal: Overseer, session: SessionDep, cursor: CursorParam = None, limit: LimitParam = 50
) -> Page[PayoutAccountOut]:
    """The region's payout accounts, by merchant id (operator, auditor)."""
    found = await service.list_payout_accounts(
        session, region=principal.region_code, after_merchant_id=decode_cursor(cursor), limit=limit + 1
    )
    return page_of([account_out(f) for f in found], [f.account.merchant_id for f in found], limit)


# --- the region's source account and payout settings --------------------------------------------------


@router.put("/source-account", response_model=SourceAccountOut, responses=PROBLEMS)
async def set_source_account(
    body: SourceAccountIn, principal: Operator, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """Set the consortium's account that payouts are sent from, the transfer file's requester
    (operator; audited). Refuses bank-code-unknown, branch-code-unknown, requester-name-invalid."""
    if replay := await idem.replay():
        return replay
    found = await service.set_source_account(
        session, clock, region=principal.region_code, actor=Actor.of(principal), details=SourceDetails(
            body.requester_code, body.requester_name,
            BankDetails(body.bank_code, body.branch_code, body.account_type, body.account_number),
        ),
    )
    return await idem.respond(200, source_out(found))


@router.get("/source-account", response_model=SourceAccountOut, responses=PROBLEMS)
async def get_source_account(principal: Overseer, session: SessionDep) -> SourceAccountOut:
    """The region's source account (404 source-account-not-found until the operator sets it)."""
    return source_out(await service.source_account(session, region=principal.region_code))


@router.put("/payout-settings", response_model=PayoutSettingsOut, responses=PROBLEMS)
async def set_payout_settings(
    body: PayoutSettingsIn, principal: Operator, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """Set the on-demand payout fee and the minimum payout (operator; audited)."""
    if replay := await idem.replay():
        return replay
    found = await service.set_payout_settings(
        session, clock, region=principal.region_code, actor=Actor.of(principal), on_demand_fee=body.on_demand_fee,
        minimum_payout=body.minimum_payout,
    )
    return await idem.respond(200, PayoutSettingsOut.model_validate(found))


@router.get("/payout-settings", response_model=PayoutSettingsOut, responses=PROBLEMS)
async def get_payout_settings(principal: MerchantReader, session: SessionDep) -> PayoutSettingsOut:
    """The region's on-demand payout fee and minimum payout."""
    return PayoutSettingsOut.model_validate(await service.payout_settings(session, region=principal.region_code))
