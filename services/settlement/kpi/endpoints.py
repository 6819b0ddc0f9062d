"""The KPI report (/v1/settlement/kpi…): the operator sets the baseline cashless rates and the
targets; operators and auditors read the report of a fiscal year in any of its formats. The
report reads through the reports' read-only session (a replica where one is configured)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from services.settlement.kpi import render, service
from services.settlement.kpi.models import BaselineRate, KpiTarget
from services.settlement.kpi.schemas import BaselineIn, BaselineOut, TargetIn, TargetOut
from services.settlement.kpi.service import Kpi
from shared.audit import Actor
from shared.auth import Principal, Role, require
from shared.clock import Day
from shared.db import ReadSessionDep, SessionDep
from shared.deps import ClockDep
from shared.openapi import PROBLEMS

router = APIRouter(prefix="/v1/settlement", tags=["kpi"])

Operator = Annotated[Principal, require(Role.OPERATOR)]
Overseer = Annotated[Principal, require(Role.OPERATOR, Role.AUDITOR)]
FiscalYear = Annotated[int, Path(ge=2000, le=2100, description="年度: FY2025 is 2025-04-01 … 2026-03-31")]

REPORT = {
    200: {
        "description": "the report, in the format asked for",
        # JSON is an object (its fields are documented in README's KPI section); the others are files.
        "content": {media: {"schema": {"type": "object"} if fmt is render.Format.JSON else
                            {"type": "string", "format": "binary"}}
                    for fmt, media in render.MEDIA_TYPES.items()},
    },
    **PROBLEMS,
}


def baseline_out(rate: BaselineRate) -> BaselineOut:
    return BaselineOut(effective_from=rate.effective_from, rate_bp=rate.rate_bp,
                       source=rate.source, set_by=rate.set_by, set_at=rate.set_at)


def target_out(target: KpiTarget) -> TargetOut:
    return TargetOut(fiscal_year=target.fiscal_year, kpi=Kpi(target.kpi), target=target.target, reason=target.reason,
                     set_by=target.set_by, set_at=target.set_at)


@router.put("/baseline-rates/{effective_from}", response_model=BaselineOut, responses=PROBLEMS)
async def set_baseline_rate(
    effective_from: Day, body: BaselineIn, principal: Operator, session: SessionDep, clock: ClockDep
) -> BaselineOut:
    """The ordinary cashless fee rate in force from this Tokyo day until the next rate's, and
    where it comes from (operator; audited). Setting a day again corrects it."""
    saved = await service.set_baseline(
        session, clock, region=principal.region_code, actor=Actor.of(principal), effective_from=effective_from,
        rate_bp=body.rate_bp, source=body.source,
    )
    return baseline_out(saved)


@router.get("/baseline-rates", response_model=list[BaselineOut], responses=PROBLEMS)
async def list_baseline_rates(principal: Overseer, session: ReadSessionDep) -> list[BaselineOut]:
    """Every baseline rate of the region, oldest first (operator, auditor)."""
    return [baseline_out(r) for r in await service.baselines(session, region=principal.region_code)]


@router.put("/kpi-targets/{fiscal_year}/{kpi}", response_model=TargetOut, responses=PROBLEMS)
async def set_kpi_target(
    fiscal_year: FiscalYear, kpi: Kpi, body: TargetIn, principal: Operator, session: SessionDep,
    clock: ClockDep,
) -> TargetOut:
    """The target of a KPI for a fiscal year, in the KPI's unit, and the reason the report
    prints beside it (operator; audited)."""
    saved = await service.set_target(
        session, clock, region=principal.region_code, actor=Actor.of(principal), fiscal_year=fiscal_year, kpi=kpi,
        target=Decimal(body.target), reason=body.reason,
    )
    return target_out(saved)


@router.get("/kpi-targets/{fiscal_year}", response_model=list[TargetOut], responses=PROBLEMS)
async def list_kpi_targets(
    fiscal_year: FiscalYear, principal: Overseer, session: ReadSessionDep
) -> list[TargetOut]:
    return [target_out(t) for t in await service.targets(session, region=principal.region_code,
                                                         fiscal_year=fiscal_year)]


@router.get("/kpi/{fiscal_year}", response_class=Response, responses=REPORT)
async def kpi_report(
    fiscal_year: FiscalYear, principal: Overseer, session: ReadSessionDep, clock: ClockDep,
    format: Annotated[str, Query(description="json, csv, xlsx or png")] = "json",
    lang: render.Lang = render.Lang.JA,
    encoding: Annotated[str, Query(description="CSV only: utf-8 (with a BOM) or cp932")] = "utf-8",
) -> Response:
    """The KPI report of a fiscal year, as the national template lays it out: target, actual,
    達成率, status and reason per KPI, the months, the baseline rates used (operator, auditor).
    A year without data is a report of zeros; a year in progress is reported up to today."""
    fmt = render.parse_format(format)
    found = await service.report(session, clock, region=principal.region_code, fiscal_year=fiscal_year)
    body = render.render(found, fmt, lang, encoding)
    media = render.MEDIA_TYPES[fmt] + ("; charset=" + encoding if fmt is render.Format.CSV else "")
    filename = f"kpi-{principal.region_code}-FY{fiscal_year}.{fmt.value}"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'})
