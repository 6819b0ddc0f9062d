"""Bodies of the history import API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from services.settlement.history.models import ImportStatus
from shared.schemas import Schema


class ImportErrorOut(Schema):
    id: uuid.UUID
    line: int | None = Field(description="the line of the file (the header is line 1); none: the whole file")
    row_key: str | None
    field: str | None
    code: str
    detail: str


class ImportOut(Schema):
    id: uuid.UUID
    status: ImportStatus
    filename: str | None
    content_sha256: str
    size_bytes: int
    total_rows: int = Field(description="rows of the file, once counted")
    checked_rows: int
    written_rows: int
    counts: dict[str, Any] | None = Field(
        description="once done: `written` and `skipped` rows per record kind, `openings` posted, `opened_yen`, "
        "`opened_points`"
    )
    error_count: int
    problem_type: str | None = Field(description="a rejected import's problem type")
    detail: str | None
    created_by: str
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    errors: list[ImportErrorOut] = Field(description="a rejected import's first problems (all: GET …/errors)")
