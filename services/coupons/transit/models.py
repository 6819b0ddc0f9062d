"""Tables of transit (schema `coupons`, migration 0017): bus operators, fare products and their
fares per rider category, e-tickets, validators and their scans.

The wallet's rows (merchants, payments) are named by id only, without foreign keys: coupons
never touch wallet tables, they reach them through services/wallet/public.py."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, SmallInteger, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models import Base

SCHEMA = "coupons"


class ProductStatus:
    ACTIVE = "active"  # on sale
    RETIRED = "retired"  # no longer sold; tickets already bought stay valid


class TransitOperator(Base):
    """A merchant the operator marked as a bus operator: it may define fare products and validators."""

    __tablename__ = "transit_operators"
    __table_args__ = (UniqueConstraint("region_id", "merchant_id"), {"schema": SCHEMA})

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    merchant_id: Mapped[uuid.UUID]  # the wallet's merchant (a bus company, the on-demand bus)
    created_by: Mapped[str]
    created_at: Mapped[datetime]


class FareProduct(Base):
    """A GTFS-Fares v2 fare product: single ride, day pass or N rides, with a fare per rider category."""

    __tablename__ = "fare_products"
    __table_args__ = (
        UniqueConstraint("region_id", "operator_id", "name"),
        CheckConstraint("kind IN ('single_ride', 'day_pass', 'multi_ride')", "kind"),
        CheckConstraint("(kind = 'multi_ride') = (rides IS NOT NULL) AND (rides IS NULL OR rides BETWEEN 2 AND 100)",
                        "rides"),
        CheckConstraint("valid_days BETWEEN 1 AND 366", "valid_days"),
        CheckConstraint("status IN ('active', 'retired') AND (status = 'retired') = (retired_at IS NOT NULL)", "status"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    operator_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.transit_operators.id"))
    name: Mapped[str]
    name_ja: Mapped[str]
    kind: Mapped[str]
    rides: Mapped[int | None] = mapped_column(SmallInteger)  # a multi-ride ticket's N
    # A ticket must be first used within this many days of its purchase (a day pass then runs 24 h).
    valid_days: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[str]
    created_by: Mapped[str]
    created_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]


class Fare(Base):
    """A product's price for one rider category, in yen."""

    __tablename__ = "fares"
    __table_args__ = (
        CheckConstraint("rider_category IN ('adult', 'child', 'elderly')", "rider_category"),
        CheckConstraint("amount > 0", "amount"),
        {"schema": SCHEMA},
    )

    region_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.fare_products.id"), primary_key=True)
    rider_category: Mapped[str] = mapped_column(primary_key=True)
    amount: Mapped[int]


class TicketFunder:
    """Who paid a ticket's fare."""

    RESIDENT = "resident"  # bought by an ordinary coin payment to the bus operator (`payment_id`)
    OPERATOR = "operator"  # given by the bus operator itself in a bundle: no payment, fare 0
    SPONSOR = "sponsor"  # given in a bundle, the fare paid to the bus operator by a sponsor's budget


