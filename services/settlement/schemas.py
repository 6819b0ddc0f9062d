"""Request and response bodies of settlement's cycles, payout accounts and settings."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from services.settlement.periods import Cycle
from services.settlement.zengin import AccountType
from shared.money import whole_number
from shared.schemas import Schema
from shared.text import text

BankCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]
BranchCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{3}$")]
AccountNumber = Annotated[str, StringConstraints(pattern=r"^[0-9]{7}$")]
RequesterCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{10}$")]

ACCOUNT_TYPE = "預金種目: ordinary 普通, current 当座, savings 貯蓄"
NAME_RULE = (
    "katakana (full- or half-width), hiragana, letters, digits, spaces and ( ) - . / , are accepted and stored as "
    "the transfer file carries them (half-width katakana, upper case); anything else, kanji included, is "
    "refused (422)"
)


class PeriodOut(Schema):
    cycle: Cycle
    label: str = Field(description="YYYY-MM monthly, YYYY-MM-H1 / -H2 twice monthly, YYYY-MM-DD on demand")
    first_day: date = Field(description="the first trading day, in Tokyo")
    last_day: date = Field(description="the last trading day, in Tokyo")
    start: datetime = Field(description="00:00 JST of the first day")
    end: datetime = Field(description="00:00 JST after the last day: trades before this instant belong to the period")
    pay_date: date = Field(description="the day the payout is sent, a bank business day")
    readable_at: datetime = Field(description="when a settlement run may read the period: its end and a grace period")


class CycleIn(Schema):
    cycle: Cycle = Field(description="monthly; twice_monthly (1st–15th paid at month-end, 16th–end on the 15th of "
                                     "the next month); on_demand (paid the next business day, less the payout fee)")


class CycleOut(Schema):
    merchant_id: uuid.UUID
    cycle: Cycle
    effective_at: datetime | None = Field(description="since when; null: never set, monthly by default")
    set_by: str | None
    current_period: PeriodOut = Field(description="the period the present moment is in, on this cycle")


class BankAccountIn(Schema):
    bank_code: BankCode = Field(description="金融機関コード, 4 digits, checked against the zengin-code data")
    branch_code: BranchCode = Field(description="支店コード, 3 digits, checked against the zengin-code data")
    account_type: AccountType = Field(description=ACCOUNT_TYPE)
    account_number: AccountNumber = Field(description="口座番号, 7 digits (zero-filled on the left)")


class PayoutAccountIn(BankAccountIn):
    holder_name: text(60) = Field(description=f"口座名義 (at most 30 characters once converted): {NAME_RULE}")


class PayoutAccountOut(Schema):
    merchant_id: uuid.UUID
    bank_code: str
    bank_name: str | None = Field(description="null when the code is no longer in the zengin-code data")
    branch_code: str
    branch_name: str | None = Field(description="null when the code is no longer in the zengin-code data")
    account_type: AccountType
    account_number: str
    holder_name: str = Field(description="as the transfer file carries it")
    payable: bool = Field(description="false when its bank or branch has disappeared: a run holds the merchant back")
    updated_by: str
    updated_at: datetime


class SourceAccountIn(BankAccountIn):
    requester_code: RequesterCode = Field(description="委託者コード, 10 digits, given by the consortium's bank")
    requester_name: text(80) = Field(description=f"振込依頼人名 (at most 40 characters once converted): {NAME_RULE}")


class SourceAccountOut(Schema):
    requester_code: str
    requester_name: str = Field(description="as the transfer file carries it")
    bank_code: str
    bank_name: str | None
    branch_code: str
    branch_name: str | None
    account_type: AccountType
    account_number: str
    updated_by: str
    updated_at: datetime


class PayoutSettingsIn(Schema):
    on_demand_fee: whole_number(ge=0, le=100_000) = Field(description="yen charged on each on-demand payout")
    minimum_payout: whole_number(ge=0, le=10_000_000) = Field(
        description="yen: a balance below it carries over to the merchant's next period"
    )


class PayoutSettingsOut(Schema):
    on_demand_fee: int
    minimum_payout: int
    updated_by: str | None = Field(description="null: never set, the defaults (no fee, no minimum)")
    updated_at: datetime | None

