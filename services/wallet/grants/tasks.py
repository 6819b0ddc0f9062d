"""The worker that processes a CSV grant upload after the request that accepted it committed.

It runs in the process that accepted the upload (an asyncio task). It holds a PostgreSQL advisory
lock on its own connection while it works, and writes progress on that connection, committed at
once, so that the status can be read while the grant transaction (on a second connection) runs.
If the process dies, the transaction rolls back (nothing granted) and the lock goes with the
connection; the next status read of the upload, in any process, finds it free and starts a new
worker, which processes the stored file again from the start.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.wallet.grants import repository as repo
from services.wallet.grants import service
from services.wallet.grants.models import IN_PROGRESS, UploadStatus
from shared.clock import Clock

log = logging.getLogger(__name__)

_running: dict[uuid.UUID, asyncio.Task[None]] = {}


async def start(state: Any, upload_id: uuid.UUID) -> None:
    """Process the upload in the background, unless this process already is."""
    task = _running.get(upload_id)
    if task is not None and not task.done():
        return
    task = asyncio.create_task(
        run(state.engine, state.sessionmaker, state.clock, upload_id, max_rows=state.settings.max_grant_rows),
        name=f"grant-upload-{upload_id}",
    )
    _running[upload_id] = task
    task.add_done_callback(lambda done: _running.pop(upload_id, None) if _running.get(upload_id) is done else None)


async def resume_unfinished(state: Any) -> None:
    """At start-up: pick up uploads whose worker died with its process (a worker alive in another
    process holds the upload's lock, and the new one steps aside)."""
    async with state.sessionmaker() as session:
        unfinished = await repo.unfinished_uploads(session)
    for upload_id in unfinished:
        await start(state, upload_id)


async def drain() -> None:
    """Wait for every worker of this process (tests; a graceful shutdown)."""
    while _running:
        await asyncio.gather(*list(_running.values()), return_exceptions=True)


async def run(
    engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, upload_id: uuid.UUID, *,
    max_rows: int,
) -> None:
    async with engine.connect() as control:
        if not await repo.try_lock_upload(control, upload_id):
            await control.rollback()
            return  # another worker has it
        try:
            await control.commit()
            await _work(control, sessionmaker, clock, upload_id, max_rows)
        except Exception:
            log.exception("grant upload failed", extra={"upload_id": str(upload_id)})
            await _mark_failed(control, clock, upload_id)
        finally:
            try:
                await control.rollback()
                await repo.unlock_upload(control, upload_id)
                await control.commit()
            except Exception:  # a broken connection: closing it releases the lock
                await control.invalidate()


async def _work(control: Any, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, upload_id: uuid.UUID,
                max_rows: int) -> None:
    upload = await repo.upload(control, upload_id)
    if upload is None or upload.status not in IN_PROGRESS:
        return  # not (yet) committed by its request, or already finished
    # A new attempt starts from the beginning: whatever an interrupted one counted was rolled back.
    await repo.set_upload(control, upload_id, status=UploadStatus.VALIDATING.value, validated_rows=0, granted_rows=0,
                          attempts=upload.attempts + 1, started_at=clock.now())
    await control.commit()

    async def progress(**values: Any) -> None:
        await repo.set_upload(control, upload_id, **values)
        await control.commit()

    async with sessionmaker() as session:
        content = await repo.upload_content(session, upload_id)
        try:
            await service.process_upload(session, clock, upload, content, max_rows=max_rows, progress=progress)
        except service.Rejected as rejected:
            await session.rollback()  # nothing of the grants; the budget lock is released
            await service.record_rejection(session, clock, upload, rejected.check)
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


async def _mark_failed(control: Any, clock: Clock, upload_id: uuid.UUID) -> None:
    try:
        await control.rollback()
        await repo.set_upload(
            control, upload_id, status=UploadStatus.FAILED.value, granted_rows=0, finished_at=clock.now(),
            detail="An internal error stopped the upload; nothing was granted. Uploading the file again is safe.",
        )
        await control.commit()
    except Exception:
        log.exception("could not mark the grant upload failed", extra={"upload_id": str(upload_id)})
