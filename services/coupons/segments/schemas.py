"""Request and response bodies of segments."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field, StrictBool

from services.coupons.segments.filters import AreaCode, Filter, Filters
from services.coupons.segments.models import AgeBand, Interest, TransportMode
from shared.schemas import Schema, Text100
from shared.text import text

Title = text(100)
Body = text(2000)


class ProfileIn(Schema):
    """The whole profile, replacing what was stored. Attributes need `segments_consent`."""

    segments_consent: StrictBool = Field(description="the attributes below may be used to choose offers for me")
    personalised_consent: StrictBool = Field(
        description="my own chiikipay activity (where I paid, in which sector, when) may be used to choose offers"
    )
    age_band: AgeBand | None = None
    area: AreaCode | None = Field(None, description="a code of the region's areas, as the app lists them")
    interests: list[Interest] = Field(default_factory=list, max_length=len(Interest))
    transport_mode: TransportMode | None = Field(None, description="how I usually get around")


class ProfileOut(Schema):
    segments_consent: bool
    personalised_consent: bool
    age_band: AgeBand | None
    area: str | None
    interests: list[Interest]
    transport_mode: TransportMode | None
    updated_at: datetime | None = Field(description="null: nothing stored (no consent given)")


class SegmentCreate(Schema):
    name: Text100
    filters: Filters = Field(
        description="a resident is in the segment when they match every filter (within one filter: any of its values)"
    )


class SegmentUpdate(Schema):
    name: Text100 | None = None
    filters: Filters | None = Field(None, description="new filters make a new version; earlier versions stay as they were")


class SegmentOut(Schema):
    id: uuid.UUID
    name: str
    version: int = Field(description="the version of the filters in force")
    filters: list[Filter]
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


class AudienceOut(Schema):
    segment_id: uuid.UUID
    version: int
    residents: int = Field(description="how many residents the segment matches now (never who)")
    at: datetime


class AnnouncementCreate(Schema):
    title: Title
    body: Body


class AnnouncementOut(Schema):
    id: uuid.UUID
    segment_id: uuid.UUID
    segment_version: int
    title: str
    body: str
    recipients: int = Field(description="notices made: one per resident in the segment when it was sent")
    created_at: datetime
