"""Background jobs that process what a request stored (a CSV upload, an import file) after that
request committed, with progress another request can read meanwhile.

A job runs in the process that accepted it (an asyncio task; `Jobs.start`). Its worker holds a
PostgreSQL session advisory lock (`<kind>:<id>`) on a connection of its own, the control
connection, while it works, and writes its progress on that connection, committed at once, so
that the status can be read while the job's own transaction (on a second connection) runs. If
the process dies, that transaction rolls back (nothing done) and the lock goes with the
connection; the next status read, in any process, finds the job free and starts a new worker,
which processes the stored input again from the start. The grant uploads
(services/wallet/grants/tasks.py) and the history imports (services/settlement/history/tasks.py)
are such jobs.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

Work = Callable[[AsyncConnection], Awaitable[None]]


class Jobs:
    """The workers of one kind of job in this process: one task per job id at most."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._running: dict[uuid.UUID, asyncio.Task[None]] = {}

    def start(self, job_id: uuid.UUID, worker: Callable[[], Awaitable[None]]) -> None:
        """Run `worker()` in the background, unless this process already runs this job."""
        task = self._running.get(job_id)
        if task is not None and not task.done():
            return
        task = asyncio.create_task(worker(), name=f"{self.kind}-{job_id}")  # type: ignore[arg-type]
        self._running[job_id] = task
        task.add_done_callback(lambda done: self._running.pop(job_id, None) if self._running.get(job_id) is done else None)

    async def drain(self) -> None:
        """Wait for every worker of this process (tests; a graceful shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def run_leased(self, engine: AsyncEngine, job_id: uuid.UUID, work: Work, failed: Work) -> None:
        """`work(control)` under the job's lease, unless another worker holds it; `failed(control)`
        (on a clean connection) if work raised. The lease is released either way."""
        async with engine.connect() as control:
            if not await try_lock(control, self.kind, job_id):
                await control.rollback()
                return  # another worker has it
            try:
                await control.commit()
                await work(control)
            except Exception:
                log.exception("%s failed", self.kind, extra={"job_id": str(job_id)})
                try:
                    await control.rollback()
                    await failed(control)
                except Exception:
                    log.exception("could not mark the %s failed", self.kind, extra={"job_id": str(job_id)})
            finally:
                try:
                    await control.rollback()
                    await unlock(control, self.kind, job_id)
                    await control.commit()
                except Exception:  # a broken connection: closing it releases the lock
                    await control.invalidate()


async def try_lock(connection: AsyncConnection, kind: str, job_id: uuid.UUID) -> bool:
    """Only one worker processes a job; the lock dies with the worker's connection, so a job whose
    worker died is free to be taken up again."""
    query = text("SELECT pg_try_advisory_lock(hashtextextended(:kind || ':' || CAST(:id AS text), 0))")
    return bool((await connection.execute(query, {"kind": kind, "id": str(job_id)})).scalar_one())


async def unlock(connection: AsyncConnection, kind: str, job_id: uuid.UUID) -> None:
    query = text("SELECT pg_advisory_unlock(hashtextextended(:kind || ':' || CAST(:id AS text), 0))")
    await connection.execute(query, {"kind": kind, "id": str(job_id)})


def progress_writer(control: AsyncConnection, write: Callable[..., Awaitable[Any]], job_id: uuid.UUID) -> Callable[..., Awaitable[None]]:
    """A `progress(**values)` that writes the job's row on the control connection and commits at once."""

    async def progress(**values: Any) -> None:
        await write(control, job_id, **values)
        await control.commit()

    return progress
