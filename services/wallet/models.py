"""Tables of the `wallet` schema: regions, residents, merchants, accounts and the ledger.

Sign convention: an entry's `amount` is what the account gains (+) or gives up (−). Issuance
accounts (bank clearing, counter cash, campaign funds) therefore run negative: their balance is
the mirror of the value they have put into circulation. Every journal sums to zero per unit.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ARRAY, CheckConstraint, ForeignKey, ForeignKeyConstraint, Identity, Index, Integer, SmallInteger, Text,
    UniqueConstraint, text,
)
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
    EXPIRED = "expired"  # sink for value forfeited at expiry


# Where value may enter or leave circulation (invariant 4).
ISSUANCE_KINDS = frozenset({AccountKind.BANK_CLEARING, AccountKind.COUNTER_CASH, AccountKind.CAMPAIGN_FUND})
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


# The journal kinds allowed to touch an issuance account (invariant 4): every other journal moves
# value between holders and cannot create or destroy it.
ISSUANCE_JOURNALS = frozenset({JournalKind.TOPUP, JournalKind.CASHOUT, JournalKind.FUNDING})


class Status(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class Sector(StrEnum):
    """Business sectors, as counted by the city's 適用分野数 KPI."""

    RETAIL = "retail"
    FOOD_SERVICE = "food_service"
    TOURISM = "tourism"
    TRANSPORT = "transport"
    AGRICULTURE = "agriculture"
    HEALTHCARE = "healthcare"
    EDUCATION = "education"
    SERVICES = "services"


