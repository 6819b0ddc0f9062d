"""Request and response bodies of bundles. Moments go out in Asia/Tokyo (+09:00); any offset is
accepted in."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from pydantic import AfterValidator, Field

from services.coupons.bundles.models import BundleAudience, BundleStatus, TicketFunder
from services.coupons.bundles.service import BundleView, ClaimedBundle
from services.coupons.transit.service import RiderCategory
from shared.clock import TOKYO, Instant
from shared.schemas import Schema, Text100
from shared.text import text

TokyoTime = Annotated[datetime, AfterValidator(lambda at: at.astimezone(TOKYO))]
Terms = text(2000)
CouponIds = Annotated[list[uuid.UUID], Field(min_length=1, max_length=20)]


class BundleTicket(Schema):
    product_id: uuid.UUID = Field(description="a bus operator's fare product, on sale")
    rider_category: RiderCategory
    funded_by: TicketFunder = Field(
        description="operator: the bus operator gives the ride (no payment, fare 0); sponsor: the sponsor's budget "
        "pays the bus operator the fare at each claim (refused when it runs short)"
    )
    sponsor_id: uuid.UUID | None = Field(default=None, description="funded_by sponsor: the sponsor")


class BundleCreate(Schema):
    name: Text100
    terms: Terms
    coupon_ids: CouponIds = Field(description="the coupons it groups (shops' and bus operators'), claimed together")
    ticket: BundleTicket | None = Field(default=None, description="a bus ticket granted with it, if any")
    audience: BundleAudience = BundleAudience.ALL
    segment_id: uuid.UUID | None = Field(default=None, description="audience segment: the segment")
    starts_at: Instant = Field(description="claimable from then")
    ends_at: Instant = Field(description="claimable until then (exclusive)")


class BundleOut(Schema):
    id: uuid.UUID
    name: str
    terms: str
    coupon_ids: list[uuid.UUID]
    ticket: BundleTicket | None
    audience: BundleAudience
    segment_id: uuid.UUID | None
    starts_at: TokyoTime
    ends_at: TokyoTime
    status: BundleStatus
    distributed_at: TokyoTime | None
    segment_version: int | None = Field(description="the segment's version it was sent to")
    recipients: int | None = Field(description="the notices its distribution wrote")
    created_at: TokyoTime

    @classmethod
    def of(cls, view: BundleView) -> BundleOut:
        b = view.bundle
        ticket = None
        if b.product_id is not None:
            ticket = BundleTicket(product_id=b.product_id, rider_category=RiderCategory(b.rider_category),
                                  funded_by=TicketFunder(b.ticket_funded_by), sponsor_id=b.sponsor_id)
        return cls(
            id=b.id, name=b.name, terms=b.terms, coupon_ids=view.coupon_ids, ticket=ticket,
            audience=BundleAudience(b.audience), segment_id=b.segment_id, starts_at=b.starts_at, ends_at=b.ends_at,
            status=BundleStatus(b.status), distributed_at=b.distributed_at, segment_version=b.segment_version,
            recipients=b.recipients, created_at=b.created_at,
        )


class BundleClaimOut(Schema):
    id: uuid.UUID
    bundle_id: uuid.UUID
    bundle_name: str
    claimed_at: TokyoTime
    claim_ids: list[uuid.UUID] = Field(description="the coupon claims it made, one per coupon in the bundle's order "
                                       "(GET /v1/coupons/claims shows them)")
    ticket_id: uuid.UUID | None = Field(description="the bus ticket it granted (GET /v1/me/transit/tickets)")

    @classmethod
    def of(cls, found: ClaimedBundle) -> BundleClaimOut:
        c = found.claim
        return cls(id=c.id, bundle_id=c.bundle_id, bundle_name=found.bundle_name, claimed_at=c.claimed_at,
                   claim_ids=list(c.claim_ids), ticket_id=c.ticket_id)


class RideWindowIn(Schema):
    created_ride_days: Annotated[int, Field(ge=1, le=366, description="N: a ride within N days of the claim")]
    quiet_days: Annotated[int, Field(ge=1, le=366, description="M: by a resident without a ride in the M days before")]


class RideWindowOut(Schema):
    created_ride_days: int
    quiet_days: int
    set_by: str | None
    set_at: datetime | None


class CouponDayOut(Schema):
    day: date
    coupon_id: uuid.UUID
    merchant_id: uuid.UUID | None
    claims: int
    redemptions: int
    shop_discount: int
    sponsor_discount: int
    coupon_sales: int


class BundleDayOut(Schema):
    day: date
    bundle_id: uuid.UUID
    claims: int
    created_rides: int


class ProductDayOut(Schema):
    day: date
    merchant_id: uuid.UUID
    product_id: uuid.UUID
    tickets_sold: int
    sales: int
    activations: int
    rides: int
    conflicts: int


class BusPaymentDayOut(Schema):
    day: date
    merchant_id: uuid.UUID
    payments: int
    amount: int


class CountsOut(Schema):
    since: date
    until: date
    window: RideWindowOut
    coupons: list[CouponDayOut]
    bundles: list[BundleDayOut]
    products: list[ProductDayOut]
    bus_payments: list[BusPaymentDayOut]
