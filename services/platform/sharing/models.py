"""Tables of data sharing (schema `platform`): each resident's choice whether their payment
results go to the city's data platform, the payments whose results were shared (so that their
refunds follow), and the days whose aggregates have been written.

Region ids and wallet account ids are the wallet's, without foreign keys: the platform never
touches the wallet's tables, not even by a constraint."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Index, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.models import Base

SCHEMA = "platform"


class SharingChoice(Base):
    """A resident's two choices, each with its time — the one asserted by the city's ID (its
    opt-in claim) and their own in the app — and what is in force: the later of the two. A
    claim counts as a choice when its value changes, so signing in again with an unchanged claim
    never undoes a later choice made in the app."""

    __tablename__ = "sharing_choices"
    __table_args__ = (
        UniqueConstraint("region_id", "pseudonym"),
        CheckConstraint("(provider_choice IS NULL) = (provider_chosen_at IS NULL)", "provider_choice_dated"),
        CheckConstraint("(resident_choice IS NULL) = (resident_chosen_at IS NULL)", "resident_choice_dated"),
        CheckConstraint("area IS NULL OR area ~ '^[a-z0-9][a-z0-9_-]{0,31}$'", "area_code"),
        # What the payment hook reads, for every payment: only those who share are in the index,
        # so a payer who does not costs one index probe that finds nothing.
        Index("uq_sharing_choices_sharing_account", "wallet_account_id", unique=True,
              postgresql_where=text("opted_in")),
        {"schema": SCHEMA},
    )

    region_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(primary_key=True)  # the resident's `sub` at the city's ID
    region_code: Mapped[str]
    wallet_account_id: Mapped[uuid.UUID]  # the resident's coin account: how the payment hook knows them
    # HMAC-SHA256 of the region and subject under DATA_PLATFORM_PSEUDONYM_KEY: the only name the
    # data platform ever sees, stable per resident, not reversible without the key.
    pseudonym: Mapped[str]
    opted_in: Mapped[bool]
    provider_choice: Mapped[bool | None]
    provider_chosen_at: Mapped[datetime | None]
    resident_choice: Mapped[bool | None]
    resident_chosen_at: Mapped[datetime | None]
    area: Mapped[str | None]  # the city's ID's area attribute: what the resident's results are tagged with
    updated_at: Mapped[datetime]


class SharedPayment(Base):
    """A payment whose result was written for the data platform: its refunds are sent after it,
    under the same pseudonym; a payment not here (its payer did not share) is never mentioned."""

    __tablename__ = "shared_payments"
    __table_args__ = {"schema": SCHEMA}

    payment_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    region_code: Mapped[str]
    pseudonym: Mapped[str]
    created_at: Mapped[datetime]


class AggregateDay(Base):
    """A (Tokyo) day whose payment aggregate has been written to the outbox: once per region and day."""

    __tablename__ = "sharing_aggregate_days"
    __table_args__ = {"schema": SCHEMA}

    region_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    created_at: Mapped[datetime]
