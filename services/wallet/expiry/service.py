"""Expiry: what a lot still holds when it expires is forfeited to the region's expiry account,
and residents are told beforehand.

A run is for one region and one date (`as_of`, a day in Asia/Tokyo). It expires every lot whose
`expires_at` is at or before that day's midnight, one `expiry` journal per wallet (its yen and
point accounts to the expiry accounts of the same units), and records notices for lots that
expire within 30 days (`expiry_30d`) or 7 days (`expiry_7d`), each at most once per lot.

A run is recorded in `expiry_runs`: a second run for a finished date is refused; a run that
stopped half-way (a crash, a restart) is resumed by running the same date again. The job commits
a batch of wallets at a time, so it never holds the town's wallets locked for long; a payment
racing it waits on the wallet's lock and then sees the lot expired or not, never half of each.
Several server processes may run the scheduler: they queue on the run's row.
"""


from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.wallet.directory import service as directory
from services.wallet.directory.models import Region
from services.wallet.expiry import repository as repo
from services.wallet.expiry.errors import ExpiryAlreadyRun, ExpiryDateBeforeRegion, ExpiryDateInFuture
from services.wallet.expiry.models import ExpiryRun
from services.wallet.ledger import service as ledger
from services.wallet.ledger.models import AccountKind, JournalKind, Lot
from shared import audit
from shared.audit import Actor
from shared.clock import TOKYO, Clock, tokyo_date
from shared.ids import new_id
from shared.money import Unit

BATCH = 500  # lots per transaction
NOTICE_DAYS = (30, 7)  # a notice when a lot's expiry comes within this many days


def cutoff(as_of: date) -> datetime:
    """The first instant of `as_of` in Tokyo: lots expiring at or before it are expired."""
    return datetime.combine(as_of, time(), TOKYO)


@dataclass(frozen=True)
class Expired:
    lots: int
    yen: int
    points: int


async def begin(session: AsyncSession, clock: Clock, region: Region, as_of: date, started_by: str) -> ExpiryRun:
    """Start (or resume) the run for `as_of` and hold its row; refuse a finished date."""
    if as_of > tokyo_date(clock.now()):
        raise ExpiryDateInFuture(f"{as_of} has not started yet in Asia/Tokyo.", as_of=as_of.isoformat())
    if as_of < tokyo_date(region.created_at):
        raise ExpiryDateBeforeRegion(
            f"Region {region.code} began on {tokyo_date(region.created_at)}; {as_of} is before it.", as_of=as_of.isoformat(),
        )
    await repo.start_expiry_run(
        session, region_id=region.id, as_of=as_of, status="running", started_by=started_by, started_at=clock.now(),
    )
    run = await repo.lock_expiry_run(session, region.id, as_of)
    if run.status == "done":
        raise ExpiryAlreadyRun(
            f"Expiry for {as_of} in {region.code} finished at {run.finished_at.isoformat() if run.finished_at else '?'}.",
            as_of=as_of.isoformat(), lots_expired=run.lots_expired,
        )
    return run


async def expire_batch(session: AsyncSession, clock: Clock, run: ExpiryRun, actor: str) -> Expired:
    """Expire up to BATCH lots (whole wallets) of the run; nothing left to do → zero lots."""
    found = await ledger.expired_lots(session, run.region_id, cutoff(run.as_of), BATCH)
    if not found:
        return Expired(0, 0, 0)
    accounts = sorted({lot.account_id for lot in found})
    # Lots change only behind their wallet's lock: take the locks, then read the lots again.
    await ledger.lock_accounts(session, accounts)
    by_account: dict[uuid.UUID, list[Lot]] = defaultdict(list)
    for lot in await ledger.expired_lots(session, run.region_id, cutoff(run.as_of), BATCH):
        if lot.account_id in accounts:
            by_account[lot.account_id].append(lot)
    sinks = {unit.value: await ledger.system_account(session, run.region_id, AccountKind.EXPIRED, unit.value) for unit in Unit}
    owners: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for account in await ledger.accounts(session, list(by_account)):
        owners[account.resident_id].append(account.id)
    totals = {Unit.YEN.value: 0, Unit.POINT.value: 0}
    count = 0
    for account_ids in owners.values():  # one journal per wallet, its yen and point parts together
        legs: list[ledger.Leg] = []
        per_unit: dict[str, int] = defaultdict(int)
        for account in await ledger.accounts(session, account_ids):
            amount = sum(lot.remaining for lot in by_account[account.id])
            legs.append(ledger.Leg(account, -amount))
            per_unit[account.unit] += amount
        legs += [ledger.Leg(sinks[unit], amount) for unit, amount in per_unit.items()]
        await ledger.post_journal(
            session, clock, region_id=run.region_id, kind=JournalKind.EXPIRY, actor=actor, legs=legs,
            reference=f"expiry:{run.as_of.isoformat()}", even_if_inactive=True,
        )
        for account_id in account_ids:
            for lot in by_account[account_id]:
                await ledger.change_lot_remaining(session, lot.id, -lot.remaining, expired=lot.remaining)
                count += 1
        for unit, amount in per_unit.items():
            totals[unit] += amount
    await repo.update_expiry_run(
        session, run.region_id, run.as_of, lots_expired=run.lots_expired + count,
        yen_expired=run.yen_expired + totals[Unit.YEN.value], points_expired=run.points_expired + totals[Unit.POINT.value],
    )
    return Expired(count, totals[Unit.YEN.value], totals[Unit.POINT.value])


