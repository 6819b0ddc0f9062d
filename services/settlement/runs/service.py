"""Settlement runs: a period closed once, its merchants paid, its files reproducible.

**What a run settles.** The merchants whose cycle in force at the period's end
(`service.cycles_at`) is the period's, and of each every statement line, in yen and in points,
dated before the period's end that no run has settled yet (periods.py, the grace period): the
lines of both units are inserted as the run's in one statement (a month is millions of lines,
read once), keyed by (journal, merchant, unit), so a line is settled once, whether it was dated
in the period or became visible after an earlier period closed (then it is an adjustment, as is
a refund of a payment of an earlier period). A statement's figures count points as yen (1 point
= 1 yen: a shop sold as much either way).

**Points (ポイント換金).** Points residents spend at a shop (premiums, grants, rewards) are the
city's campaign fund's value; the wallet pays out yen only. So the points due (point carry-in +
the point lines' net) of a merchant the bank file can pay are redeemed first
(`public.redeem_points`, keyed by the run and merchant like the payout, so a retried run never
redeems twice): its points retire to the campaign fund and the fund pays it as many yen, which
are then part of its due, paid by the same payout (the transfer file and the statements still
agree) or, below the minimum payout, carried as yen like the rest. A merchant held back for want
of a payable account is not redeemed: its points stay points, carried out as points
(point_carry_out) until a run can pay it, so nothing is turned into yen that cannot leave, and a
refund of a point payment can still take its points back meanwhile. Once redeemed the points are
gone from the shop's point account: a later refund that must give a resident points back is
refused insufficient-balance (nothing changes), exactly as a refund of yen already paid out is;
the shop refunds another way, or the operator posts an adjustment. Points due that are not
positive, or that a refund after the period's end already took (redemption-exceeds-points),
are carried as points.

**What a merchant is paid.** due = carry-in (the previous run's carry-out) + the yen lines' net
(payments − refunds + sponsors' discounts − fees ± transfers − other payouts) + the points
redeemed; in the figures, carry-in + point carry-in + all the lines' sums − point carry-out. A merchant the
bank file cannot pay (`service.accounts_for`: no account, a bank or branch no longer known) is
held back with the reason; one whose due is below the region's minimum payout (or not
positive) is carried; both keep their money, carried into their next run. The others are paid
due by a payout journal (merchant → bank clearing, `public.post_payout`, keyed by the run and
merchant); on the on-demand cycle the region's on-demand payout fee is taken besides (a
`payout_fee` journal to fee income) and the payout is the due less the fee. Those journals'
lines, and the redemption's two (points −N, yen +N), are the run's own, so the next run does not
count them again. After a run, a merchant's carry-out (point carry-out) is exactly its settled
yen (point) lines' total: its balance less the lines not yet settled, in each unit.

**Once.** Runs of a region hold a transaction-level advisory lock: a second run at the same
time is refused (settlement-run-in-progress), and a period already run is returned as it was,
nothing written. A period is refused until its end and grace period have passed. Everything a
run writes, payouts included, commits in the caller's one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.settlement import service as settlement
from services.settlement.periods import Cycle, Period, period_named
from services.settlement.runs import render
from services.settlement.runs import repository as repo
from services.settlement.runs.errors import (
    PeriodInvalid,
    PeriodNotEnded,
    RunFileNotFound,
    RunInProgress,
    RunNotFound,
    StatementNotFound,
)
from services.settlement.runs.models import RunMerchant, SettlementRun
from services.wallet import public
from shared import audit
from shared.audit import Actor
from shared.clock import Clock
from shared.errors import Problem
from shared.ids import new_id

Progress = Callable[[str, int, int], Awaitable[None]]
PAYOUT_SHORT = "payout-exceeds-balance"  # a hold reason besides service.HoldReason's
REDEMPTION_SHORT = "redemption-exceeds-points"  # a refund after the period's end took the points: carried


def period_of(label: str) -> Period:
    try:
        return period_named(label)
    except ValueError as exc:
        raise PeriodInvalid(str(exc)) from None


def payout_key(label: str, merchant_id: uuid.UUID) -> str:
    return f"settlement:{label}:{merchant_id}"


@dataclass(frozen=True)
class RunResult:
    run: SettlementRun
    created: bool  # False: the period had been run; nothing was written


async def _nothing(phase: str, done: int, total: int) -> None:
    return None


async def run(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, label: str, progress: Progress = _nothing
) -> RunResult:
    """Settle the period `label` names. Refuses period-invalid, period-not-ended,
    settlement-run-in-progress, source-account-not-found (and the requester's bank or branch
    no longer known) when a merchant is to be paid; nothing is written then."""
    period = period_of(label)
    region_id = await public.region_id(session, region=region)
    now = clock.now()
    if now < period.readable_at:
        raise PeriodNotEnded(
            f"Period {period.label} ends at {period.end.isoformat()}; it can be settled from "
            f"{period.readable_at.isoformat()} (the grace period).", readable_at=period.readable_at.isoformat(),
        )
    if not await repo.try_lock_region(session, region_id):
        raise RunInProgress(f"A settlement run of region {region} is in progress; ask again when it has finished.")
    if (found := await repo.run(session, region_id, period.label)) is not None:
        return RunResult(found, False)

    merchants = {m.merchant_id: m for m in await public.onboarded_bank_accounts(session, region=region)}
    cycles = await settlement.cycles_at(session, region=region, merchant_ids=list(merchants), at=period.end)
    members = sorted(m for m, cycle in cycles.items() if cycle is period.cycle)
    run_id = new_id()
    await progress("lines", 0, len(members))
    lines = await public.statement_lines_before(session, region=region, until=period.end, merchant_ids=members,
                                                units=("yen", "point"))
    sums = {row.merchant_id: row for row in await repo.settle_lines(
        session, run_id=run_id, region_id=region_id, period_start=period.start, lines=lines)}
    carried = await repo.carried_in(session, region_id, members)
    settled = [m for m in members if m in sums or carried.get(m, (0, 0)) != (0, 0)]
    await progress("lines", len(members), len(members))

    rules = await settlement.payout_settings(session, region=region)
    payees = await settlement.accounts_for(session, region=region, merchant_ids=settled)
    statements: list[dict[str, Any]] = []
    run_lines: list[dict[str, Any]] = []  # the run's own: its redemptions', payouts' and fees' lines

    def own_line(merchant_id: uuid.UUID, unit: str, journal_id: uuid.UUID, kind: str, amount: int,
                 at: Any) -> dict[str, Any]:
        return {"run_id": run_id, "region_id": region_id, "merchant_id": merchant_id, "unit": unit,
                "journal_id": journal_id, "kind": kind, "amount": amount, "fee": 0, "net": amount,
                "occurred_at": at, "payment_id": None, "refund_id": None, "counterparty_merchant_id": None,
                "adjustment": False}

    for merchant_id in settled:
        s = sums.get(merchant_id)
        carry_in, point_carry_in = carried.get(merchant_id, (0, 0))
        point_net = s.point_net if s else 0
        points_due = point_carry_in + point_net
        redeemed = 0
        # ポイント換金: a merchant the bank file can pay has its points redeemed into yen (they are
        # then paid, or carried as yen below the minimum); one held back keeps them as points.
        if points_due > 0 and merchant_id not in payees.held_back:
            try:
                made = await public.redeem_points(
                    session, clock, region=region, actor=actor, merchant_id=merchant_id, amount=points_due,
                    key=payout_key(period.label, merchant_id),
                )
            except Problem as refused:
                if refused.slug != REDEMPTION_SHORT:
                    raise
            else:
                redeemed = made.amount
                run_lines += [own_line(merchant_id, "point", made.journal_id, "point_redemption", -redeemed,
                                       made.created_at),
                              own_line(merchant_id, "yen", made.journal_id, "point_redemption", redeemed,
                                       made.created_at)]
        statements.append({
            "run_id": run_id, "merchant_id": merchant_id, "region_id": region_id,
            "name_ja": merchants[merchant_id].name_ja, "lines": s.lines if s else 0, "carry_in": carry_in,
            **{k: getattr(s, k) if s else 0 for k in ("payments", "refunds", "sponsored", "fees", "transfers_in",
                                                     "transfers_out", "other_payouts", "adjustments")},
            "due": carry_in + (s.net - point_net if s else 0) + redeemed, "payout": 0, "payout_fee": 0,
            "status": "carried", "hold_reason": None, "payout_journal_id": None, "payout_fee_journal_id": None,
            "point_carry_in": point_carry_in, "points_redeemed": redeemed, "point_carry_out": points_due - redeemed,
        })
    # An on-demand payout is charged its fee besides; the payout is what is left of the due.
    fee = rules.on_demand_fee if period.cycle is Cycle.ON_DEMAND else 0
    to_pay = {st["merchant_id"] for st in statements if st["merchant_id"] in payees.payable
              and st["due"] - fee >= max(rules.minimum_payout, 1)}
    requester = await settlement.requester(session, region=region) if to_pay else None

    for done, st in enumerate(statements, 1):
        merchant_id = st["merchant_id"]
        if merchant_id in payees.held_back:
            st |= {"status": "held", "hold_reason": str(payees.held_back[merchant_id])}
        elif merchant_id in to_pay:
            try:
                paid = await public.post_payout(
                    session, clock, region=region, actor=actor, merchant_id=merchant_id, amount=st["due"] - fee,
                    key=payout_key(period.label, merchant_id), fee=fee,
                )
            except Problem as refused:
                if refused.slug != PAYOUT_SHORT:
                    raise
                st |= {"status": "held", "hold_reason": PAYOUT_SHORT}
            else:
                payee = payees.payable[merchant_id]
                a = payee.account
                st |= {"status": "paid", "payout": paid.amount, "payout_journal_id": paid.journal_id,
                       "payout_fee": paid.fee, "payout_fee_journal_id": paid.fee_journal_id,
                       "bank_code": a.bank_code, "bank_name": a.bank_name, "branch_code": a.branch_code,
                       "branch_name": a.branch_name, "account_type": a.account_type.value,
                       "account_number": a.account_number, "holder_name": payee.holder_name}
                charged = [(paid.journal_id, "payout", paid.amount)]
                if paid.fee_journal_id is not None:
                    charged.append((paid.fee_journal_id, "payout_fee", paid.fee))
                run_lines += [own_line(merchant_id, "yen", journal_id, kind, -amount, paid.created_at)
                              for journal_id, kind, amount in charged]
        st["carry_out"] = st["due"] - st["payout"] - st["payout_fee"]
        if done % 100 == 0 or done == len(statements):
            await progress("payouts", done, len(statements))

    for key in ("bank_code", "bank_name", "branch_code", "branch_name", "account_type", "account_number",
                "holder_name"):
        for st in statements:
            st.setdefault(key, None)
    await repo.insert_lines(session, run_lines)
    paid_out = [st for st in statements if st["status"] == "paid"]
    r = requester.account if requester else None
    made = await repo.insert_run(
        session, id=run_id, region_id=region_id, label=period.label, cycle=period.cycle.value,
        first_day=period.first_day, last_day=period.last_day, period_start=period.start, period_end=period.end,
        pay_date=period.pay_date, minimum_payout=rules.minimum_payout,
        merchants=len(statements), lines=sum(st["lines"] for st in statements) + len(run_lines),
        paid=len(paid_out), payout_total=sum(st["payout"] for st in paid_out),
        held_back=sum(st["status"] == "held" for st in statements),
        requester_code=requester.code if requester else None, requester_name=requester.name if requester else None,
        requester_bank_code=r.bank_code if r else None, requester_bank_name=r.bank_name if r else None,
        requester_branch_code=r.branch_code if r else None, requester_branch_name=r.branch_name if r else None,
        requester_account_type=r.account_type.value if r else None,
        requester_account_number=r.account_number if r else None, run_by=actor.subject, run_at=now,
    )
    await repo.insert_merchants(session, statements)
    await audit.record(
        session, clock, actor, region_id=region_id, action="settlement_run.closed", target_type="settlement_run",
        target_id=run_id, after={"period": period.label, "merchants": made.merchants, "paid": made.paid,
                                 "payout_total": made.payout_total, "held_back": made.held_back},
    )
    return RunResult(made, True)


async def get_run(session: AsyncSession, *, region: str, label: str) -> SettlementRun:
    region_id = await public.region_id(session, region=region)
    found = await repo.run(session, region_id, period_of(label).label)
    if found is None:
        raise RunNotFound(f"Period {label} has not been settled in region {region}.")
    return found


async def list_runs(session: AsyncSession, *, region: str, before_id: uuid.UUID | None, limit: int
                    ) -> list[SettlementRun]:
    region_id = await public.region_id(session, region=region)
    return await repo.runs(session, region_id, before_id=before_id, limit=limit)


async def statements(session: AsyncSession, found: SettlementRun, merchant_id: uuid.UUID | None = None
                     ) -> list[RunMerchant]:
    return await repo.run_merchants(session, found.id, merchant_id)


def _line_streams(session: AsyncSession, found: SettlementRun, merchant_id: uuid.UUID | None = None
                  ) -> tuple[AsyncIterator[tuple[uuid.UUID, str]], AsyncIterator[Any], AsyncIterator[Any]]:
    """The three streams a run's statements are made of (render.statements), by merchant id: the
    lines' CSV rows, written by the database with render's labels, the payments by day, the
    other lines."""
    at = (session, found.region_id, found.id)
    return (repo.line_texts(*at, render.KINDS, render.ADJUSTMENT, render.POINT, merchant_id),
            repo.payment_days(*at, merchant_id), repo.other_lines(*at, merchant_id))


async def files(session: AsyncSession, found: SettlementRun, progress: Progress = _nothing
                ) -> AsyncIterator[tuple[str, bytes]]:
    """Every file of the run (render.py), name and bytes, the statements streamed in merchant order."""
    merchants = await repo.run_merchants(session, found.id)
    yield "summary.csv", render.summary(found, merchants)
    yield "held-back.csv", render.held_back(found, merchants)
    if (transfers := render.transfer_file(found, merchants)) is not None:
        yield "zengin.txt", transfers
    done = 0
    async for statement in render.statements(found, merchants, *_line_streams(session, found)):
        yield render.statement_name(statement.merchant.merchant_id, "csv"), statement.csv()
        yield render.statement_name(statement.merchant.merchant_id, "pdf"), statement.pdf()
        done += 1
        if done % 50 == 0 or done == len(merchants):
            await progress("files", done, len(merchants))


async def file(session: AsyncSession, found: SettlementRun, name: str) -> bytes:
    """One of the run's files by its name (refuses run-file-not-found)."""
    merchants = await repo.run_merchants(session, found.id)
    made = {"summary.csv": render.summary, "held-back.csv": render.held_back,
            "zengin.txt": render.transfer_file}.get(name)
    body = made(found, merchants) if made is not None else None
    if body is None:
        raise RunFileNotFound(f"Run {found.label} has no file {name!r}: summary.csv, held-back.csv and, when a "
                              "merchant was paid, zengin.txt.")
    return body


async def statement(session: AsyncSession, found: SettlementRun, merchant_id: uuid.UUID) -> render.Statement:
    """One merchant's statement in the run (refuses statement-not-found)."""
    merchants = await repo.run_merchants(session, found.id, merchant_id)
    if not merchants:
        raise StatementNotFound(f"Run {found.label} has no statement of merchant {merchant_id}.")
    async for made in render.statements(found, merchants, *_line_streams(session, found, merchant_id)):
        return made
    raise AssertionError("a statement per merchant")
