"""History imports (/v1/settlement/imports): an operator sends the previous platform's history as
one CSV file; operators and auditors follow its job and read every problem of a refused one."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import JSONResponse

from services.settlement.history import service, tasks
from services.settlement.history.errors import UnsupportedMediaType
from services.settlement.history.models import IN_PROGRESS, HistoryImport
from services.settlement.history.schemas import ImportErrorOut, ImportOut
from shared.audit import Actor
from shared.auth import Principal, Role, require
from shared.db import SessionDep
from shared.deps import ClockDep
from shared.idempotency import IdempotencyDep
from shared.observability import allow_large_body
from shared.openapi import PROBLEMS
from shared.pagination import CursorParam, LimitParam, Page, decode_cursor, page_of
from shared.text import text

router = APIRouter(prefix="/v1/settlement/imports", tags=["settlement"])

Operator = Annotated[Principal, require(Role.OPERATOR)]
Overseer = Annotated[Principal, require(Role.OPERATOR, Role.AUDITOR)]

FIRST_ERRORS = 200
IMPORT_PROBLEMS = {
    **PROBLEMS,
    202: {"headers": {"Location": {
        "description": "the import's status to poll (GET); not sent again on a replayed response",
        "schema": {"type": "string"},
    }}},
    415: {"description": "the body is not text/csv", "content": {"application/problem+json": {}}},
}

allow_large_body("POST", r"/v1/settlement/imports")
CSV_BODY = {
    "requestBody": {
        "required": True,
        "description": "The history file (README, \"Importing history\"): UTF-8 CSV, a header line, then one "
        "merchant, resident, topup, payment, refund or grant per line, each with its `key` on the previous "
        "platform. Up to `max_upload_bytes`.",
        "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def import_out(job: HistoryImport, errors: list[ImportErrorOut]) -> ImportOut:
    j = job
    return ImportOut(
        id=j.id, status=j.status, filename=j.filename, content_sha256=j.content_sha256, size_bytes=j.size_bytes,
        total_rows=j.total_rows, checked_rows=j.checked_rows, written_rows=j.written_rows, counts=j.counts,
        error_count=j.error_count, problem_type=j.problem_type, detail=j.detail, created_by=j.created_by,
        attempts=j.attempts, created_at=j.created_at, started_at=j.started_at, finished_at=j.finished_at,
        errors=errors,
    )


@router.post("", status_code=202, response_model=ImportOut, responses=IMPORT_PROBLEMS, openapi_extra=CSV_BODY)
async def create_history_import(
    request: Request, principal: Operator, session: SessionDep, clock: ClockDep, idem: IdempotencyDep,
    background: BackgroundTasks,
    filename: Annotated[text(200) | None, Query(description="the file's name, kept for the record")] = None,
):
    """Import a previous platform's history (operator). Accepted at once (202, `Location` of the
    status); then every row is checked and, only if all are good, all of it is written in one
    transaction. Poll the status: checking → writing → done, or rejected with every bad row
    (nothing written). Rows imported before (by key) are skipped, so importing a file again is
    harmless; history at or after the region's own first journal is refused (history-overlaps)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in ("text/csv", "application/csv"):
        raise UnsupportedMediaType(f"Send the file as text/csv, not {media_type or 'nothing'}.")
    if replay := await idem.replay():
        return replay
    job = await service.accept(
        session, clock, Actor.of(principal), region=principal.region_code, content=await request.body(),
        filename=filename,
    )
    response = await idem.respond(202, import_out(job, []))
    response.headers["Location"] = f"/v1/settlement/imports/{job.id}"
    # After the response, hence after the commit: the worker must find the job.
    background.add_task(tasks.start, request.app.state, job.id)
    return response


@router.get("/{import_id}", response_model=ImportOut, responses=PROBLEMS)
async def get_history_import(
    import_id: uuid.UUID, principal: Overseer, session: SessionDep, request: Request, background: BackgroundTasks,
) -> JSONResponse:
    """An import's status, progress and counts, and its first problems if it was rejected. An
    import whose worker died (a restart) is taken up again."""
    job = await service.history_import(session, region=principal.region_code, import_id=import_id)
    errors = await service.import_errors(session, job, after_id=None, limit=FIRST_ERRORS)
    if job.status in IN_PROGRESS:
        background.add_task(tasks.start, request.app.state, job.id)
    body = import_out(job, [ImportErrorOut.model_validate(e) for e in errors])
    return JSONResponse(body.model_dump(mode="json"), headers={"Cache-Control": "no-store"}, background=background)


@router.get("/{import_id}/errors", response_model=Page[ImportErrorOut], responses=PROBLEMS)
async def list_history_import_errors(
    import_id: uuid.UUID, principal: Overseer, session: SessionDep, cursor: CursorParam = None, limit: LimitParam = 200,
) -> Page[ImportErrorOut]:
    """Every problem of a rejected import, in the order found."""
    job = await service.history_import(session, region=principal.region_code, import_id=import_id)
    found = await service.import_errors(session, job, after_id=decode_cursor(cursor), limit=limit + 1)
    return page_of([ImportErrorOut.model_validate(e) for e in found], [e.id for e in found], limit)
