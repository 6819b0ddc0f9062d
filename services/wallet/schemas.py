"""Request and response bodies of the wallet API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from services.wallet.directory.models import Sector
from services.wallet.ledger.models import Status
from shared.auth import REGION_CODE
from shared.clock import Day
from shared.money import Amount, whole_number
from shared.schemas import ClassCode, Memo, Schema, Text100
from shared.text import romanised, text

# A merchant's romanised name is printed in its QR code (EMVCo 59): printable ASCII. Its Japanese
# name (64/01) is checked where it is stored (service.check_printable).
MerchantName = romanised(100)
Household = text(64)
Address = text(200)
BankEventId = text(128)
# 全銀 payee names: half-width katakana, upper-case letters, digits, space and a few symbols.
KanaName = Annotated[str, StringConstraints(pattern=r"^[0-9A-Zｦ-ﾟ ().,\-/]{1,30}$")]


# 適格請求書発行事業者登録番号: "T" and 13 digits, the first of them a check digit (never 0); the
# check digit itself is a rule of the service (services/wallet/directory/service.py).
InvoiceRegistrationNumber = Annotated[str, StringConstraints(pattern=r"^T[1-9][0-9]{12}$")]


class RegionOut(Schema):
    code: str
    name: str = Field(description="romanised; the city field (60) of the region's QR codes")
    name_ja: str = Field(description="the Japanese city field (64/02) of the region's QR codes")
    balance_cap: int = Field(description="largest balance a resident wallet may hold, yen")
    topup_min: int
    topup_max: int
    topup_step: int
    coin_expiry_months: int | None = Field(
        description="top-ups expire at the end of the Nth month after the month of the top-up; null: never"
    )
    refund_window_days: int = Field(
        description="a payment may be refunded on its (Tokyo) day and this many days after; 0: same day only"
    )
    payment_request_minutes: int = Field(description="how long a dynamic QR (one sale at the till) can be paid")
    created_at: datetime


class RegionSettings(Schema):
    """A region's settings as an operator may set them: each field's own bounds here, the rules
    between them (min ≤ max ≤ cap, multiples of the step) in service.check_region_settings."""

    balance_cap: Amount | None = None
    topup_min: Amount | None = None
    topup_max: Amount | None = None
    topup_step: Amount | None = None
    coin_expiry_months: whole_number(ge=1, le=120) | None = Field(
        None, description="applies to top-ups from now on; send null to make them never expire",
    )
    refund_window_days: whole_number(ge=0, le=365) | None = None
    payment_request_minutes: whole_number(ge=1, le=60) | None = Field(
        None, description="lifetime of a dynamic QR, from its creation at the till",
    )


class RegionSettingsUpdate(RegionSettings):
    """PATCH /v1/region: only the fields sent change."""


RegionCode = Annotated[str, StringConstraints(pattern=f"^{REGION_CODE.pattern}$")]


class RegionCreate(RegionSettings):
    """A new region (platform operator). Settings left out take the platform's defaults."""

    code: RegionCode = Field(description="lower-case slug, e.g. aizu; fixed for good")
    name: text(64) = Field(description="romanised (printable ASCII), at most 15 characters once spaces are collapsed: "
                                       "every QR code of the region carries it whole as its city")
    name_ja: text(64) = Field(description="Japanese, at most 15 characters: the QR codes' Japanese city")


class WalletOut(Schema):
    id: uuid.UUID
    subject: str
    unit: str
    balance: int = Field(description="coin: paid-in yen, what the balance cap applies to")
    points: int = Field(description="free value (premiums, grants, rewards); 1 point pays 1 yen")
    balance_cap: int
    household: str | None = Field(description="set by the operator; premium sets are limited per household")
    status: Status
    created_at: datetime


class LotOut(Schema):
    id: uuid.UUID
    unit: str = Field(description="yen (coin: paid-in money) or point (free value)")
    source: str = Field(description="topup, premium, grant, reward, or legacy (a balance from before lots)")
    campaign_id: uuid.UUID | None
    campaign_name: str | None
    amount: int = Field(description="what the lot was worth when it was created")
    remaining: int
    restriction: list[str] | None = Field(description="merchant classes where it may be spent; null: every merchant")
    usable_from: datetime | None
    expires_at: datetime | None = Field(description="midnight Asia/Tokyo; the lot can be spent until the day before")
    usable_now: bool
    created_at: datetime


class UnitAmounts(Schema):
    yen: int
    point: int


class WalletBalanceOut(Schema):
    wallet_id: uuid.UUID
    balance: int = Field(description="coin (yen) held")
    points: int = Field(description="points held")
    usable: UnitAmounts = Field(description="what can pay now (excludes lots not yet usable or past their expiry)")
    expiring_within_30_days: UnitAmounts
    expiring_lots: list[LotOut] = Field(description="the lots behind expiring_within_30_days, soonest first")
    lots: list[LotOut] = Field(description="every lot with something left, in spending order")


class NoticeOut(Schema):
    id: uuid.UUID
    kind: str = Field(description="expiry_30d / expiry_7d (value about to expire), lottery results …")
    lot_id: uuid.UUID | None
    payload: dict[str, Any]
    created_at: datetime


class ExpiryRunCreate(Schema):
    as_of: Day = Field(description="the day (Asia/Tokyo) whose midnight lots expire at or before")


