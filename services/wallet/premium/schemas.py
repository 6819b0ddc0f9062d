"""Request and response bodies of premium campaigns."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from services.wallet.premium.models import ApplicationStatus, SaleMode
from shared.clock import Instant
from shared.money import Amount, BasisPoints, whole_number
from shared.schemas import ClassCode, Schema

Sets = Annotated[whole_number(ge=1, le=100), Field(description="number of premium sets")]
Seed = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{8,128}$")]


class OfferCreate(Schema):
    mode: SaleMode = Field(description="first_come: sold while stock lasts; lottery: apply, draw, then pay")
    price: Amount = Field(description="yen paid per set (taken from the resident's unrestricted coin)")
    value: Amount = Field(description="what a set is worth: the price as coin plus the premium as points")
    local_share_bp: BasisPoints = Field(
        0, description="share of the value usable only at `local_classes` (5000 = 50 %, Aizu's 地元専用 half)"
    )
    local_classes: list[ClassCode] | None = Field(
        None, min_length=1, max_length=20,
        description="merchant classes of the local-only share; omitted: the campaign's restriction",
    )
    per_person: whole_number(ge=1, le=100) = Field(description="sets one resident may buy (or apply for)")
    per_household: whole_number(ge=1, le=1000) = Field(description="sets one household may buy (or apply for) in all")
    total_sets: whole_number(ge=1, le=10_000_000)
    opens_at: Instant = Field(description="the sale (first-come) or the applications (lottery) open")
    closes_at: Instant = Field(description="… and close (exclusive)")
    payment_deadline: Instant | None = Field(None, description="lottery only: winners pay before this moment")
    usable_from: Instant | None = Field(None, description="the sets' value may be spent from; omitted: the campaign's")
    usable_until: Instant | None = Field(
        None, description="the sets' value expires at this midnight Asia/Tokyo; omitted: the campaign's",
    )
    stock_buckets: whole_number(ge=1, le=256) = Field(
        32, description="first-come stock is split over this many rows so that buyers do not queue on one",
    )


class OfferOut(Schema):
    campaign_id: uuid.UUID
    mode: SaleMode
    price: int
    value: int
    premium: int = Field(description="points per set (value − price), from the campaign's budget")
    local_share_bp: int
    local_classes: list[str] | None
    per_person: int
    per_household: int
    total_sets: int
    opens_at: datetime
    closes_at: datetime
    payment_deadline: datetime | None
    usable_from: datetime | None
    usable_until: datetime | None
    phase: str = Field(description="upcoming, open, closed, drawn (lottery) or released (lottery, deadline passed)")
    sets_left: int | None = Field(description="first-come: sets still for sale (may lag by a moment)")
    drawn_at: datetime | None
    created_at: datetime


class PurchaseCreate(Schema):
    sets: Sets


class PurchaseLotOut(Schema):
    role: str = Field(description="taken: coin that paid for the sets; created: the sets' coin and point lots")
    lot_id: uuid.UUID
    unit: str
    amount: int


class PurchaseOut(Schema):
    id: uuid.UUID
    campaign_id: uuid.UUID
    application_id: uuid.UUID | None
    sets: int
    coin: int = Field(description="yen paid, kept as coin under the sets' rules")
    points: int = Field(description="the premium, as points")
    coin_local: int
    coin_all_shops: int
    points_local: int
    points_all_shops: int
    local_classes: list[str] | None
    usable_from: datetime | None
    usable_until: datetime | None
    journal_id: uuid.UUID
    lots: list[PurchaseLotOut]
    created_at: datetime


class ApplicationCreate(Schema):
    sets: Sets


class ApplicationOut(Schema):
    id: uuid.UUID
    campaign_id: uuid.UUID
    sets: int
    status: ApplicationStatus
    won_sets: int
    draw_rank: int | None
    payment_deadline: datetime | None
    created_at: datetime
    decided_at: datetime | None


class DrawCreate(Schema):
    seed: Seed | None = Field(
        None, description="the seed to draw with; omitted: 128 random bits. Recorded and published with the result",
    )


class DrawResult(Schema):
    application_id: uuid.UUID
    sets: int
    rank: int
    key: str = Field(description="sha256 of '<seed>:<application id>' in hex; ascending key is the order of the draw")
    won_sets: int
    status: ApplicationStatus


class DrawOut(Schema):
    campaign_id: uuid.UUID
    seed: str
    algorithm: str
    drawn_at: datetime
    drawn_by: str
    total_sets: int
    applications: int
    applied_sets: int
    winners: int
    won_sets: int
    results: list[DrawResult]


class ReleaseOut(Schema):
    campaign_id: uuid.UUID
    released_applications: int
    released_sets: int
    released_at: datetime | None


class SalesOut(Schema):
    campaign_id: uuid.UUID
    mode: SaleMode
    phase: str
    total_sets: int
    sold_sets: int
    purchases: int
    buyers: int
    coin_received: int = Field(description="yen paid for sets (re-lotted coin, not new money)")
    premium_given: int = Field(description="points given from the budget")
    sets_left: int = Field(description="first-come: sets in stock plus sets waiting for budget")
    sets_awaiting_budget: int
    budget: int = Field(description="points left in the campaign's budget")
    applications: int
    applied_sets: int
    winners: int
    won_sets: int
    paid_sets: int
    released_sets: int
