"""The worker that processes a CSV grant upload after the request that accepted it committed: a
job of shared/jobs.py (its lease, its progress on a connection of its own, taken up again by the
next status read if its process died), which processes the stored file again from the start.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.wallet.grants import repository as repo
from services.wallet.grants import service
from services.wallet.grants.models import IN_PROGRESS, UploadStatus
from shared.clock import Clock
from shared.jobs import Jobs, progress_writer

uploads = Jobs("grant_upload")
drain = uploads.drain


async def start(state: Any, upload_id: uuid.UUID) -> None:
    """Process the upload in the background, unless this process already is."""
    uploads.start(upload_id, lambda: run(state, upload_id))


async def resume_unfinished(state: Any) -> None:
    """At start-up: pick up uploads whose worker died with its process (a worker alive in another
    process holds the upload's lock, and the new one steps aside)."""
    async with state.sessionmaker() as session:
        unfinished = await repo.unfinished_uploads(session)
    for upload_id in unfinished:
        await start(state, upload_id)


async def run(state: Any, upload_id: uuid.UUID) -> None:
    clock, max_rows = state.clock, state.settings.max_grant_rows
    await uploads.run_leased(
        state.engine, upload_id,
        lambda control: _work(control, state.sessionmaker, clock, upload_id, max_rows),
        lambda control: _mark_failed(control, clock, upload_id),
    )


async def _work(control: Any, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, upload_id: uuid.UUID,
                max_rows: int) -> None:
    upload = await repo.upload(control, upload_id)
    if upload is None or upload.status not in IN_PROGRESS:
        return  # not (yet) committed by its request, or already finished
    # A new attempt starts from the beginning: whatever an interrupted one counted was rolled back.
    await repo.set_upload(control, upload_id, status=UploadStatus.VALIDATING.value, validated_rows=0, granted_rows=0,
                          attempts=upload.attempts + 1, started_at=clock.now())
    await control.commit()

    progress = progress_writer(control, repo.set_upload, upload_id)

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
    await repo.set_upload(
        control, upload_id, status=UploadStatus.FAILED.value, granted_rows=0, finished_at=clock.now(),
        detail="An internal error stopped the upload; nothing was granted. Uploading the file again is safe.",
    )
    await control.commit()
