"""Settlement runs (/v1/settlement/runs): the operator runs a period; operators and auditors
read the runs and download their files (a merchant's admin its own statement). Files are
rendered from the run's stored rows, in the reports' read session, the same bytes every time."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from services.settlement import access
from services.settlement.runs import service
from services.settlement.runs.schemas import PeriodLabel, RunFile, RunIn, RunOut, StatementFormat
from shared.audit import Actor
from shared.auth import Principal, Role, require
from shared.db import ReadSessionDep, SessionDep
from shared.deps import ClockDep
from shared.idempotency import IdempotencyDep
from shared.openapi import PROBLEMS
from shared.pagination import CursorParam, LimitParam, Page, decode_cursor, page_of

router = APIRouter(prefix="/v1/settlement/runs", tags=["settlement runs"])

Operator = Annotated[Principal, require(Role.OPERATOR)]
Overseer = Annotated[Principal, require(Role.OPERATOR, Role.AUDITOR)]
StatementReader = Annotated[Principal, require(Role.OPERATOR, Role.AUDITOR, Role.MERCHANT_ADMIN)]

MEDIA = {"csv": "text/csv; charset=utf-8", "pdf": "application/pdf", "txt": "text/plain; charset=shift_jis"}
FILE = {200: {"description": "the file", "content": {m.split(";")[0]: {} for m in MEDIA.values()}}, **PROBLEMS}


def _download(body: bytes, name: str) -> Response:
    return Response(body, media_type=MEDIA[name.rsplit(".", 1)[-1]],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("", response_model=RunOut, status_code=201, responses={200: {"description": "the period had been run: "
             "the run as it was, nothing changed", "model": RunOut}, **PROBLEMS})
async def create_run(body: RunIn, principal: Operator, session: SessionDep, clock: ClockDep, idem: IdempotencyDep):
    """Settle a period (operator; audited): every merchant on the period's cycle, its lines not
    yet settled, payouts posted, the period closed, in one transaction (201). A period already
    run is answered as it was (200), nothing changed. Refuses period-invalid (422),
    period-not-ended (409: before its end and grace period), settlement-run-in-progress (409:
    another run of the region is running), source-account-not-found (404) when a merchant is
    to be paid; nothing is written then."""
    if replay := await idem.replay():
        return replay
    made = await service.run(session, clock, region=principal.region_code, actor=Actor.of(principal),
                             label=body.period)
    return await idem.respond(201 if made.created else 200, RunOut.model_validate(made.run))


@router.get("", response_model=Page[RunOut], responses=PROBLEMS)
async def list_runs(principal: Overseer, session: ReadSessionDep, cursor: CursorParam = None, limit: LimitParam = 50
                    ) -> Page[RunOut]:
    """The region's runs, newest first (operator, auditor)."""
    found = await service.list_runs(session, region=principal.region_code, before_id=decode_cursor(cursor),
                                    limit=limit + 1)
    return page_of([RunOut.model_validate(r) for r in found], [r.id for r in found], limit)


@router.get("/{period}", response_model=RunOut, responses=PROBLEMS)
async def get_run(period: PeriodLabel, principal: Overseer, session: ReadSessionDep) -> RunOut:
    """A period's run (404 settlement-run-not-found until it has run)."""
    return RunOut.model_validate(await service.get_run(session, region=principal.region_code, label=period))


@router.get("/{period}/files/{name}", response_class=Response, responses=FILE)
async def get_run_file(period: PeriodLabel, name: RunFile, principal: Overseer, session: ReadSessionDep) -> Response:
    """The operator summary, the held-back list or the 全銀 transfer file (cp932), as `chiikipay
    settle` writes them (404 run-file-not-found: no transfer file when nobody was paid)."""
    found = await service.get_run(session, region=principal.region_code, label=period)
    return _download(await service.file(session, found, name.value), name.value)


@router.get("/{period}/statements/{merchant_id}", response_class=Response, responses=FILE)
async def get_statement(
    period: PeriodLabel, merchant_id: uuid.UUID, principal: StatementReader, session: ReadSessionDep,
    format: Annotated[StatementFormat, Query(description="csv (UTF-8 with a BOM) or pdf")] = StatementFormat.CSV,
) -> Response:
    """A merchant's statement in a run (operator, auditor; a merchant's admin: its own), every
    line with its payment or journal id (404 statement-not-found: the merchant was not in it)."""
    merchant = await access.merchant(session, principal, merchant_id)
    found = await service.get_run(session, region=principal.region_code, label=period)
    statement = await service.statement(session, found, merchant.id)
    body = statement.csv() if format is StatementFormat.CSV else statement.pdf()
    return _download(body, f"{found.label}-{merchant.id}.{format.value}")
