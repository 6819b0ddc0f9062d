"""Request and response bodies of coupons. Moments go out in Asia/Tokyo (+09:00), as residents
and shops read them; any offset is accepted in."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, AnyHttpUrl, Field, StringConstraints, UrlConstraints

from services.coupons.models import Audience, Coupon, CouponKind, CouponStatus, Funder
from shared.clock import TOKYO, Instant
from shared.money import MAX_AMOUNT, Amount, whole_number
from shared.schemas import Schema, Text100
from shared.text import text

TokyoTime = Annotated[datetime, AfterValidator(lambda at: at.astimezone(TOKYO))]
Terms = text(2000)
ImageUrl = Annotated[AnyHttpUrl, UrlConstraints(max_length=2048, allowed_schemes=["https", "http"])]
Yen = whole_number(ge=0, le=MAX_AMOUNT)
Value = whole_number(gt=0, le=MAX_AMOUNT)
Stock = whole_number(gt=0, le=10_000_000)
PerResident = whole_number(gt=0, le=1000)
StoreIds = Annotated[list[uuid.UUID], Field(min_length=1, max_length=200)]
QRPayload = text(512)
# A free item's code: 16 characters of base32 (80 random bits), what the shop scans or types.
CouponCode = Annotated[str, StringConstraints(pattern=r"^[A-Z2-7]{16}$")]


class CouponFields(Schema):
    name: Text100 | None = None
    kind: CouponKind | None = None
    value: Value | None = Field(
        default=None, description="yen_off: yen off; percent_off: basis points (1000 = 10 %); fixed_price: the "
        "price the resident pays; free_item: none",
    )
    max_discount: Amount | None = Field(default=None, description="percent_off: the most yen it takes off")
    min_spend: Yen | None = Field(default=None, description="the smallest price (before discount) it applies to")
    store_ids: StoreIds | None = Field(
        default=None, description="where it is valid; none: every store of the merchant (region-wide: of the region)"
    )
    valid_from: Instant | None = None
    valid_until: Instant | None = Field(default=None, description="exclusive")
    stock: Stock | None = Field(default=None, description="how many may be claimed in all")
    per_resident_limit: PerResident | None = None
    audience: Audience | None = Field(default=None, description="all residents, or a segment's (operator only)")
    segment_id: uuid.UUID | None = Field(default=None, description="audience segment: the segment")
    terms: Terms | None = None
    image_url: ImageUrl | None = None
    funded_by: Funder | None = Field(
        default=None, description="shop: the shop gives the discount up; sponsor: the sponsor's budget pays the shop it"
    )
    sponsor_id: uuid.UUID | None = None


class CouponCreate(CouponFields):
    merchant_id: uuid.UUID | None = Field(
        default=None, description="the issuing merchant (a merchant admin: its own); an operator's none: region-wide",
    )
    name: Text100
    kind: CouponKind
    min_spend: Yen = 0
    valid_from: Instant
    valid_until: Instant = Field(description="exclusive")
    stock: Stock
    per_resident_limit: PerResident = 1
    audience: Audience = Audience.ALL
    terms: Terms
    funded_by: Funder = Funder.SHOP


class CouponUpdate(CouponFields):
    """A draft's fields; an active or paused coupon takes only a new name, image or end."""


class CouponOut(Schema):
    id: uuid.UUID
    merchant_id: uuid.UUID | None = Field(description="none: region-wide")
    name: str
    kind: CouponKind
    value: int | None
    max_discount: int | None
    min_spend: int
    store_ids: list[uuid.UUID] | None
    valid_from: TokyoTime
    valid_until: TokyoTime
    stock: int
    stock_left: int = Field(description="not yet claimed (a draft: all of it)")
    per_resident_limit: int
    audience: Audience
    segment_id: uuid.UUID | None = Field(description="audience segment: the segment, checked live at claim")
    terms: str
    image_url: str | None
    funded_by: Funder
    sponsor_id: uuid.UUID | None
    status: CouponStatus
    created_at: TokyoTime
    updated_at: TokyoTime

    @classmethod
    def of(cls, coupon: Coupon, stock_left: int) -> CouponOut:
        fields = {name: getattr(coupon, name) for name in cls.model_fields if name != "stock_left"}
        return cls.model_validate({**fields, "stock_left": stock_left})


class ClaimState(StrEnum):
    """What the resident sees: a claim's status, and `expired` for one claimed and never used
    whose validity is over."""

    CLAIMED = "claimed"
    REDEEMED = "redeemed"
    EXPIRED = "expired"
    RELEASED = "released"  # its payment was refunded in full


class ClaimOut(Schema):
    id: uuid.UUID
    coupon_id: uuid.UUID
    coupon_name: str
    kind: CouponKind
    state: ClaimState
    code: str | None = Field(description="a free item's: show it to the shop")
    valid_from: TokyoTime
    valid_until: TokyoTime
    claimed_at: TokyoTime
    redeemed_at: TokyoTime | None


class CouponPaymentCreate(Schema):
    qr: QRPayload = Field(description="the payload the resident's app scanned")
    amount: Amount = Field(description="the price before the discount (a dynamic QR: its amount)")
    claim_id: uuid.UUID


class CouponQuoteOut(Schema):
    claim_id: uuid.UUID
    coupon_id: uuid.UUID
    merchant_id: uuid.UUID
    store_id: uuid.UUID
    price: int
    discount: int
    to_pay: int
    funded_by: Funder
    sponsor_id: uuid.UUID | None


class RedemptionOut(Schema):
    id: uuid.UUID
    claim_id: uuid.UUID
    coupon_id: uuid.UUID
    merchant_id: uuid.UUID
    store_id: uuid.UUID
    payment_id: uuid.UUID | None = Field(description="none: a free item, redeemed without a payment")
    price: int | None
    discount: int
    paid: int | None
    funded_by: Funder
    sponsor_id: uuid.UUID | None
    redeemed_at: TokyoTime
    reversed_at: TokyoTime | None


class CouponPaidOut(Schema):
    id: uuid.UUID
    journal_id: uuid.UUID
    merchant_id: uuid.UUID
    store_id: uuid.UUID
    price: int = Field(description="before the discount")
    amount: int = Field(description="what the resident paid: price − discount")
    fee: int = Field(description="charged on `amount`")
    point_amount: int = Field(description="of `amount`, what was paid in points")
    reward_points: int
    created_at: TokyoTime


class CouponPaymentOut(Schema):
    payment: CouponPaidOut
    redemption: RedemptionOut


class CodeRedemptionCreate(Schema):
    code: CouponCode
    store_id: uuid.UUID

