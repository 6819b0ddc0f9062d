"""Request and response bodies of data sharing."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, StrictBool

from services.platform.sharing.service import Source
from shared.schemas import Schema


class SharingIn(Schema):
    opted_in: StrictBool = Field(
        description="my payment results (under a pseudonym: merchant, sector, amount, time, my area) may be sent to "
                    "the city's data platform; false stops it at once, also for results not yet delivered"
    )


class SharingOut(Schema):
    opted_in: bool = Field(description="whether my payment results are shared now")
    source: Source | None = Field(
        description="whose choice is in force: `city_id` (the consent given at the city's ID), `resident` (mine, "
                    "here); the later one wins. null: no choice made, nothing shared"
    )
    area: str | None = Field(description="my area as the city's ID asserts it, which shared results carry")
    updated_at: datetime | None = Field(description="null: no choice made")
