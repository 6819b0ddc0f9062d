"""History imports (移行): a previous platform's history, from one CSV file (format.py), into the
wallet through its public surface (`public.import_history`, which holds the rules and writes
the wallet's rows), so that statements and KPI reports cover the years before the switch.

The CLI imports a file in its own transaction (`import_file`); the API accepts the file at once
and a job (tasks.py) imports it the same way, writing its progress and, if refused, every problem,
so that operators and auditors can follow it (`GET /v1/settlement/imports/{id}`). Either way it is
all or nothing: one bad row refuses the whole file, and every bad row is listed."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from services.settlement.history import format
from services.settlement.history import repository as repo
from services.settlement.history.errors import FileUnreadable, ImportNotFound
from services.settlement.history.models import HistoryImport, HistoryImportError, ImportStatus
from services.wallet import public
from services.wallet.public import HistoryBatch, Imported, RowProblem
from shared import audit
from shared.audit import Actor
from shared.clock import Clock
from shared.errors import Problem
from shared.ids import new_id

# (phase, rows done, rows in all): phase "reading", "checking" or "writing".
Progress = Callable[[str, int, int], Awaitable[None]]


class Rejected(Exception):
    """The import is refused, with every problem: nothing was written."""

    def __init__(self, problem: Problem, problems: list[RowProblem]) -> None:
        super().__init__(problem.detail)
        self.problem = problem
        self.problems = problems


@dataclass(frozen=True)
class Outcome:
    imported: Imported
    rows: int

    @property
    def counts(self) -> dict[str, object]:
        return {
            "written": dict(self.imported.written), "skipped": dict(self.imported.skipped),
            "openings": self.imported.openings, "opened_yen": self.imported.opened_yen,
            "opened_points": self.imported.opened_points,
        }


async def import_file(
    session: AsyncSession, clock: Clock, actor: Actor, *, region: str, content: bytes, batch_id: uuid.UUID,
    progress: Progress | None = None,
) -> Outcome:
    """Read the file, then check and write it through the wallet, all in the caller's transaction.
    Raises `Rejected` (nothing written) with every problem."""
    batch, problems, unread = format.read(content)
    if progress is not None:
        await progress("reading", batch.rows, batch.rows)
    if problems:
        # The rows that could be read are checked too, so that one answer lists every bad row,
        # but not the problems that only follow from a row that could not be read.
        checked = await public.check_history(session, clock, region=region, batch=batch)
        problems += [p for p in checked if not _follows_from(p, batch, unread)]
        problems.sort(key=lambda p: p.line or 0)
        raise Rejected(FileUnreadable(f"{len(problems)} problem(s) in the file; nothing was imported."), problems)
    try:
        imported = await public.import_history(
            session, clock, region=region, actor=actor, batch=batch, batch_id=batch_id, progress=progress
        )
    except Problem as problem:
        found = [RowProblem(**e) for e in problem.extra.get("errors", [])]
        raise Rejected(problem, found or [RowProblem(None, None, None, problem.slug, problem.detail)]) from problem
    return Outcome(imported, batch.rows)


def _follows_from(problem: RowProblem, batch: HistoryBatch, unread: list[format.Unread]) -> bool:
    """Whether `problem` may be only the absence of an unread row: a reference to a row of that
    key, or a resident's balance short of an unread movement that is (or may be) theirs."""
    row = next((r for r in (*batch.movements, *batch.residents) if r.line == problem.line), None)
    if problem.code.startswith("unknown-") and problem.field in ("resident", "merchant", "payment"):
        named = getattr(row, problem.field, None)
        return any(u.key in ("", named) for u in unread)
    if problem.code in ("closing-mismatch", "balance-negative"):
        resident = problem.key if problem.code == "closing-mismatch" else getattr(row, "resident", None)
        movements = [u for u in unread if u.record not in ("merchant", "resident")]
        return any(u.resident in ("", resident) for u in movements)
    return False


# --- the API's jobs ----------------------------------------------------------------------------------


async def accept(
    session: AsyncSession, clock: Clock, actor: Actor, *, region: str, content: bytes, filename: str | None,
) -> HistoryImport:
    """The file, stored with its job; the job (tasks.py) imports it after this commits."""
    region_id = await public.region_id(session, region=region)
    found = await repo.insert_import(
        session, content, id=new_id(), region_id=region_id, region_code=region, status=ImportStatus.CHECKING.value,
        filename=filename, content_sha256=hashlib.sha256(content).hexdigest(), size_bytes=len(content),
        total_rows=0, checked_rows=0, written_rows=0, counts=None, error_count=0, problem_type=None, detail=None,
        created_by=actor.subject, created_role=actor.role, request_id=actor.request_id, attempts=0,
        created_at=clock.now(), started_at=None, finished_at=None,
    )
    await audit.record(
        session, clock, actor, region_id=region_id, action="history_import.accept", target_type="history_import",
        target_id=found.id, after={"filename": filename, "sha256": found.content_sha256, "bytes": len(content)},
    )
    return found


async def record_rejection(session: AsyncSession, clock: Clock, job: HistoryImport, rejected: Rejected) -> None:
    await repo.insert_errors(session, [
        {"id": new_id(), "import_id": job.id, "line": p.line, "row_key": p.key, "field": p.field, "code": p.code,
         "detail": p.detail}
        for p in rejected.problems
    ])
    await repo.set_import(
        session, job.id, status=ImportStatus.REJECTED.value, written_rows=0, error_count=len(rejected.problems),
        problem_type=rejected.problem.type, detail=rejected.problem.detail, finished_at=clock.now(),
    )


async def history_import(session: AsyncSession, *, region: str, import_id: uuid.UUID) -> HistoryImport:
    found = await repo.history_import(session, import_id)
    if found is None or found.region_code != region:
        raise ImportNotFound(f"No history import {import_id} in region {region}.")
    return found


async def import_errors(
    session: AsyncSession, job: HistoryImport, *, after_id: uuid.UUID | None, limit: int
) -> list[HistoryImportError]:
    return await repo.errors(session, job.id, after_id=after_id, limit=limit)


content = repo.content
set_import = repo.set_import
unfinished = repo.unfinished
history_import_row = repo.history_import
