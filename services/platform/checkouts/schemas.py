"""Request and response bodies of checkouts."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from services.platform.checkouts.models import CheckoutStatus
from services.platform.partners.schemas import CallbackUrl
from shared.money import Amount, whole_number
from shared.schemas import Memo, Schema, Text100
from shared.text import text

Description = text(200)
ExpiresIn = whole_number(ge=60, le=86_400)


class CheckoutCreate(Schema):
    amount: Amount
    order_reference: Text100 = Field(description="your own order number, returned with every answer and webhook")
    description: Description = Field(description="what the resident is paying for, as the app shows it")
    expires_in_seconds: ExpiresIn = Field(
        900, description="how long the resident has to approve it (1 minute to 1 day)"
    )
    success_url: CallbackUrl = Field(description="where the app returns the resident after paying (on your allowed list)")
    cancel_url: CallbackUrl = Field(description="where it returns them otherwise (on your allowed list)")
    callback_url: CallbackUrl | None = Field(
        None, description="where this checkout's webhooks go (on your allowed list); default: your first callback URL"
    )


class CheckoutOut(Schema):
    id: uuid.UUID
    order_reference: str
    amount: int
    description: str
    status: CheckoutStatus
    app_link: str = Field(description="open it in the resident's app (a link or a QR code of it) to approve the payment")
    success_url: str
    cancel_url: str
    callback_url: str
    expires_at: datetime
    payment_id: uuid.UUID | None = Field(description="the wallet payment, once paid: refunds and settlement as for a shop")
    refunded: int
    created_at: datetime
    decided_at: datetime | None


class ResidentCheckoutOut(Schema):
    id: uuid.UUID
    partner_name: str
    merchant_name_ja: str
    amount: int
    description: str
    status: CheckoutStatus
    expires_at: datetime
    balance_yen: int = Field(description="your wallet's yen usable now")
    balance_points: int = Field(description="your points usable now (some only at local shops)")
    return_url: str = Field(description="where to send you back: the partner's success URL once paid, else its cancel URL")


class CheckoutRefundCreate(Schema):
    amount: Amount = Field(description="yen to give back: all that remains, or part of it")
    reason: Memo | None = None


class CheckoutRefundOut(Schema):
    refund_id: uuid.UUID
    checkout_id: uuid.UUID
    amount: int
    refunded: int = Field(description="of the checkout, with this refund")
    created_at: datetime
