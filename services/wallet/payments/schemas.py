"""Request and response bodies of paying at the shop."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from services.wallet.payments.models import FeeKind, PaymentMethod, Rounding
from shared.clock import Instant
from shared.money import Amount, BasisPoints
from shared.schemas import Memo, Schema, Text100
from shared.text import romanised, text

QRPayload = text(512)
OrderReference = text(64)


class StoreCreate(Schema):
    name: Text100
    name_ja: Text100 = Field(description="the name the store's QR code shows")
    terminal_label: romanised(25) | None = None


class StoreOut(Schema):
    id: uuid.UUID
    merchant_id: uuid.UUID
    name: str
    name_ja: str
    terminal_label: str | None
    created_at: datetime


class StoreQROut(Schema):
    store_id: uuid.UUID
    payload: str = Field(description="EMVCo merchant-presented QR payload (static)")


class PaymentCreate(Schema):
    qr: QRPayload = Field(description="the payload the resident's app scanned")
    amount: Amount | None = Field(default=None, description="typed by the resident for a static QR")


class PaymentOut(Schema):
    id: uuid.UUID
    journal_id: uuid.UUID
    merchant_id: uuid.UUID
    store_id: uuid.UUID
    method: PaymentMethod
    amount: int
    fee: int
    fee_rate_bp: int
    refunded_amount: int
    fee_returned: int
    point_amount: int = Field(description="of `amount`, what was paid in points (the rest in coin)")
    fee_point: int = Field(description="of `fee`, what was taken in points")
    refunded_point: int
    fee_returned_point: int
    reward_points: int = Field(description="points the payment earned from reward campaigns, net of refunds")
    order_reference: str | None
    card_id: uuid.UUID | None = None
    created_at: datetime


class RefundCreate(Schema):
    amount: Amount
    reason: Memo | None = None


class PaymentLotOut(Schema):
    lot_id: uuid.UUID
    unit: str = Field(description="yen (coin) or point")
    amount: int = Field(description="what this lot paid")
    restored: int = Field(description="of it, what refunds have put back")
    restriction: list[str] | None = Field(description="the lot's merchant classes; null: every merchant")
    expires_at: datetime | None


class ReceiptShopOut(Schema):
    store_name_ja: str
    merchant_name: str
    merchant_name_ja: str
    address: str
    invoice_registration_number: str | None = Field(
        description="適格請求書発行事業者登録番号 of the merchant; null: not a registered qualified-invoice issuer"
    )


class PaymentDetailOut(PaymentOut):
    coin_amount: int = Field(description="of `amount`, what was paid in coin (amount − point_amount)")
    refunded_coin: int = Field(description="of `refunded_amount`, what went back as coin")
    shop: ReceiptShopOut = Field(description="who issues the receipt")
    lots: list[PaymentLotOut] = Field(description="which of the wallet's lots paid what, in spending order")


class RefundOut(Schema):
    payment: PaymentOut
    refunded_now: int
    fee_returned_now: int


class PaymentRequestCreate(Schema):
    store_id: uuid.UUID
    amount: Amount
    order_reference: OrderReference


class PaymentRequestOut(Schema):
    id: uuid.UUID
    store_id: uuid.UUID
    amount: int
    order_reference: str
    status: str
    expires_at: datetime
    payment_id: uuid.UUID | None
    payload: str = Field(description="EMVCo merchant-presented QR payload (dynamic) to show the resident")


class FeePlanCreate(Schema):
    kind: FeeKind = FeeKind.PAYMENT
    rate_bp: BasisPoints
    rounding: Rounding = Rounding.DOWN
    yearly_cap: Amount | None = Field(default=None, description="most fees per fiscal year, yen")
    effective_from: Instant | None = Field(default=None, description="default: now")


class FeePlanOut(Schema):
    id: uuid.UUID
    merchant_id: uuid.UUID | None
    kind: FeeKind
    rate_bp: int
    rounding: Rounding
    yearly_cap: int | None
    effective_from: datetime


class TransferCreate(Schema):
    to_merchant_id: uuid.UUID
    amount: Amount
    memo: Memo | None = None


class TransferOut(Schema):
    journal_id: uuid.UUID
    from_merchant_id: uuid.UUID
    to_merchant_id: uuid.UUID
    amount: int
    fee: int
    fee_rate_bp: int
    created_at: datetime


class CpmTokenOut(Schema):
    token: str = Field(description="show as a QR code or barcode; single use")
    expires_at: datetime


class CpmPaymentCreate(Schema):
    token: Annotated[str, StringConstraints(pattern=r"^[0-9]{20}$")]
    amount: Amount
    store_id: uuid.UUID | None = Field(default=None, description="default: the merchant's first store")


Pin = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]


class CardIssue(Schema):
    pin: Pin = Field(description="4 digits, chosen by the resident at the counter")
    daily_limit: Amount | None = None


class CardOut(Schema):
    id: uuid.UUID
    account_id: uuid.UUID
    code: str | None = Field(
        description="what the card's printed QR holds: with the PIN it pays, so it is shown to the resident and "
        "to the operator who prints the card, never to an auditor (null)",
    )
    daily_limit: int
    status: str
    created_at: datetime


class CardPaymentCreate(Schema):
    card_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{16}$")]
    pin: Pin
    amount: Amount
    store_id: uuid.UUID | None = None
