"""Response bodies of the outbox's operator views."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from services.platform.outbox.models import EventStatus
from shared.schemas import Schema


class OutboxEventOut(Schema):
    id: uuid.UUID = Field(description="the event id, sent as X-Chiikipay-Event-Id: the receiver's deduplication key")
    event_type: str
    stream: str = Field(description="events of one stream (one checkout) are delivered in order, one at a time")
    destination_kind: str
    url: str
    payload: dict[str, Any]
    status: EventStatus = Field(
        description="pending (due at next_attempt_at), delivered, failed (every attempt spent: holds its stream "
                    "back until re-sent), withdrawn (the destination no longer wants it: never sent)"
    )
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    last_status: int | None = Field(description="the destination's HTTP status at the last attempt, if it answered")
    created_at: datetime
    delivered_at: datetime | None