class Region(Base):
    __tablename__ = "regions"
    __table_args__ = (
        CheckConstraint("balance_cap > 0", "balance_cap_positive"),
        CheckConstraint("topup_step > 0 AND topup_min > 0 AND topup_max >= topup_min", "topup_limits"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    name_ja: Mapped[str]
    balance_cap: Mapped[int]
    topup_min: Mapped[int]
    topup_max: Mapped[int]
    topup_step: Mapped[int]
    # The globally unique id in the merchant-account template of the region's QR codes.
    qr_guid: Mapped[str] = mapped_column(unique=True)
    # Merchants may refund a payment until the end of its (Tokyo) day plus this many days.
    refund_window_days: Mapped[int] = mapped_column(SmallInteger)
    payment_request_minutes: Mapped[int] = mapped_column(SmallInteger)  # lifetime of a dynamic QR
    # Top-ups expire at the end of the Nth month after the month of the top-up; None: never.
    coin_expiry_months: Mapped[int | None] = mapped_column(SmallInteger)
    created_at: Mapped[datetime]


class Resident(Base):
    __tablename__ = "residents"
    __table_args__ = (
        UniqueConstraint("region_id", "subject"),
        Index("ix_residents_household", "region_id", "household", postgresql_where=text("household IS NOT NULL")),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    subject: Mapped[str]  # the `sub` of the resident's token at the city's identity provider
    household: Mapped[str | None]  # set by the operator; premium sets are limited per household too
    created_at: Mapped[datetime]


class Merchant(Base):
    __tablename__ = "merchants"
    __table_args__ = (
        UniqueConstraint("region_id", "name"),
        CheckConstraint("mcc ~ '^[0-9]{4}$'", "mcc_four_digits"),
        CheckConstraint("bank_code ~ '^[0-9]{4}$' AND branch_code ~ '^[0-9]{3}$'", "bank_codes"),
        CheckConstraint("account_number ~ '^[0-9]{7}$'", "account_number"),
        CheckConstraint("account_type IN (1, 2, 4)", "account_type"),
        CheckConstraint("status IN ('active', 'suspended', 'closed')", "status"),
        CheckConstraint("invoice_registration_number ~ '^T[1-9][0-9]{12}$'", "invoice_registration_number"),
        ForeignKeyConstraint(
            ["region_id", "merchant_class"], [f"{SCHEMA}.merchant_classes.region_id", f"{SCHEMA}.merchant_classes.code"],
            name="fk_merchants_class",
        ),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    name: Mapped[str]
    name_ja: Mapped[str]
    sector: Mapped[str]
    mcc: Mapped[str]
    address: Mapped[str]
    # 適格請求書発行事業者登録番号 ("T" + 13 digits), printed on the receipt; null: not registered.
    invoice_registration_number: Mapped[str | None]
    bank_code: Mapped[str]
    branch_code: Mapped[str]
    account_type: Mapped[int] = mapped_column(SmallInteger)  # 全銀: 1 普通, 2 当座, 4 貯蓄
    account_number: Mapped[str]
    account_holder_kana: Mapped[str]  # payee name as the bank file needs it (half-width katakana)
    merchant_class: Mapped[str]  # a code of the region's merchant classes (restrictions, rewards)
    status: Mapped[str]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


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
            "(kind = 'resident') = (resident_id IS NOT NULL) AND (kind = 'merchant') = (merchant_id IS NOT NULL)",
            "owner_matches_kind",
        ),
        Index("uq_accounts_resident_unit", "resident_id", "unit", unique=True, postgresql_where=text("resident_id IS NOT NULL")),
        Index("uq_accounts_merchant_unit", "merchant_id", "unit", unique=True, postgresql_where=text("merchant_id IS NOT NULL")),
        Index(
            "uq_accounts_region_system_kind_unit",
            "region_id",
            "kind",
            "unit",
            unique=True,
            postgresql_where=text("resident_id IS NULL AND merchant_id IS NULL"),
        ),
        Index("uq_accounts_campaign_unit", "campaign_id", "unit", unique=True, postgresql_where=text("campaign_id IS NOT NULL")),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    kind: Mapped[str]
    unit: Mapped[str]
    resident_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.residents.id"))
    merchant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.merchants.id"))
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.campaigns.id"))
    status: Mapped[str]
    tracks_balance: Mapped[bool]
    may_go_negative: Mapped[bool]
    balance: Mapped[int] = mapped_column(server_default=text("0"))
    created_at: Mapped[datetime]


class Journal(Base):
    """An immutable transfer of value between accounts (a trigger refuses UPDATE and DELETE)."""

    __tablename__ = "journals"
    __table_args__ = (Index("ix_journals_region_id_id", "region_id", "id"), {"schema": SCHEMA})

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


class BankEvent(Base):
    """Bank webhook events already processed, so a replayed event id moves no money."""

    __tablename__ = "bank_events"
    __table_args__ = (UniqueConstraint("region_id", "event_id"), {"schema": SCHEMA})

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    event_id: Mapped[str]
    journal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.journals.id"))
    received_at: Mapped[datetime]


class ApiKey(Base):
    """A merchant POS terminal's key. Only a SHA-256 of the secret is stored."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_merchant_id", "merchant_id"), {"schema": SCHEMA})

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.merchants.id"))
    name: Mapped[str]
    secret_hash: Mapped[str] = mapped_column(unique=True)
    created_by: Mapped[str]
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class MerchantClass(Base):
    """A class of merchant (local shop in a shopping street, chain store, large store …), set by
    the operator; lots may be restricted to classes and rewards differ by class."""

    __tablename__ = "merchant_classes"
    __table_args__ = {"schema": SCHEMA}

    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"), primary_key=True)
    code: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    name_ja: Mapped[str]
    created_at: Mapped[datetime]


class CampaignKind(StrEnum):
    PREMIUM = "premium"  # プレミアム付き sets sold first-come or by lottery
    GRANT = "grant"  # points for health, environmental and volunteer activities
    REWARD = "reward"  # points back on payments, by merchant class


class Campaign(Base):
    """A city campaign with its own budget account (points) and the rules of the lots it creates."""

    __tablename__ = "campaigns"
    __table_args__ = (
        UniqueConstraint("region_id", "name", name="campaigns_region_id_name_key"),
        Index("ix_campaigns_active_rewards", "region_id", postgresql_where=text("kind = 'reward' AND status = 'active'")),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    kind: Mapped[str]
    name: Mapped[str]
    name_ja: Mapped[str]
    status: Mapped[str]
    restriction: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    usable_from: Mapped[datetime | None]
    usable_until: Mapped[datetime | None]
    expiry_months: Mapped[int | None] = mapped_column(SmallInteger)
    # Reward campaigns: payments in [reward_from, reward_until) earn points, at most this many
    # per resident and (Tokyo) month.
    reward_from: Mapped[datetime | None]
    reward_until: Mapped[datetime | None]
    reward_monthly_cap: Mapped[int | None]
    # Reward campaigns: whether the part of a payment paid in points earns a reward too (false:
    # only the coin part does).
    reward_points_payments: Mapped[bool] = mapped_column(server_default=text("false"))
    created_by: Mapped[str]
    created_at: Mapped[datetime]


class RewardRate(Base):
    """Points back per payment at merchants of a class, in basis points of the amount."""

    __tablename__ = "reward_rates"
    __table_args__ = (
        ForeignKeyConstraint(
            ["region_id", "merchant_class"], [f"{SCHEMA}.merchant_classes.region_id", f"{SCHEMA}.merchant_classes.code"],
            name="reward_rates_region_id_merchant_class_fkey",
        ),
        {"schema": SCHEMA},
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.campaigns.id"), primary_key=True)
    region_id: Mapped[uuid.UUID]
    merchant_class: Mapped[str] = mapped_column(primary_key=True)
    rate_bp: Mapped[int] = mapped_column(SmallInteger)


class RewardMonth(Base):
    __tablename__ = "reward_months"
    __table_args__ = {"schema": SCHEMA}

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.campaigns.id"), primary_key=True)
    resident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.residents.id"), primary_key=True)
    month: Mapped[date] = mapped_column(primary_key=True)
    points: Mapped[int]


class PaymentReward(Base):
    """The points a payment earned from a reward campaign, and what a refund took back."""

    __tablename__ = "payment_rewards"
    __table_args__ = {"schema": SCHEMA}

    payment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey(f"{SCHEMA}.payments.id", name="payment_rewards_payment_id_fkey"), primary_key=True
    )
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.campaigns.id"), primary_key=True)
    journal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.journals.id"))
    lot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.lots.id"))
    month: Mapped[date]
    points: Mapped[int]
    base: Mapped[int]  # the part of the payment that earned the points: its coin part, or all of it
    clawed_back: Mapped[int]


class LotSource(StrEnum):
    LEGACY = "legacy"  # a balance from before lots existed
    TOPUP = "topup"
    PREMIUM = "premium"
    GRANT = "grant"
    REWARD = "reward"


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


class ExpiryRun(Base):
    __tablename__ = "expiry_runs"
    __table_args__ = {"schema": SCHEMA}

    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"), primary_key=True)
    as_of: Mapped[date] = mapped_column(primary_key=True)
    status: Mapped[str]  # running (resumable) | done
    lots_expired: Mapped[int] = mapped_column(Integer)
    yen_expired: Mapped[int]
    points_expired: Mapped[int]
    notices: Mapped[int] = mapped_column(Integer)
    started_by: Mapped[str]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class Notice(Base):
    """Something the resident's app should tell them: value about to expire, a lottery result."""

    __tablename__ = "notices"
    __table_args__ = (
        Index("ix_notices_resident", "resident_id", "id"),
        Index("uq_notices_lot_kind", "lot_id", "kind", unique=True, postgresql_where=text("lot_id IS NOT NULL")),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    resident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.residents.id"))
    kind: Mapped[str]
    lot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.lots.id"))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
