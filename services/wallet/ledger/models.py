"""Tables of the ledger: accounts, journals, entries and lots.

Sign convention: an entry's `amount` is what the account gains (+) or gives up (−). Issuance
accounts (bank clearing, counter cash, campaign funds) therefore run negative: their balance is
the mirror of the value they have put into circulation. Every journal sums to zero per unit (the
database refuses any other at commit: ledger/sql/check_journal_balanced.sql)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ARRAY, CheckConstraint, ForeignKey, Identity, Index, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models import Base
from shared.money import Unit

SCHEMA = "wallet"


class AccountKind(StrEnum):
    RESIDENT = "resident"
    MERCHANT = "merchant"
    BANK_CLEARING = "bank_clearing"  # money held at the bank for wallet holders; bank top-ups, payouts
    COUNTER_CASH = "counter_cash"  # cash taken at a city counter for top-ups
    FEE_INCOME = "fee_income"
    CAMPAIGN_FUND = "campaign_fund"  # the city's money behind campaigns: issues points into budgets
    CAMPAIGN_BUDGET = "campaign_budget"  # one campaign's points, funded from the campaign fund; never negative
    SPONSOR_BUDGET = "sponsor_budget"  # a sponsor's yen that pays shops the discounts it funds; never negative
    EXPIRED = "expired"  # sink for value forfeited at expiry
    # The mirror of the value residents held on a previous platform, carried over by opening
    # journals at a history import's cut-over (services/wallet/history); made on first use.
    MIGRATION = "migration"


# Where value may enter or leave circulation (invariant 4).
ISSUANCE_KINDS = frozenset(
    {AccountKind.BANK_CLEARING, AccountKind.COUNTER_CASH, AccountKind.CAMPAIGN_FUND, AccountKind.MIGRATION}
)
# A region's own accounts. Money comes in and goes out to banks and counters in yen only; fees,
# the campaign fund (which issues points) and expiry exist in both units.
SYSTEM_ACCOUNTS = (
    (AccountKind.BANK_CLEARING, Unit.YEN),
    (AccountKind.COUNTER_CASH, Unit.YEN),
    (AccountKind.FEE_INCOME, Unit.YEN),
    (AccountKind.FEE_INCOME, Unit.POINT),
    (AccountKind.CAMPAIGN_FUND, Unit.YEN),
    (AccountKind.CAMPAIGN_FUND, Unit.POINT),
    (AccountKind.EXPIRED, Unit.YEN),
    (AccountKind.EXPIRED, Unit.POINT),
)


class JournalKind(StrEnum):
    TOPUP = "topup"  # チャージ: issuance against bank clearing or counter cash
    CASHOUT = "cashout"  # 払戻し: prepaid value returned in a legally allowed case
    PAYMENT = "payment"  # a resident pays a merchant; the fee goes to fee income
    REFUND = "refund"  # (part of) a payment goes back to the wallet it came from, fee returned pro rata
    TRANSFER = "transfer"  # merchant to merchant (the restaurant pays the farmer)
    FUNDING = "funding"  # the campaign fund issues points into a campaign's budget
    GRANT = "grant"  # points from a campaign budget to a resident (health, environment, volunteering …)
    PREMIUM = "premium"  # a premium set: the resident's coin re-lotted, the premium from the budget
    REWARD = "reward"  # points back on a qualifying payment, from a reward campaign's budget
    EXPIRY = "expiry"  # an expired lot's remainder leaves the wallet for the expiry account
    PAYOUT = "payout"  # 振込: a merchant's yen leaves circulation for its bank account (bank clearing)
    PAYOUT_FEE = "payout_fee"  # 振込手数料: a payout's fee (on demand), from the merchant to fee income
    SPONSOR_CREDIT = "sponsor_credit"  # a sponsor's budget pays a shop the discount it funded on a payment
    SPONSOR_REVERSAL = "sponsor_reversal"  # a refund gives the sponsor back its share of that discount
    SPONSOR_PAYMENT = "sponsor_payment"  # a sponsor's budget pays a merchant for something it gave a resident (a bus fare)
    OPENING = "opening"  # 移行: a resident's closing balance on a previous platform, from the migration account
    # ポイント換金: a merchant's points retire to the campaign fund that issued them, and the fund
    # pays the merchant as many yen (1 point = 1 yen), for a settlement run to pay out.
    POINT_REDEMPTION = "point_redemption"


# The journal kinds allowed to touch an issuance account (invariant 4): every other journal moves
# value between holders and cannot create or destroy it.
ISSUANCE_JOURNALS = frozenset(
    {JournalKind.TOPUP, JournalKind.CASHOUT, JournalKind.FUNDING, JournalKind.PAYOUT, JournalKind.OPENING,
     JournalKind.POINT_REDEMPTION}
)

# Journal kinds that may touch only these account kinds, the first giving (−) and the second
# gaining (+), one entry each: checked when posting and by `ledger verify`.
JOURNAL_LEGS = {
    JournalKind.PAYOUT: (AccountKind.MERCHANT, AccountKind.BANK_CLEARING),
    JournalKind.PAYOUT_FEE: (AccountKind.MERCHANT, AccountKind.FEE_INCOME),
    JournalKind.SPONSOR_CREDIT: (AccountKind.SPONSOR_BUDGET, AccountKind.MERCHANT),
    JournalKind.SPONSOR_REVERSAL: (AccountKind.MERCHANT, AccountKind.SPONSOR_BUDGET),
    JournalKind.SPONSOR_PAYMENT: (AccountKind.SPONSOR_BUDGET, AccountKind.MERCHANT),
}

# A point redemption's four entries, one per (account kind, unit, sign), all of one amount N and
# one merchant: its points −N to the campaign fund's points +N, the fund's yen −N to its yen +N.
# Checked when posting and by `ledger verify`.
REDEMPTION_LEGS = (
    (AccountKind.CAMPAIGN_FUND, Unit.POINT, +1), (AccountKind.CAMPAIGN_FUND, Unit.YEN, -1),
    (AccountKind.MERCHANT, Unit.POINT, -1), (AccountKind.MERCHANT, Unit.YEN, +1),
)


class Status(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class Account(Base):
    """One account per holder and unit.

    `tracks_balance` accounts (resident wallets) keep a `balance` column, updated by an atomic
    check-and-debit, because their owner spends from them concurrently. All other accounts are
    only credited on the hot paths: their balance is the sum of their entries, so crediting a
    busy merchant or the fee-income account takes no row lock.
    """

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("may_go_negative OR balance >= 0", "no_overdraft"),
        CheckConstraint("tracks_balance OR balance = 0", "untracked_balance_zero"),
        CheckConstraint("status IN ('active', 'suspended', 'closed')", "status"),
        CheckConstraint("unit IN ('yen', 'point')", "unit"),
        CheckConstraint(
            "(kind = 'resident') = (resident_id IS NOT NULL) AND (kind = 'merchant') = (merchant_id IS NOT NULL)"
            " AND (kind = 'campaign_budget') = (campaign_id IS NOT NULL)",
            "owner_matches_kind",
        ),
        CheckConstraint("(kind = 'sponsor_budget') = (sponsor_id IS NOT NULL)", "sponsor_matches_kind"),
        Index("uq_accounts_resident_unit", "resident_id", "unit", unique=True, postgresql_where=text("resident_id IS NOT NULL")),
        Index("uq_accounts_merchant_unit", "merchant_id", "unit", unique=True, postgresql_where=text("merchant_id IS NOT NULL")),
        Index(
            "uq_accounts_region_system_kind_unit",
            "region_id",
            "kind",
            "unit",
            unique=True,
            postgresql_where=text(
                "resident_id IS NULL AND merchant_id IS NULL AND campaign_id IS NULL AND sponsor_id IS NULL"
            ),
        ),
        Index("uq_accounts_campaign_unit", "campaign_id", "unit", unique=True, postgresql_where=text("campaign_id IS NOT NULL")),
        Index("uq_accounts_sponsor_unit", "sponsor_id", "unit", unique=True, postgresql_where=text("sponsor_id IS NOT NULL")),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    kind: Mapped[str]
    unit: Mapped[str]
    resident_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.residents.id"))
    merchant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.merchants.id"))
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.campaigns.id"))
    sponsor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.sponsors.id"))
    status: Mapped[str]
    tracks_balance: Mapped[bool]
    may_go_negative: Mapped[bool]
    balance: Mapped[int] = mapped_column(server_default=text("0"))
    created_at: Mapped[datetime]


class Journal(Base):
    """An immutable transfer of value between accounts (a trigger refuses UPDATE and DELETE)."""

    __tablename__ = "journals"
    __table_args__ = (
        Index("ix_journals_region_id_id", "region_id", "id"),
        # A keyed payout and its fee are found by their reference (payments/service.py post_payout);
        # payouts are few.
        Index("ix_journals_payout_reference", "region_id", "reference",
              postgresql_where=text("kind IN ('payout', 'payout_fee')")),
        # A keyed point redemption likewise (payments/service.py redeem_points).
        Index("ix_journals_redemption_reference", "region_id", "reference",
              postgresql_where=text("kind = 'point_redemption'")),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    kind: Mapped[str]
    actor: Mapped[str]  # who caused it: a subject, an API key, or a bank event source
    reference: Mapped[str | None]  # e.g. the bank's event id, a reason code
    memo: Mapped[str | None]
    created_at: Mapped[datetime]


class Entry(Base):
    __tablename__ = "entries"
    __table_args__ = (
        CheckConstraint("amount <> 0", "amount_nonzero"),
        Index("ix_entries_account_id_id", "account_id", "id", postgresql_include=["amount"]),
        Index("ix_entries_journal_id", "journal_id"),
        Index("ix_entries_account_id_seq", "account_id", "seq"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    journal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.journals.id"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.accounts.id"))
    region_id: Mapped[uuid.UUID]
    unit: Mapped[str]
    amount: Mapped[int]
    # Filled for balance-tracking accounts: the balance right after this entry, for the history.
    balance_after: Mapped[int | None]
    created_at: Mapped[datetime]
    # Application order, assigned by the database at insert (behind the account's lock).
    seq: Mapped[int] = mapped_column(Identity(always=True))


class LotSource(StrEnum):
    LEGACY = "legacy"  # a balance from before lots existed
    TOPUP = "topup"
    PREMIUM = "premium"
    GRANT = "grant"
    REWARD = "reward"
    OPENING = "opening"  # a balance carried over from a previous platform (services/wallet/history)


class Lot(Base):
    """A parcel of value in a resident's wallet with its own rules: unit (coin = paid-in money,
    point = free value), restriction to merchant classes, usable window and expiry. A wallet
    account's balance is always the sum of its lots' `remaining` (checked by `ledger verify`)."""

    __tablename__ = "lots"
    __table_args__ = (
        Index("ix_lots_account_live", "account_id", postgresql_where=text("remaining > 0")),
        Index("ix_lots_region_expiry", "region_id", "expires_at", postgresql_where=text("remaining > 0 AND expires_at IS NOT NULL")),
        Index("ix_lots_account_id", "account_id", "id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.accounts.id"))
    unit: Mapped[str]
    source: Mapped[str]
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.campaigns.id"))
    journal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.journals.id"))
    restriction: Mapped[list[str] | None] = mapped_column(ARRAY(Text))  # merchant class codes; None: all
    usable_from: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]  # midnight Asia/Tokyo: the first instant it is no longer usable
    amount: Mapped[int]
    remaining: Mapped[int]
    expired: Mapped[int]
    created_at: Mapped[datetime]
