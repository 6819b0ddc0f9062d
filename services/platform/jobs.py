"""What the platform does on its own, on a timer inside the server: each tick marks the checkouts
past their expiry expired (writing their checkout.expired events) and delivers the outbox's due
events (outbox/tasks.py). Every server process may tick at once: the sweep skips the rows another
holds, and a delivery holds its event's row lock, so no event is sent by two workers at the same
time. By hand: `chiikipay webhooks deliver`."""

from __future__ import annotations

import asyncio
import logging

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.platform.checkouts import service as checkouts
from services.platform.outbox import tasks as outbox
from services.platform.outbox.service import RetryPolicy
from shared.clock import Clock

log = logging.getLogger(__name__)


async def tick(sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, http: httpx.AsyncClient, policy: RetryPolicy) -> None:
    while True:  # a batch at a time, each committed with its events
        async with sessionmaker() as session, session.begin():
            expired = await checkouts.expire_due(session, clock)
        if expired:
            log.info("checkouts expired", extra={"checkouts": len(expired)})
        if len(expired) < checkouts.EXPIRY_SWEEP_BATCH:
            break
    await outbox.deliver_all_due(sessionmaker, clock, http, policy)


async def scheduler(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, policy: RetryPolicy, every_seconds: float
) -> None:
    """Tick at start-up and then every `every_seconds`; a failing tick is logged and retried at
    the next one."""
    async with httpx.AsyncClient() as http:
        while True:
            try:
                await tick(sessionmaker, clock, http, policy)
            except Exception:  # the worker must outlive a database hiccup
                log.exception("platform jobs failed; retrying at the next tick")
            await asyncio.sleep(every_seconds)
