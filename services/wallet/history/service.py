"""History carried over from a previous platform (移行), so that statements and reports cover the
years before the switch and residents see their old movements.

How history enters, and why this way. The previous platform's top-ups, payments, refunds and
grants are kept as they were, in `imported_movements` (their own time, their own merchant and
resident), and never become journals here: recording them as journals would put the old
platform's merchant income on merchants' accounts here, and what the old platform has already
paid out would become payable a second time; it would also make value appear in accounts on
dates when this ledger did not hold it. What the ledger must hold is what residents hold at the
switch. So each resident's closing balance (coin and points) is carried over by one `opening`
journal at the import's cut-over instant (the time it is written), from the region's `migration`
account, an issuance account that mirrors what came from the previous platform (invariant 4:
value enters only through issuance journals), into an `opening` lot of each unit. Value is never
invented: the opening is what the imported movements imply (top-ups − payments + refunds in yen;
grants − points spent + points refunded in points), and a file whose stated closing balance
disagrees is refused; `ledger verify` re-checks it (`find_violations`). Merchants' balances are not
carried over: the previous platform settles its shops up to the switch, and a merchant's income
here starts with its first payment here.

An import is checked in full before anything is written, and every problem is listed (line, field,
reason); one problem refuses the whole import. Rows are idempotent by their key (the previous
platform's id): a row an earlier import wrote is skipped, so importing a file again adds nothing.
A resident is carried over once: movements for a resident an earlier import opened are refused
(their opening would no longer match). History may not overlap the region's own: a movement at or
after the region's first journal of its own (its go-live) refuses the import.

Reports read imported rows beside the ledger, marked imported: the merchants' statement lines
(`sales_lines`) and the resident's and the merchant's history (`movements`, paged with the ledger's entries
by one id order, an imported row's id being a UUIDv7 of its own time)."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.directory import service as directory
from services.wallet.directory.models import Region
from services.wallet.history import repository as repo
from services.wallet.history.errors import HistoryOverlaps, HistoryRefused
from services.wallet.history.models import MOVEMENTS, ImportedMovement, Record
from services.wallet.ledger import lots
from services.wallet.ledger import service as ledger
from services.wallet.ledger.models import Account, AccountKind, JournalKind, LotSource, Status
from shared import audit
from shared.audit import Actor
from shared.clock import Clock
from shared.errors import Problem
from shared.ids import id_at, new_id
from shared.money import Unit

# Progress of a long import: (phase, rows done, rows in all), phase "checking" or "writing".
Progress = Callable[[str, int, int], Awaitable[None]]
PROGRESS_EVERY = 500


@dataclass(frozen=True)
class MerchantRow:
    """A merchant of the previous platform by its code: `merchant_id` names a merchant here;
    without it, a merchant here of the same `name` (or `details["name"]`) is that merchant, and
    otherwise one is onboarded with `details` (the fields of POST /v1/merchants, already typed)."""

    line: int
    key: str
    merchant_id: uuid.UUID | None = None
    details: dict[str, Any] | None = None
    name: str | None = None


@dataclass(frozen=True)
class ResidentRow:
    """A resident of the previous platform, who is `subject` here (their identity provider's
    `sub`), and what they held there at the end: checked against their movements."""

    line: int
    key: str
    subject: str
    closing_yen: int
    closing_points: int


@dataclass(frozen=True)
class MovementRow:
    """A top-up (yen), a grant (points), a payment (yen and points paid, the fee on each) or a
    refund of a payment (yen and points back, the fee returned on each), at its original time."""

    line: int
    record: Record
    key: str
    occurred_at: datetime
    resident: str | None  # a resident row's key (a refund: its payment's, if left empty)
    merchant: str | None = None  # a merchant row's key (payments; a refund: its payment's, if left empty)
    yen: int = 0
    points: int = 0
    fee_yen: int = 0
    fee_points: int = 0
    payment: str | None = None  # a refund's payment (a payment row's key)
    memo: str | None = None


@dataclass(frozen=True)
class HistoryBatch:
    merchants: Sequence[MerchantRow] = ()
    residents: Sequence[ResidentRow] = ()
    movements: Sequence[MovementRow] = ()

    @property
    def rows(self) -> int:
        return len(self.merchants) + len(self.residents) + len(self.movements)


@dataclass(frozen=True)
class RowProblem:
    line: int | None  # of the file (its header is line 1); None: the whole file
    key: str | None
    field: str | None
    code: str
    detail: str


@dataclass
class Plan:
    """What a check found: the problems, or the rows to write (and those skipped)."""

    problems: list[RowProblem] = field(default_factory=list)
    go_live: datetime | None = None
    overlapping: int = 0
    merchants: list[MerchantRow] = field(default_factory=list)
    merchant_ids: dict[str, uuid.UUID | None] = field(default_factory=dict)  # None: to onboard
    residents: list[ResidentRow] = field(default_factory=list)
    movements: list[MovementRow] = field(default_factory=list)  # resolved: resident and merchant filled in
    skipped: Counter[str] = field(default_factory=Counter)

    def refusal(self) -> Problem:
        errors = [p.__dict__ for p in self.problems]
        if self.overlapping:
            return HistoryOverlaps(
                f"{self.overlapping} movement(s) are at or after the region's own history began "
                f"({self.go_live.isoformat() if self.go_live else ''}); imported history must end before it.",
                go_live=self.go_live.isoformat() if self.go_live else None, errors=errors,
            )
        return HistoryRefused(
            f"{len(self.problems)} problem(s) in the file; nothing was imported.", errors=errors
        )


@dataclass(frozen=True)
class Imported:
    written: Counter[str]  # per record kind
    skipped: Counter[str]
    openings: int  # opening journals posted
    opened_yen: int
    opened_points: int


async def _tick(progress: Progress | None, phase: str, done: int, total: int) -> None:
    if progress is not None and (done % PROGRESS_EVERY == 0 or done == total):
        await progress(phase, done, total)


# --- checking ------------------------------------------------------------------------------------


async def check(
    session: AsyncSession, clock: Clock, region: Region, batch: HistoryBatch, progress: Progress | None = None
) -> Plan:
    """Every rule, on every row, against this file and what earlier imports wrote; writes nothing."""
    plan = Plan(go_live=await repo.go_live(session, region.id))
    now, total, done = clock.now(), batch.rows, 0

    def bad(row: Any, field_name: str | None, code: str, detail: str) -> None:
        plan.problems.append(RowProblem(row.line, row.key, field_name, code, detail))

    # Merchants: found by id or name, or to be onboarded.
    known_merchants = await repo.imported_merchants(session, region.id)
    plan.merchant_ids.update(known_merchants)
    classes = {c.code for c in await directory.merchant_classes(session, region)}
    seen: dict[tuple[str, str], int] = {}
    names: dict[str, int] = {}
    for m in batch.merchants:
        done += 1
        await _tick(progress, "checking", done, total)
        if (first := seen.setdefault((Record.MERCHANT, m.key), m.line)) != m.line:
            bad(m, "key", "duplicate-key", f"Merchant {m.key!r} is already on line {first}.")
            continue
        if m.key in known_merchants:
            if m.merchant_id is not None and m.merchant_id != known_merchants[m.key]:
                bad(m, "merchant_id", "key-reused", f"Merchant {m.key!r} was imported as {known_merchants[m.key]}.")
            else:
                plan.skipped[Record.MERCHANT] += 1
            continue
        target: uuid.UUID | None = None
        if m.merchant_id is not None:
            found = await directory.merchant(session, m.merchant_id)
            if found is None or found.region_id != region.id:
                bad(m, "merchant_id", "unknown-merchant", f"No merchant {m.merchant_id} in {region.code}.")
                continue
            target = found.id
        elif m.details is None:
            existing = await directory.merchant_by_name(session, region.id, m.name) if m.name else None
            if existing is None:
                bad(m, "name" if m.name else "merchant_id", "unknown-merchant",
                    f"No merchant {m.name!r} in {region.code}: give merchant_id, or every field to onboard it."
                    if m.name else "Give merchant_id (a merchant here), its name, or the fields to onboard one.")
                continue
            target = existing.id
        else:
            name = m.details["name"]
            if (other := names.setdefault(name, m.line)) != m.line:
                bad(m, "name", "duplicate-name", f"Merchant {name!r} is already on line {other}.")
                continue
            existing = await directory.merchant_by_name(session, region.id, name)
            if existing is not None:
                target = existing.id
            else:
                if m.details["merchant_class"] not in classes:
                    bad(m, "merchant_class", "unknown-merchant-class",
                        f"No merchant class {m.details['merchant_class']!r}; known: {', '.join(sorted(classes))}.")
                try:
                    directory.check_printable(m.details, "name_ja")
                    directory.check_registration_number(m.details.get("invoice_registration_number"))
                except Problem as problem:
                    bad(m, None, problem.slug, problem.detail)
        plan.merchant_ids[m.key] = target
        plan.merchants.append(m)

    # Residents: each carried over once.
    known_residents = await repo.imported_residents(session, region.id)
    taken = {subject: key for key, (subject, _) in known_residents.items()}
    residents: dict[str, ResidentRow] = {}
    for r in batch.residents:
        done += 1
        await _tick(progress, "checking", done, total)
        if (first := seen.setdefault((Record.RESIDENT, r.key), r.line)) != r.line:
            bad(r, "key", "duplicate-key", f"Resident {r.key!r} is already on line {first}.")
            continue
        if r.key in known_residents:
            if known_residents[r.key][0] != r.subject:
                bad(r, "subject", "key-reused", f"Resident {r.key!r} was imported as {known_residents[r.key][0]!r}.")
            else:
                plan.skipped[Record.RESIDENT] += 1
            continue
        if r.subject in taken:
            bad(r, "subject", "duplicate-subject", f"{r.subject!r} is already resident {taken[r.subject]!r}.")
            continue
        taken[r.subject] = r.key
        residents[r.key] = r
        plan.residents.append(r)

    # Movements: first each on its own, then refunds against their payments, then balances.
    known_moves = await repo.imported_movement_keys(session, region.id)
    payments: dict[str, MovementRow] = {}
    fresh: list[MovementRow] = []
    for mv in batch.movements:
        done += 1
        await _tick(progress, "checking", done, total)
        if (first := seen.setdefault((mv.record, mv.key), mv.line)) != mv.line:
            bad(mv, "key", "duplicate-key", f"{mv.record.capitalize()} {mv.key!r} is already on line {first}.")
            continue
        if (mv.record.value, mv.key) in known_moves:
            plan.skipped[mv.record] += 1
            continue
        if mv.occurred_at > now:
            bad(mv, "occurred_at", "in-future", f"{mv.occurred_at.isoformat()} has not happened yet.")
        if plan.go_live is not None and mv.occurred_at >= plan.go_live:
            plan.overlapping += 1
            bad(mv, "occurred_at", "overlaps-native-history",
                f"{mv.occurred_at.isoformat()} is not before the region's own history began ({plan.go_live.isoformat()}).")
        _check_amounts(mv, bad)
        if mv.record == Record.PAYMENT:
            payments[mv.key] = mv
        fresh.append(mv)

    refunded: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for mv in sorted(fresh, key=lambda m: (m.occurred_at, m.line)):
        resident, merchant = mv.resident, mv.merchant
        if mv.record == Record.REFUND:
            paid = payments.get(mv.payment or "")
            if paid is None:
                bad(mv, "payment", "unknown-payment", f"No payment {mv.payment!r} in this file.")
            else:
                if resident not in (None, paid.resident):
                    bad(mv, "resident", "not-the-payer", f"Payment {paid.key!r} was made by {paid.resident!r}.")
                if merchant not in (None, paid.merchant):
                    bad(mv, "merchant", "not-the-payee", f"Payment {paid.key!r} was made to {paid.merchant!r}.")
                resident, merchant = paid.resident, paid.merchant
                if mv.occurred_at < paid.occurred_at:
                    bad(mv, "occurred_at", "refund-before-payment",
                        f"The refund is before its payment ({paid.occurred_at.isoformat()}).")
                so_far = refunded[paid.key]
                for i, (name, back, of) in enumerate((
                    ("yen", mv.yen, paid.yen), ("points", mv.points, paid.points),
                    ("fee_yen", mv.fee_yen, paid.fee_yen), ("fee_points", mv.fee_points, paid.fee_points),
                )):
                    so_far[i] += back
                    if back and so_far[i] > of:
                        bad(mv, name, "refund-exceeds-payment",
                            f"Refunds of payment {paid.key!r} would give back {so_far[i]} {name}; it was {of}.")
        if mv.record in (Record.PAYMENT, Record.REFUND) and merchant is not None and merchant not in plan.merchant_ids:
            bad(mv, "merchant", "unknown-merchant", f"No merchant {merchant!r} in this file or an earlier import.")
        if resident is None or resident not in residents:
            if resident in known_residents:
                bad(mv, "resident", "resident-closed",
                    f"Resident {resident!r} was carried over by an earlier import; their history can no longer change.")
            elif mv.record != Record.REFUND or mv.payment in payments:
                bad(mv, "resident", "unknown-resident", f"No resident {resident!r} in this file.")
            continue
        plan.movements.append(_resolved(mv, resident, merchant))

    _check_balances(plan, residents, bad)
    return plan


def _check_amounts(mv: MovementRow, bad: Callable[..., None]) -> None:
    if mv.record in (Record.TOPUP, Record.GRANT):
        unit, other = ("yen", "points") if mv.record == Record.TOPUP else ("points", "yen")
        if getattr(mv, unit) <= 0:
            bad(mv, unit, "amount-required", f"A {mv.record} adds {unit} (more than 0).")
        if getattr(mv, other):
            bad(mv, other, "wrong-unit", f"A {mv.record} adds {unit} only.")
        for name in ("merchant", "payment"):
            if getattr(mv, name):
                bad(mv, name, "not-applicable", f"A {mv.record} has no {name}.")
        for name in ("fee_yen", "fee_points"):
            if getattr(mv, name):
                bad(mv, name, "not-applicable", f"A {mv.record} has no fee.")
        return
    if mv.yen + mv.points <= 0:
        bad(mv, "yen", "amount-required", f"A {mv.record} moves yen, points or both (more than 0).")
    if mv.fee_yen > mv.yen:
        bad(mv, "fee_yen", "fee-exceeds-amount", f"The fee {mv.fee_yen} is more than the {mv.yen} yen.")
    if mv.fee_points > mv.points:
        bad(mv, "fee_points", "fee-exceeds-amount", f"The fee {mv.fee_points} is more than the {mv.points} points.")
    if mv.record == Record.PAYMENT:
        if not mv.merchant:
            bad(mv, "merchant", "merchant-required", "A payment names its merchant.")
        if mv.payment:
            bad(mv, "payment", "not-applicable", "A payment refers to no payment.")
    elif not mv.payment:
        bad(mv, "payment", "payment-required", "A refund names its payment.")


def _resolved(mv: MovementRow, resident: str, merchant: str | None) -> MovementRow:
    return MovementRow(
        mv.line, mv.record, mv.key, mv.occurred_at, resident, merchant, mv.yen, mv.points, mv.fee_yen,
        mv.fee_points, mv.payment, mv.memo,
    )


# What a movement does to its resident's (yen, points).
def _effect(mv: MovementRow) -> tuple[int, int]:
    sign = -1 if mv.record == Record.PAYMENT else 1
    return sign * mv.yen, sign * mv.points


def _check_balances(plan: Plan, residents: dict[str, ResidentRow], bad: Callable[..., None]) -> None:
    """Along each resident's history in time order neither balance goes below zero, and where it
    ends is what the file says they held."""
    running: dict[str, list[int]] = {key: [0, 0] for key in residents}
    negative: set[tuple[str, int]] = set()
    for mv in sorted(plan.movements, key=lambda m: (m.occurred_at, m.line)):
        assert mv.resident is not None
        balance = running[mv.resident]
        for i, delta in enumerate(_effect(mv)):
            balance[i] += delta
            if balance[i] < 0 and (mv.resident, i) not in negative:
                negative.add((mv.resident, i))
                unit = ("yen", "points")[i]
                bad(mv, unit, "balance-negative",
                    f"Resident {mv.resident!r} would hold {balance[i]} {unit} after this {mv.record}.")
    for key, resident in residents.items():
        yen, points = running[key]
        if resident.closing_yen != yen:
            bad(resident, "closing_yen", "closing-mismatch",
                f"The file states {resident.closing_yen} yen; the resident's movements give {yen}.")
        if resident.closing_points != points:
            bad(resident, "closing_points", "closing-mismatch",
                f"The file states {resident.closing_points} points; the resident's movements give {points}.")


# --- writing -------------------------------------------------------------------------------------


async def write(
    session: AsyncSession, clock: Clock, actor: Actor, region: Region, batch: HistoryBatch, *, batch_id: uuid.UUID,
    progress: Progress | None = None,
) -> Imported:
    """Check the batch (one import per region at a time) and, only if it has no problem, write all
    of it: merchants found or onboarded, residents' wallets, the movements as imported rows and
    each new resident's opening journal. Refuses history-refused or history-overlaps (every
    problem in `errors`), writing nothing."""
    await repo.lock_region(session, region.id)
    plan = await check(session, clock, region, batch, progress)
    if plan.problems:
        raise plan.refusal()
    now, total, done = clock.now(), len(plan.merchants) + len(plan.residents) + len(plan.movements), 0
    written: Counter[str] = Counter()

    mapped = []
    for m in plan.merchants:
        merchant_id = plan.merchant_ids[m.key]
        onboarded = merchant_id is None
        if merchant_id is None:
            assert m.details is not None
            merchant_id = (await directory.onboard_merchant(session, clock, actor, region, dict(m.details))).id
        plan.merchant_ids[m.key] = merchant_id
        mapped.append({"id": new_id(), "region_id": region.id, "code": m.key, "merchant_id": merchant_id,
                       "onboarded": onboarded, "batch_id": batch_id, "created_at": now})
        written[Record.MERCHANT] += 1
        done += 1
        await _tick(progress, "writing", done, total)
    await repo.insert_merchants(session, mapped)

    wallets: dict[str, directory.Wallet] = {}
    for r in plan.residents:
        wallet = wallets[r.key] = await directory.wallet_for(session, clock, region, r.subject)
        await repo.insert_resident(
            session, id=new_id(), region_id=region.id, source_key=r.key, resident_id=wallet.resident.id,
            closing_yen=r.closing_yen, closing_points=r.closing_points, opening_journal_id=None, batch_id=batch_id,
            created_at=now,
        )
        written[Record.RESIDENT] += 1
        done += 1
        await _tick(progress, "writing", done, total)

    rows: list[dict[str, Any]] = []
    for mv in plan.movements:
        assert mv.resident is not None
        merchant_id = plan.merchant_ids[mv.merchant] if mv.merchant else None
        # One id per unit, of its own time; the point part's just after the yen part's.
        base = id_at(mv.occurred_at).int & ~1
        for unit, amount, fee, low in ((Unit.YEN, mv.yen, mv.fee_yen, 0), (Unit.POINT, mv.points, mv.fee_points, 1)):
            if amount:
                rows.append({
                    "id": uuid.UUID(int=base | low), "region_id": region.id, "record": mv.record.value,
                    "source_key": mv.key, "unit": unit.value, "occurred_at": mv.occurred_at,
                    "resident_id": wallets[mv.resident].resident.id,
                    "merchant_id": merchant_id if mv.record in (Record.PAYMENT, Record.REFUND) else None,
                    "amount": amount, "fee": fee, "payment_key": mv.payment, "memo": mv.memo, "line": mv.line,
                    "batch_id": batch_id, "created_at": now,
                })
        written[mv.record] += 1
        done += 1
        if len(rows) >= 1000:
            await repo.insert_movements(session, rows)
            rows = []
        await _tick(progress, "writing", done, total)
    await repo.insert_movements(session, rows)

    openings, opened_yen, opened_points = 0, 0, 0
    if any(r.closing_yen or r.closing_points for r in plan.residents):
        migration = await _migration_accounts(session, clock, region)
        for r in plan.residents:
            if r.closing_yen or r.closing_points:
                await _open(session, clock, actor, region, migration, wallets[r.key], r, batch_id)
                openings += 1
                opened_yen += r.closing_yen
                opened_points += r.closing_points
    imported = Imported(written, plan.skipped, openings, opened_yen, opened_points)
    await audit.record(
        session, clock, actor, region_id=region.id, action="history.import", target_type="history_import",
        target_id=batch_id, after={"written": dict(written), "skipped": dict(plan.skipped), "openings": openings,
                                   "opened_yen": opened_yen, "opened_points": opened_points},
    )
    return imported


async def _migration_accounts(session: AsyncSession, clock: Clock, region: Region) -> dict[str, Account]:
    """The region's migration accounts (yen, points), made on the first import that opens a balance."""
    found = {a.unit: a for a in await ledger.system_accounts(session, region.id) if a.kind == AccountKind.MIGRATION}
    for unit in Unit:
        if unit.value not in found:
            found[unit.value] = await ledger.insert_account(
                session, id=new_id(), region_id=region.id, kind=AccountKind.MIGRATION.value, unit=unit.value,
                status=Status.ACTIVE.value, tracks_balance=False, may_go_negative=True, created_at=clock.now(),
            )
    return found