async def send_notices(session: AsyncSession, clock: Clock, run: ExpiryRun) -> int:
    """Tell residents about lots expiring within 30 and within 7 days of the run's date."""
    start = cutoff(run.as_of)
    sent = 0
    longest, *_ = NOTICE_DAYS
    for lot, resident_id in await ledger.lots_expiring_between(session, run.region_id, start, start + timedelta(days=longest)):
        days_left = (lot.expires_at - start).days  # type: ignore[operator]  # the query selects expiring lots
        kind_days = min(days for days in NOTICE_DAYS if days_left <= days)
        sent += await directory.insert_notice(
            session, id=new_id(), region_id=run.region_id, resident_id=resident_id, kind=f"expiry_{kind_days}d",
            lot_id=lot.id, created_at=clock.now(), payload=_notice_payload(lot, kind_days),
        )
    return sent


def _notice_payload(lot: Lot, days: int) -> dict[str, Any]:
    expires_at = lot.expires_at.astimezone(TOKYO)  # type: ignore[union-attr]
    # The last day it can be used is the day before its midnight expiry.
    return {
        "lot_id": str(lot.id), "unit": lot.unit, "remaining": lot.remaining, "restriction": lot.restriction,
        "expires_at": expires_at.isoformat(), "last_day": (expires_at.date() - timedelta(days=1)).isoformat(),
        "within_days": days,
    }


async def finish(session: AsyncSession, clock: Clock, run: ExpiryRun, notices: int) -> ExpiryRun:
    return await repo.update_expiry_run(
        session, run.region_id, run.as_of, status="done", notices=run.notices + notices, finished_at=clock.now(),
    )


async def run_in_session(session: AsyncSession, clock: Clock, region: Region, as_of: date, actor: str) -> ExpiryRun:
    """The whole run in the caller's transaction (the operator's API call)."""
    run = await begin(session, clock, region, as_of, actor)
    while (await expire_batch(session, clock, run, actor)).lots:
        run = await repo.lock_expiry_run(session, region.id, as_of)
    run = await repo.lock_expiry_run(session, region.id, as_of)
    return await finish(session, clock, run, await send_notices(session, clock, run))


async def run_job(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, region: Region, as_of: date, actor: str
) -> ExpiryRun:
    """The run as a job (CLI, scheduler): a commit per batch; running it again resumes it."""
    async with sessionmaker() as session, session.begin():
        await begin(session, clock, region, as_of, actor)
    while True:
        async with sessionmaker() as session, session.begin():
            run = await repo.lock_expiry_run(session, region.id, as_of)
            if run.status == "done":  # another process finished it meanwhile
                return run
            if not (await expire_batch(session, clock, run, actor)).lots:
                run = await repo.lock_expiry_run(session, region.id, as_of)
                return await finish(session, clock, run, await send_notices(session, clock, run))


async def run_due(sessionmaker: async_sessionmaker[AsyncSession], clock: Clock) -> list[ExpiryRun]:
    """Today's run for every region that has not had it (the scheduler's tick)."""
    today = tokyo_date(clock.now())
    async with sessionmaker() as session:
        regions = await directory.regions(session)
        done = {r.region_id for r in await repo.expiry_runs_on(session, today) if r.status == "done"}
    finished = []
    for region in regions:
        if region.id in done:
            continue
        try:
            finished.append(await run_job(sessionmaker, clock, region, today, "scheduler"))
        except ExpiryAlreadyRun:  # another process got there first
            continue
    return finished






# --- expiry and notices -----------------------------------------------------------------------


async def run_expiry(session: AsyncSession, clock: Clock, actor: Actor, region: Region, as_of: date) -> ExpiryRun:
    """The operator runs (or resumes) expiry for a date, all in this request's transaction."""
    run = await run_in_session(session, clock, region, as_of, actor.subject)
    await audit.record(
        session, clock, actor, region_id=region.id, action="expiry.run", target_type="expiry_run",
        target_id=as_of.isoformat(),
        after={"lots_expired": run.lots_expired, "yen_expired": run.yen_expired,
               "points_expired": run.points_expired, "notices": run.notices},
    )
    return run


async def expiry_runs(session: AsyncSession, region: Region, *, before: date | None, limit: int) -> list[ExpiryRun]:
    return await repo.expiry_runs(session, region.id, before=before, limit=limit)
