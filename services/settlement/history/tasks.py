"""The job that imports a history file after the request that accepted it committed: a job of
shared/jobs.py, as the grant uploads are (its lease, its progress written on a connection of its
own, taken up again by the next status read if its process died, the stored file imported again
from the start: nothing of an interrupted attempt was committed)."""

from __future__ import annotations

import uuid
from typing import Any

from services.settlement.history import service
from services.settlement.history.models import IN_PROGRESS, ImportStatus
from shared.audit import Actor
from shared.jobs import Jobs, progress_writer

imports = Jobs("history_import")
drain = imports.drain

PHASES = {"reading": ImportStatus.CHECKING, "checking": ImportStatus.CHECKING, "writing": ImportStatus.WRITING}


async def start(state: Any, import_id: uuid.UUID) -> None:
    """Import the file in the background, unless this process already is."""
    imports.start(import_id, lambda: run(state, import_id))


async def resume_unfinished(state: Any) -> None:
    """At start-up: take up imports whose worker died with its process."""
    async with state.sessionmaker() as session:
        unfinished = await service.unfinished(session)
    for import_id in unfinished:
        await start(state, import_id)


async def run(state: Any, import_id: uuid.UUID) -> None:
    await imports.run_leased(
        state.engine, import_id, lambda control: _work(control, state, import_id),
        lambda control: _mark_failed(control, state, import_id),
    )


async def _work(control: Any, state: Any, import_id: uuid.UUID) -> None:
    clock = state.clock
    job = await service.history_import_row(control, import_id)
    if job is None or job.status not in IN_PROGRESS:
        return  # not (yet) committed by its request, or already finished
    # A new attempt starts from the beginning: whatever an interrupted one counted was rolled back.
    await service.set_import(control, import_id, status=ImportStatus.CHECKING.value, checked_rows=0, written_rows=0,
                             attempts=job.attempts + 1, started_at=clock.now())
    await control.commit()
    write = progress_writer(control, service.set_import, import_id)

    async def progress(phase: str, done: int, total: int) -> None:
        counted = "written_rows" if phase == "writing" else "checked_rows"
        values: dict[str, Any] = {"status": PHASES[phase].value, counted: done}
        if phase == "reading":
            values["total_rows"] = total
        await write(**values)

    actor = Actor(job.created_by, job.created_role, job.request_id)
    async with state.sessionmaker() as session:
        content = await service.content(session, import_id)
        try:
            outcome = await service.import_file(
                session, clock, actor, region=job.region_code, content=content, batch_id=import_id, progress=progress,
            )
        except service.Rejected as rejected:
            await session.rollback()  # nothing of the history
            await service.record_rejection(session, clock, job, rejected)
        except BaseException:
            await session.rollback()
            raise
        else:
            # Done commits with the history itself.
            await service.set_import(session, import_id, status=ImportStatus.DONE.value, counts=outcome.counts,
                                     total_rows=outcome.rows, finished_at=clock.now())
        await session.commit()


async def _mark_failed(control: Any, state: Any, import_id: uuid.UUID) -> None:
    await service.set_import(
        control, import_id, status=ImportStatus.FAILED.value, written_rows=0, finished_at=state.clock.now(),
        detail="An internal error stopped the import; nothing was written. Importing the file again is safe.",
    )
    await control.commit()
