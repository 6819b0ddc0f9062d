"""Tables of settlement runs (schema `settlement`, migration 0025): a run of one period, each
merchant's statement in it, and every statement line it settled, keyed by journal.

A run is written once, in the transaction that posts its payouts, and never changed: its files
(render.py) are rendered from these rows alone, so they are the same bytes whenever they are
made. A line's key is the wallet's (journal, merchant, unit): a journal is settled once, by the first run that takes it, whatever period it is dated in. Ids of the
wallet's regions, merchants, journals and payments are kept without foreign keys."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Index, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.models import Base

SCHEMA = "settlement"


class SettlementRun(Base):
    """One closed period of a region: when it ran, what it applied, and the transfer file's
    requester as it was then."""

    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("region_id", "label", name="uq_runs_region_id_label"),
        CheckConstraint("cycle IN ('monthly', 'twice_monthly', 'on_demand')", "cycle"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    label: Mapped[str]  # periods.Period.label
    cycle: Mapped[str]
    first_day: Mapped[date]
    last_day: Mapped[date]
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    pay_date: Mapped[date]
    minimum_payout: Mapped[int] = mapped_column(BigInteger)
    merchants: Mapped[int]
    lines: Mapped[int] = mapped_column(BigInteger)
    paid: Mapped[int]  # merchants in the transfer file
    payout_total: Mapped[int] = mapped_column(BigInteger)
    held_back: Mapped[int]
    requester_code: Mapped[str | None]  # None: nothing to pay, no file
    requester_name: Mapped[str | None]
    requester_bank_code: Mapped[str | None]
    requester_bank_name: Mapped[str | None]
    requester_branch_code: Mapped[str | None]
    requester_branch_name: Mapped[str | None]
    requester_account_type: Mapped[str | None]
    requester_account_number: Mapped[str | None]
    run_by: Mapped[str]
    run_at: Mapped[datetime]


class RunMerchant(Base):
    """A merchant's statement in a run: what its lines add up to, what it carried in and out,
    what was paid and where, or why it was held back."""

    __tablename__ = "run_merchants"
    __table_args__ = (
        Index("ix_run_merchants_region_id_merchant_id", "region_id", "merchant_id"),
        CheckConstraint("status IN ('paid', 'carried', 'held')", "status"),
        CheckConstraint("payout >= 0 AND payout_fee >= 0 AND carry_out = due - payout - payout_fee", "payout"),
        CheckConstraint("points_redeemed >= 0", "points"),
        {"schema": SCHEMA},
    )

    run_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    merchant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    name_ja: Mapped[str]
    lines: Mapped[int]
    carry_in: Mapped[int] = mapped_column(BigInteger)  # the previous run's carry_out
    payments: Mapped[int] = mapped_column(BigInteger)  # gross, what residents paid
    refunds: Mapped[int] = mapped_column(BigInteger)  # ≤ 0, on their own date
    sponsored: Mapped[int] = mapped_column(BigInteger)  # sponsors' discounts owed to the shop, less reversals
    fees: Mapped[int] = mapped_column(BigInteger)  # charged (a refund's returned fee lowers it)
    transfers_in: Mapped[int] = mapped_column(BigInteger)
    transfers_out: Mapped[int] = mapped_column(BigInteger)  # ≤ 0
    other_payouts: Mapped[int] = mapped_column(BigInteger)  # ≤ 0: payouts (and their fees) not made by a run
    adjustments: Mapped[int] = mapped_column(BigInteger)  # of the net: lines of earlier periods' trades
    due: Mapped[int] = mapped_column(BigInteger)  # carry_in + the lines' net
    payout: Mapped[int] = mapped_column(BigInteger)  # to the bank account, the transfer file's amount
    payout_fee: Mapped[int] = mapped_column(BigInteger)  # an on-demand payout's fee, besides the payout
    carry_out: Mapped[int] = mapped_column(BigInteger)
    # Points (1 point = 1 yen; migration 0030). The figures above count the point lines with the
    # yen lines; the points due (point_carry_in + the point lines' net) are redeemed into yen
    # (part of `due`) or, for a merchant not redeemed, carried out as points (not in `due`).
    point_carry_in: Mapped[int] = mapped_column(BigInteger)  # the previous run's point_carry_out
    points_redeemed: Mapped[int] = mapped_column(BigInteger)  # ポイント換金: retired, as many yen in `due`
    point_carry_out: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str]
    hold_reason: Mapped[str | None]  # held: service.HoldReason or payout-exceeds-balance
    payout_journal_id: Mapped[uuid.UUID | None]
    payout_fee_journal_id: Mapped[uuid.UUID | None]
    bank_code: Mapped[str | None]  # paid: the account as the file names it
    bank_name: Mapped[str | None]
    branch_code: Mapped[str | None]
    branch_name: Mapped[str | None]
    account_type: Mapped[str | None]
    account_number: Mapped[str | None]
    holder_name: Mapped[str | None]


class SettledLine(Base):
    """A statement line (wallet.statement_lines) settled by a run: its key is unique, so no line
    is counted twice; `adjustment` marks a line of an earlier period's trade (a refund of a
    payment made before the period, a line that became visible after its period closed)."""

    __tablename__ = "settled_lines"
    # The key leads with the journal: journal ids are UUIDv7, so a run's lines, in time order,
    # go to the end of the index (keyed by region and merchant first, each went to a random
    # place in it: inserting a month took more than twice as long). A run's lines lie together in the table, as
    # one statement wrote them; a BRIN index on the run finds them for its files.
    __table_args__ = (
        Index("ix_settled_lines_run_id", "run_id", postgresql_using="brin"),
        {"schema": SCHEMA},
    )

    journal_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    merchant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    unit: Mapped[str] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    run_id: Mapped[uuid.UUID]
    kind: Mapped[str]
    amount: Mapped[int] = mapped_column(BigInteger)
    fee: Mapped[int] = mapped_column(BigInteger)
    net: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime]
    payment_id: Mapped[uuid.UUID | None]
    refund_id: Mapped[uuid.UUID | None]
    counterparty_merchant_id: Mapped[uuid.UUID | None]
    adjustment: Mapped[bool]
