"""What the wallet service does on its own, on a timer inside the server: each tick runs every
region's expiry for the day that has begun (services/wallet/expiry/service.py) and releases the unpaid
wins of lotteries past their payment deadline (services/wallet/premium). Both are idempotent, so
several server processes may tick at once. By hand: `chiikipay jobs expire` and the operator's
`POST /v1/campaigns/{id}/premium-release`."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.wallet.expiry import service as expiry
from services.wallet.premium import service as premium
from shared.clock import Clock

log = logging.getLogger(__name__)


async def tick(sessionmaker: async_sessionmaker[AsyncSession], clock: Clock) -> None:
    for run in await expiry.run_due(sessionmaker, clock):
        log.info("expiry run finished", extra={"region_id": str(run.region_id), "as_of": run.as_of.isoformat(),
                                               "lots": run.lots_expired, "notices": run.notices})
    async with sessionmaker() as session, session.begin():
        for released in await premium.release_unpaid_wins(session, clock):
            log.info("unpaid lottery wins released", extra={"campaign_id": str(released.campaign_id),
                                                            "applications": released.applications})


async def scheduler(sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, every_seconds: float) -> None:
    """Tick at start-up and then every `every_seconds`; a failing tick is logged and retried at
    the next one."""
    while True:
        try:
            await tick(sessionmaker, clock)
        except Exception:  # noqa: BLE001 — the scheduler must outlive a database hiccup
            log.exception("scheduled wallet jobs failed; retrying at the next tick")
        await asyncio.sleep(every_seconds)
