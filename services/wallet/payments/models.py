"""Tables of paying at the shop: stores, fee plans, payments, refunds, dynamic payment requests,
and the per-merchant fee totals that yearly fee caps need. All in the `wallet` schema: a payment
is a ledger journal plus the facts about it."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, SmallInteger, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from services.wallet.ledger.models import SCHEMA
from shared.models import Base


class PaymentMethod(StrEnum):
    MPM_STATIC = "mpm_static"  # the printed QR at the register; the resident types the amount
    MPM_DYNAMIC = "mpm_dynamic"  # a QR with the amount, made by the POS for one sale
    CPM = "cpm"  # the resident's one-time code, scanned by the shop
    CARD = "card"  # the printed resident card, scanned by the shop, with a PIN


class FeeKind(StrEnum):
    PAYMENT = "payment"
    TRANSFER = "transfer"


class Rounding(StrEnum):
    DOWN = "down"  # the default: the merchant never pays a fraction of a yen
    HALF_UP = "half_up"
    UP = "up"


class Store(Base):
    """A merchant's place of sale; its id is in the store's QR code."""

    __tablename__ = "stores"
    __table_args__ = (
        UniqueConstraint("region_id", "merchant_id", "name"),
        Index("ix_stores_merchant_id", "merchant_id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.merchants.id"))
    name: Mapped[str]
    name_ja: Mapped[str]
    terminal_label: Mapped[str | None]
    created_at: Mapped[datetime]


class FeePlan(Base):
    """A fee rate in basis points from `effective_from` on, for one merchant or (merchant_id
    NULL) the region's default. Plans are never edited: a change is a new plan with a later start."""

    __tablename__ = "fee_plans"
    __table_args__ = (
        CheckConstraint("rate_bp BETWEEN 0 AND 10000", "rate_bp_range"),
        CheckConstraint("yearly_cap IS NULL OR yearly_cap >= 0", "yearly_cap_non_negative"),
        CheckConstraint("kind IN ('payment', 'transfer')", "kind"),
        CheckConstraint("rounding IN ('down', 'half_up', 'up')", "rounding"),
        Index("ix_fee_plans_lookup", "region_id", "kind", "merchant_id", "effective_from"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    merchant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.merchants.id"))
    kind: Mapped[str]
    rate_bp: Mapped[int] = mapped_column(SmallInteger)
    rounding: Mapped[str]
    yearly_cap: Mapped[int | None]  # fees per fiscal year (年度) above this are not charged
    effective_from: Mapped[datetime]
    created_by: Mapped[str]
    created_at: Mapped[datetime]


class MerchantFeeYear(Base):
    """Fees charged to a merchant in one fiscal year, by its payments and the transfers it
    receives, less what refunds returned; kept only for plans with a yearly cap, and locked only
    by what they charge or return (payments/sql/charge_fee.sql, return_fee.sql), so uncapped
    merchants never queue on it."""

    __tablename__ = "merchant_fee_years"
    __table_args__ = ({"schema": SCHEMA},)

    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.merchants.id"), primary_key=True)
    fiscal_year: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    fees_charged: Mapped[int]


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount > 0 AND fee >= 0 AND fee <= amount", "amounts"),
        CheckConstraint("refunded_amount BETWEEN 0 AND amount AND fee_returned BETWEEN 0 AND fee", "refunds"),
        Index("ix_payments_merchant_id_id", "merchant_id", "id"),
        Index("ix_payments_resident_account_id_id", "resident_account_id", "id"),
        Index("ix_payments_card_id_created_at", "card_id", "created_at", postgresql_where=text("card_id IS NOT NULL")),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    journal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.journals.id"))
    resident_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.accounts.id"))
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.merchants.id"))
    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.stores.id"))
    method: Mapped[str]
    amount: Mapped[int]
    fee: Mapped[int]
    fee_rate_bp: Mapped[int] = mapped_column(SmallInteger)
    fee_plan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.fee_plans.id"))
    fiscal_year: Mapped[int] = mapped_column(SmallInteger)
    # Running totals of refunds, changed only under this row's lock (one refund at a time).
    refunded_amount: Mapped[int]
    fee_returned: Mapped[int]
    # What of `amount` and of `fee` was in points (the rest in yen), and their refunded shares.
    point_amount: Mapped[int] = mapped_column(server_default=text("0"))
    fee_point: Mapped[int] = mapped_column(server_default=text("0"))
    refunded_point: Mapped[int] = mapped_column(server_default=text("0"))
    fee_returned_point: Mapped[int] = mapped_column(server_default=text("0"))
    reward_points: Mapped[int] = mapped_column(server_default=text("0"))  # from reward campaigns, net of refunds
    order_reference: Mapped[str | None]
    card_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.resident_cards.id"))
    created_at: Mapped[datetime]


class ResidentCard(Base):
    """A printed card with a static QR for residents without a smartphone (DOMAIN.md). Paying
    with it needs its 4-digit PIN on the shop's terminal; 5 wrong PINs lock it; a daily limit
    caps the damage of a stolen card; reporting it lost or reissuing it kills the old code."""

    __tablename__ = "resident_cards"
    __table_args__ = (
        UniqueConstraint("region_id", "code"),
        CheckConstraint("status IN ('active', 'locked', 'lost', 'replaced')", "status"),
        CheckConstraint("daily_limit > 0 AND failed_pins >= 0", "limits"),
        Index("ix_resident_cards_account_id", "account_id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.accounts.id"))
    code: Mapped[str]  # what the card's QR holds; random, so a code reveals nothing
    pin_hash: Mapped[str]  # scrypt, with its salt
    failed_pins: Mapped[int] = mapped_column(SmallInteger)
    daily_limit: Mapped[int]
    status: Mapped[str]
    created_at: Mapped[datetime]


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount > 0 AND fee_returned >= 0", "amounts"),
        CheckConstraint(
            "sponsor_reversed >= 0 AND (sponsor_reversed > 0) = (sponsor_journal_id IS NOT NULL)", "sponsor_reversed"
        ),
        Index("ix_refunds_payment_id", "payment_id"),
        Index("ix_refunds_merchant_id_id", "merchant_id", "id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.payments.id"))
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.merchants.id"))  # the payment's, for statements
    journal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.journals.id"))
    amount: Mapped[int]
    fee_returned: Mapped[int]
    point_amount: Mapped[int] = mapped_column(server_default=text("0"))  # of `amount`, restored as points
    fee_returned_point: Mapped[int] = mapped_column(server_default=text("0"))
    expired_amount: Mapped[int] = mapped_column(server_default=text("0"))  # of `amount`, to lots expired meanwhile
    # The share of a sponsor's discount this refund gave back to the sponsor, by its own journal.
    sponsor_reversed: Mapped[int] = mapped_column(server_default=text("0"))
    sponsor_journal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.journals.id"))
    reason: Mapped[str | None]
    created_by: Mapped[str]
    created_at: Mapped[datetime]


class PaymentLot(Base):
    """Which lots paid what, in spending order (`seq`); a refund restores them in reverse."""

    __tablename__ = "payment_lots"
    __table_args__ = {"schema": SCHEMA}

    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.payments.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    lot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.lots.id"))
    unit: Mapped[str]
    amount: Mapped[int]
    restored: Mapped[int] = mapped_column(server_default=text("0"))


class PaymentRequest(Base):
    """A dynamic QR: one sale's amount, single use, expiring, cancellable."""

    __tablename__ = "payment_requests"
    __table_args__ = (
        CheckConstraint("amount > 0", "amount_positive"),
        CheckConstraint("status IN ('open', 'paid', 'cancelled')", "status"),
        Index("ix_payment_requests_merchant_id_id", "merchant_id", "id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.merchants.id"))
    store_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.stores.id"))
    amount: Mapped[int]
    order_reference: Mapped[str]
    status: Mapped[str]
    expires_at: Mapped[datetime]
    payment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.payments.id"))
    created_by: Mapped[str]
    created_at: Mapped[datetime]


class DiscountFunder(StrEnum):
    SHOP = "shop"  # the price is reduced: the shop gives up the discount
    SPONSOR = "sponsor"  # a sponsor's budget pays the shop the discount


class Sponsor(Base):
    """A backer of discounts (a city campaign, a shopping-street association …) with a yen budget
    account (kind `sponsor_budget`, `accounts.sponsor_id`) that pays shops the discounts it funds."""

    __tablename__ = "sponsors"
    __table_args__ = (UniqueConstraint("region_id", "name"), {"schema": SCHEMA})

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    name: Mapped[str]
    name_ja: Mapped[str]
    created_by: Mapped[str]
    created_at: Mapped[datetime]


class PaymentDiscount(Base):
    """A payment made at a reduced price: the resident paid `price − discount` (the payment's
    amount); a sponsor's discount was paid to the shop by `credit_journal_id`, and refunds have
    given `reversed` of it back to the sponsor so far. Written only for discounted payments."""

    __tablename__ = "payment_discounts"
    __table_args__ = (
        CheckConstraint("discount > 0 AND price > discount", "amounts"),
        CheckConstraint("funded_by IN ('shop', 'sponsor')", "funded_by"),
        CheckConstraint(
            "(funded_by = 'sponsor') = (sponsor_id IS NOT NULL) AND (sponsor_id IS NULL) = (credit_journal_id IS NULL)",
            "sponsor",
        ),
        CheckConstraint("reversed BETWEEN 0 AND discount AND (funded_by = 'sponsor' OR reversed = 0)", "reversed"),
        Index("ix_payment_discounts_merchant_id_payment_id", "merchant_id", "payment_id"),
        {"schema": SCHEMA},
    )

    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.payments.id"), primary_key=True)
    region_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.regions.id"))
    merchant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.merchants.id"))
    price: Mapped[int]
    discount: Mapped[int]
    funded_by: Mapped[str]
    sponsor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(f"{SCHEMA}.sponsors.id"))
    # Checked at the commit: wallet.pay writes the record before the sponsor's journal is posted.
    credit_journal_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey(f"{SCHEMA}.journals.id", deferrable=True, initially="DEFERRED")
    )
    reversed: Mapped[int] = mapped_column(server_default=text("0"))
    reference: Mapped[str | None]  # the caller's, e.g. the coupon redemption that gave the discount
    created_by: Mapped[str]
    created_at: Mapped[datetime]
