"""Request and response bodies of campaigns."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field, StrictBool

from services.wallet.campaigns.models import CampaignKind
from shared.clock import Instant
from shared.money import Amount, BasisPoints, whole_number
from shared.schemas import ClassCode, Schema, Text100


class MerchantClassCreate(Schema):
    code: ClassCode
    name: Text100
    name_ja: Text100


class MerchantClassOut(Schema):
    code: str
    name: str
    name_ja: str


class RewardRate(Schema):
    merchant_class: ClassCode
    rate_bp: BasisPoints = Field(description="points back in basis points of the amount (2000 = 20 %)")


class CampaignCreate(Schema):
    kind: CampaignKind
    name: Text100
    name_ja: Text100
    restriction: list[ClassCode] | None = Field(
        None, min_length=1, max_length=20,
        description="merchant classes where the campaign's points may be spent; omitted: every merchant",
    )
    usable_from: Instant | None = Field(None, description="the points may be spent from this moment")
    usable_until: Instant | None = Field(
        None, description="the points expire at this moment (a fixed window); it must be midnight Asia/Tokyo",
    )
    expiry_months: whole_number(ge=1, le=120) | None = Field(
        None, description="or: the points expire at the end of the Nth month after they are granted",
    )
    reward_rates: list[RewardRate] | None = Field(
        None, min_length=1, max_length=50,
        description="reward campaigns: points back per merchant class; classes not listed earn nothing",
    )
    reward_from: Instant | None = Field(None, description="reward campaigns: payments from this moment earn points")
    reward_until: Instant | None = Field(None, description="reward campaigns: … until this moment (exclusive)")
    reward_monthly_cap: Amount | None = Field(
        None, description="reward campaigns: most points one resident earns per (Tokyo) month",
    )
    reward_points_payments: StrictBool | None = Field(
        None, description="reward campaigns: true: the whole amount of a payment earns, whatever paid it; "
        "false (the default): only the part paid in coin earns, the part paid in points earns nothing",
    )


class CampaignOut(Schema):
    id: uuid.UUID
    kind: CampaignKind
    name: str
    name_ja: str
    status: str
    restriction: list[str] | None
    usable_from: datetime | None
    usable_until: datetime | None
    expiry_months: int | None
    reward_rates: list[RewardRate] | None
    reward_from: datetime | None
    reward_until: datetime | None
    reward_monthly_cap: int | None
    reward_points_payments: bool = Field(
        description="reward campaigns: whether the part of a payment paid in points earns a reward too "
        "(false: only the coin part earns); false for other campaigns",
    )
    budget_account_id: uuid.UUID
    budget: int = Field(description="points left in the campaign budget")
    created_at: datetime


class FundingCreate(Schema):
    amount: Amount


class FundingOut(Schema):
    campaign_id: uuid.UUID
    journal_id: uuid.UUID
    amount: int
    budget: int
