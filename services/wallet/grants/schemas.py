"""Request and response bodies of point grants."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from services.wallet.grants.models import GrantCategory, UploadStatus
from shared.clock import Day
from shared.money import Amount
from shared.schemas import Schema, Text100
from shared.text import text

# Printable ASCII, as the client's own record id (a UUID, "event42-row17" …) is.
RowKey = Annotated[str, StringConstraints(pattern=r"^[!-~]{1,128}$")]
EventId = text(100)
Memo = text(200, required=False)


class GrantCreate(Schema):
    wallet_id: uuid.UUID = Field(
        description="the resident's wallet id (as their app shows it, or GET /v1/wallets?subject=… finds it)"
    )
    amount: Amount = Field(description="points")
    category: GrantCategory
    event_id: EventId = Field(description="the activity's id in the partner's or the city's records")
    activity_date: Day = Field(description="the day of the activity (Asia/Tokyo); not after today")
    row_key: RowKey = Field(
        description="the grant's own idempotency key within the campaign: the same key grants at most once. "
        "Sent again with the same wallet, amount, category, event and date it returns the first grant; "
        "with anything of those different it is refused (409 row-key-reused). The memo is not compared."
    )
    memo: Memo | None = Field(None, description="shown to the resident in their history")


class GrantOut(Schema):
    id: uuid.UUID
    campaign_id: uuid.UUID
    row_key: str
    wallet_id: uuid.UUID
    amount: int
    category: GrantCategory
    event_id: str
    activity_date: date
    memo: str | None
    journal_id: uuid.UUID
    lot_id: uuid.UUID
    expires_at: datetime | None = Field(description="when the granted points expire (the campaign's rule)")
    upload_id: uuid.UUID | None
    partner_key_id: uuid.UUID | None
    actor: str
    fiscal_year: int
    created_at: datetime


class GrantUploadErrorOut(Schema):
    line: int | None = Field(description="line of the file (the header is line 1); null: the whole file")
    row_key: str | None
    field: str | None
    code: str = Field(description="stable reason code, e.g. unknown-resident, budget-exhausted")
    detail: str


class GrantUploadOut(Schema):
    id: uuid.UUID
    campaign_id: uuid.UUID
    status: UploadStatus
    filename: str | None
    content_sha256: str
    size_bytes: int
    total_rows: int = Field(description="data rows in the file (known once it is read)")
    validated_rows: int
    granted_rows: int = Field(description="rows granted now (counted while granting; final once done)")
    skipped_rows: int = Field(description="rows already granted with the same content before: not granted again")
    points: int = Field(description="points the new grants give (granted once done)")
    error_count: int
    errors: list[GrantUploadErrorOut] = Field(
        description="the first problems (at most 200) when rejected; every one at …/errors, page by page"
    )
    detail: str | None
    partner_key_id: uuid.UUID | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class PartnerKeyCreate(Schema):
    name: Text100


class PartnerKeyOut(Schema):
    id: uuid.UUID
    campaign_id: uuid.UUID
    name: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


class PartnerKeyCreated(PartnerKeyOut):
    secret: str = Field(description="send as X-API-Key; shown once, stored only as a hash")


class GrantTotal(Schema):
    category: GrantCategory
    grants: int
    points: int


class GrantSummaryOut(Schema):
    fiscal_year: int = Field(description="年度, from 1 April (Asia/Tokyo), by the day the points were granted")
    grants: int = Field(description="ポイント付与回数: number of grants")
    points: int = Field(description="ポイント付与額: points granted")
    residents: int = Field(description="residents who received at least one grant")
    by_category: list[GrantTotal]
