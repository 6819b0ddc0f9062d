"""The base-date report (/v1/settlement/outstanding): operators and auditors read the caller's
region's unused balance and required deposit at a base date, through the reports' read-only session."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.settlement.basedate import service
from services.settlement.basedate.schemas import BaseDateOut, KindTotalOut
from shared.auth import Principal, Role, require
from shared.clock import Day
from shared.db import ReadSessionDep
from shared.deps import ClockDep
from shared.openapi import PROBLEMS

router = APIRouter(prefix="/v1/settlement", tags=["settlement"])

Overseer = Annotated[Principal, require(Role.OPERATOR, Role.AUDITOR)]


def base_date_out(found: service.BaseDateReport) -> BaseDateOut:
    return BaseDateOut(
        region=found.region, base_date=found.base_date, measured_at=found.unused.at,
        unused_balance=found.unused.amount, wallets=found.unused.wallets, threshold=found.threshold,
        deposit_required=found.deposit_required,
        movements=[KindTotalOut(kind=m.kind, journals=m.journals, amount=m.amount) for m in found.unused.movements],
    )


@router.get("/outstanding", response_model=BaseDateOut, responses=PROBLEMS)
async def outstanding(
    base_date: Annotated[Day, Query(description="31 March or 30 September, ended")], principal: Overseer,
    session: ReadSessionDep, clock: ClockDep,
) -> BaseDateOut:
    """The unused paid-in balance at the end of the base date (points excluded), the wallets
    holding it, what it was summed from, and the security deposit it requires (operator, auditor)."""
    return base_date_out(await service.report(session, clock, region=principal.region_code, base_date=base_date))