class Ticket(Base):
    """A resident's e-ticket: bought by an ordinary coin payment to the bus operator (`payment_id`),
    or granted in a bundle of coupons (`bundle_claim_id`), its fare given up by the bus operator or
    paid to it by a sponsor (`sponsor_journal_id`, the wallet's `sponsor_payment` journal)."""

    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("region_id", "payment_id"),
        Index("ix_tickets_region_id_resident", "region_id", "resident", "id"),
        Index("ix_tickets_region_id_purchased_at", "region_id", "purchased_at"),
        Index("ix_tickets_product_id", "product_id"),
        CheckConstraint("rides_taken >= 0", "rides_taken"),
        CheckConstraint("(activated_at IS NULL) = (rides_taken = 0)", "activated"),
        CheckConstraint("(kind = 'day_pass') = (rides IS NULL)", "rides"),
        CheckConstraint("(kind = 'day_pass' AND activated_at IS NOT NULL) = (active_until IS NOT NULL)", "active_until"),
        CheckConstraint("funded_by IN ('resident', 'operator', 'sponsor')", "funded_by"),
        CheckConstraint("(funded_by = 'resident') = (payment_id IS NOT NULL)", "bought_by_payment"),
        CheckConstraint("(funded_by = 'resident') = (bundle_claim_id IS NULL)", "granted_in_bundle"),
        CheckConstraint(
            "(funded_by = 'sponsor') = (sponsor_id IS NOT NULL) AND (sponsor_id IS NULL) = (sponsor_journal_id IS NULL)",
            "sponsor_paid",
        ),
        CheckConstraint("funded_by <> 'operator' OR fare = 0", "operator_gives_fare"),
        Index("ix_tickets_bundle_claim_id", "bundle_claim_id", postgresql_where=text("bundle_claim_id IS NOT NULL")),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    operator_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.transit_operators.id"))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.fare_products.id"))
    resident: Mapped[str]  # the resident's subject, as their token names them
    kind: Mapped[str]
    rider_category: Mapped[str]
    fare: Mapped[int]  # yen paid for it (a ticket the bus operator gave: 0)
    rides: Mapped[int | None] = mapped_column(SmallInteger)  # rights: 1 single ride, N rides; None: a day pass
    # Rides that happened, those an offline reconciliation found beyond the rights included.
    rides_taken: Mapped[int] = mapped_column(Integer)
    funded_by: Mapped[str]  # TicketFunder
    payment_id: Mapped[uuid.UUID | None]  # the wallet's payment of the fare (a bought ticket)
    sponsor_id: Mapped[uuid.UUID | None]  # the sponsor that paid the fare (a sponsored grant)
    sponsor_journal_id: Mapped[uuid.UUID | None]  # the wallet's sponsor_payment journal of it
    bundle_claim_id: Mapped[uuid.UUID | None]  # the bundle claim that granted it (services/coupons/bundles)
    purchased_at: Mapped[datetime]
    expires_at: Mapped[datetime]  # first use before this
    activated_at: Mapped[datetime | None]  # the first ride's time
    active_until: Mapped[datetime | None]  # a day pass: 24 h after its activation
    refunded_at: Mapped[datetime | None]  # its payment refunded in full: the ticket carries no one more


class Validator(Base):
    """A bus validator device, authenticated by an API key scoped to one bus operator. Only a
    SHA-256 of the secret is stored."""

    __tablename__ = "validators"
    __table_args__ = (
        UniqueConstraint("secret_hash"),
        Index("ix_validators_operator_id", "operator_id", "id"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    region_code: Mapped[str]  # what its principal carries (regions are never renamed)
    operator_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.transit_operators.id"))
    name: Mapped[str]
    secret_hash: Mapped[str]
    created_by: Mapped[str]
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class ScanOutcome:
    ACTIVATION = "activation"  # the ticket's first ride
    RIDE = "ride"  # a later ride


class ConflictKind:
    """A ride an offline reconciliation accepted although the ticket had no right left to it."""

    REUSED = "reused"  # a single ride taken again
    USED_UP = "used_up"  # a multi-ride ticket past its N rides
    EXPIRED = "expired"  # after the ticket's validity (a day pass: its 24 h)
    REFUNDED = "refunded"  # on a ticket whose fare was refunded (before the ride reached the server)


class Scan(Base):
    """An accepted scan: a ride. Its scan id (the validator's own uuid) makes it idempotent, and
    the request's hash tells a retry from a different scan under the same id. Refused scans are
    not kept (the refusal is the validator's answer; nothing changes)."""

    __tablename__ = "scans"
    __table_args__ = (
        UniqueConstraint("region_id", "validator_id", "scan_id"),
        Index("ix_scans_ticket_id", "ticket_id", "scanned_at"),
        Index("ix_scans_region_id_scanned_at", "region_id", "scanned_at"),
        Index("ix_scans_conflicts", "operator_id", "id", postgresql_where=text("conflict IS NOT NULL")),
        CheckConstraint("outcome IN ('activation', 'ride')", "outcome"),
        CheckConstraint("conflict IN ('reused', 'used_up', 'expired', 'refunded')", "conflict"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    validator_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.validators.id"))
    scan_id: Mapped[uuid.UUID]
    request_hash: Mapped[str]
    operator_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.transit_operators.id"))
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.tickets.id"))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.fare_products.id"))
    scanned_at: Mapped[datetime]  # online: the server's time; offline: the validator's, as uploaded
    received_at: Mapped[datetime]
    offline: Mapped[bool]
    vehicle_id: Mapped[str | None]
    route_id: Mapped[str | None]
    outcome: Mapped[str]
    conflict: Mapped[str | None]
    rides_left: Mapped[int | None] = mapped_column(Integer)  # after this ride; None: a day pass
    valid_until: Mapped[datetime]  # the ticket's, after this ride