class ExpiryRunOut(Schema):
    as_of: date
    status: str = Field(description="running (resumed by running the date again) or done")
    lots_expired: int
    yen_expired: int
    points_expired: int
    notices: int
    started_by: str
    started_at: datetime
    finished_at: datetime | None


class WalletUpdate(Schema):
    status: Status | None = Field(None, description="suspend, reactivate or close the wallet")
    household: Household | None = Field(
        None, description="the resident's household (premium sets are limited per household); null clears it",
    )


class HistoryItem(Schema):
    entry_id: uuid.UUID = Field(description="the entry's id; an imported movement's own id")
    journal_id: uuid.UUID | None = Field(description="none for an imported movement")
    kind: str
    unit: str = Field(description="yen (coin) or point")
    amount: int = Field(description="what the wallet gained (+) or gave up (−)")
    balance_after: int | None
    reference: str | None
    memo: str | None
    created_at: datetime
    imported: bool = Field(
        False, description="imported from the previous platform (its id in `reference`, its own time); "
        "it moved no value here: what it left is in the wallet's `opening` movement",
    )


class TopupRequest(Schema):
    amount: Amount
    memo: Memo | None = None


class CashoutRequest(Schema):
    amount: Amount
    reason: Literal["moving_away", "service_closure"] = Field(
        description="prepaid value is paid back only in the cases the law allows"
    )


class MovementOut(Schema):
    journal_id: uuid.UUID
    wallet_id: uuid.UUID
    amount: int
    balance_after: int
    created_at: datetime


class BankTopupEvent(Schema):
    event_id: BankEventId
    wallet_id: uuid.UUID
    amount: Amount
    occurred_at: datetime


class MerchantCreate(Schema):
    name: MerchantName = Field(description="romanised (printable ASCII): the name a QR code shows")
    name_ja: Text100
    sector: Sector
    mcc: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")] = Field(description="merchant category code")
    address: Address
    bank_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]
    branch_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{3}$")]
    account_type: Literal[1, 2, 4] = Field(description="全銀 account type: 1 普通, 2 当座, 4 貯蓄")
    account_number: Annotated[str, StringConstraints(pattern=r"^[0-9]{7}$")]
    account_holder_kana: KanaName
    merchant_class: ClassCode = Field("small_shop", description="a code of GET /v1/merchant-classes")
    invoice_registration_number: InvoiceRegistrationNumber | None = Field(
        None, description='適格請求書発行事業者登録番号: "T" and 13 digits (check digit verified), printed on '
        "receipts; omitted: the shop is not a registered qualified-invoice issuer",
    )


class MerchantUpdate(Schema):
    name: MerchantName | None = None
    name_ja: Text100 | None = None
    sector: Sector | None = None
    mcc: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")] | None = None
    address: Address | None = None
    bank_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")] | None = None
    branch_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{3}$")] | None = None
    account_type: Literal[1, 2, 4] | None = None
    account_number: Annotated[str, StringConstraints(pattern=r"^[0-9]{7}$")] | None = None
    account_holder_kana: KanaName | None = None
    merchant_class: ClassCode | None = None
    status: Status | None = None
    invoice_registration_number: InvoiceRegistrationNumber | None = Field(
        None, description="send null to clear it (the shop's registration was withdrawn)",
    )


class MerchantProfileOut(Schema):
    """What anyone who deals with the merchant may know of it; no bank account."""

    id: uuid.UUID
    name: str
    name_ja: str
    sector: Sector
    mcc: str
    address: str
    invoice_registration_number: str | None = Field(
        description="適格請求書発行事業者登録番号; null: not a registered qualified-invoice issuer"
    )
    merchant_class: str
    status: Status
    created_at: datetime
    updated_at: datetime


BANK_HIDDEN = "null unless the caller is an operator, an auditor or the merchant's admin"


class MerchantOut(MerchantProfileOut):
    """The merchant with its payout bank account, for those who pay it out, audit it or own it."""

    bank_code: str | None = Field(description=BANK_HIDDEN)
    branch_code: str | None = Field(description=BANK_HIDDEN)
    account_type: int | None = Field(description=BANK_HIDDEN)
    account_number: str | None = Field(description=BANK_HIDDEN)
    account_holder_kana: str | None = Field(description=BANK_HIDDEN)


class BalanceOut(Schema):
    account_id: uuid.UUID
    unit: str
    balance: int = Field(description="sum of all entries at the time of the call (never lagging)")


class MerchantBalanceOut(BalanceOut):
    points_account_id: uuid.UUID
    points: int = Field(description="points taken in payments, summed from entries at the time of the call")


class SystemAccountOut(BalanceOut):
    kind: str


class ApiKeyCreate(Schema):
    name: Text100


class ApiKeyOut(Schema):
    id: uuid.UUID
    merchant_id: uuid.UUID
    name: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    secret: str = Field(description="shown once; send as the X-API-Key header from the terminal")


class TerminalOut(Schema):
    api_key_id: uuid.UUID
    merchant: MerchantProfileOut = Field(
        description="the merchant the key belongs to, without its bank account; its stores are at "
        "GET /v1/merchants/{id}/stores",
    )


class AuditEventOut(Schema):
    id: uuid.UUID
    actor_subject: str
    actor_role: str
    action: str
    target_type: str
    target_id: str | None
    before: dict | None
    after: dict | None
    request_id: str | None
    source_address: str | None
    created_at: datetime