async def _open(
    session: AsyncSession, clock: Clock, actor: Actor, region: Region, migration: dict[str, Account],
    wallet: directory.Wallet, resident: ResidentRow, batch_id: uuid.UUID,
) -> None:
    """The resident's closing balance on the previous platform, into their wallet. Carried even
    past the balance cap or into a suspended wallet: it is value they already hold."""
    parts = [(wallet.account, resident.closing_yen), (wallet.points, resident.closing_points)]
    legs = []
    for account, amount in parts:
        if amount:
            legs += [ledger.Leg(migration[account.unit], -amount), ledger.Leg(account, amount)]
    posted = await ledger.post_journal(
        session, clock, region_id=region.id, kind=JournalKind.OPENING, actor=actor.subject, legs=legs,
        reference=f"history:{resident.key}", memo=f"carried over by import {batch_id}", even_if_inactive=True,
    )
    for account, amount in parts:
        if amount:
            await lots.issue(session, account=account, amount=amount, source=LotSource.OPENING,
                             journal_id=posted.journal_id, rule=lots.LotRule(), now=posted.created_at)
    await repo.set_opening(session, wallet.resident.id, posted.journal_id)


# --- reading and verifying ------------------------------------------------------------------------

sales_lines = repo.sales_lines
movements = repo.movements


def signed(record: str, amount: int) -> int:
    """What an imported movement did to its resident's wallet."""
    return -amount if record == Record.PAYMENT else amount


def merchant_signed(movement: ImportedMovement) -> int:
    """What an imported payment or refund did to its merchant's balance: net of the fee, as the
    merchant's own history shows a payment here."""
    net = movement.amount - movement.fee
    return net if movement.record == Record.PAYMENT else -net


@dataclass(frozen=True)
class Mismatch:
    resident_id: uuid.UUID
    unit: str
    stated: int
    implied: int
    opened: int


async def find_mismatches(session: AsyncSession, region_id: uuid.UUID | None = None) -> list[Mismatch]:
    """Imported residents whose stated closing balance, imported movements and opening journal
    do not all agree, per unit (`ledger verify`)."""
    return [Mismatch(*row) for row in await repo.opening_mismatches(session, region_id)]


__all__ = ["MOVEMENTS", "HistoryBatch", "Imported", "MerchantRow", "MovementRow", "Plan", "Record", "ResidentRow",
           "RowProblem", "check", "find_mismatches", "write"]
