"""A segment's filters: a tagged union on `kind`. Each kind is one class here, which says all there
is to it: its fields (pydantic validates them and the API's schema is theirs), the consent a
resident must have given to match it, and how it matches. A new kind (rode the bus, claimed a
bundle) is one more class and one more member of `Filter`.

A resident is in a segment when they match every filter; within a filter, any of its values.
Attribute filters match only residents who consented to `segments`, activity filters only those
who consented to `personalised` offers."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field, TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from services.coupons.segments.models import AgeBand, Interest, TransportMode
from services.wallet import public as wallet
from shared.clock import TOKYO, tokyo_date
from shared.money import whole_number
from shared.schemas import Schema

# An area is a code the region's operator publishes to the app (a district, a school zone); the
# platform keeps no list of them, so a code no one chose simply matches no one.
AREA_CODE = r"^[a-z0-9][a-z0-9_-]{0,31}$"
AreaCode = Annotated[str, Field(pattern=AREA_CODE, max_length=32)]
Days = whole_number(ge=1, le=366)


class Consent(StrEnum):
    SEGMENTS = "segments"  # the resident's attributes may be used to target offers
    PERSONALISED = "personalised"  # the resident's own chiikipay activity may be used


@dataclass(frozen=True)
class AttributeMatch:
    """A profile column and the values any of which it must hold (for a list column: share one)."""

    column: str
    values: list[str]


class AttributeFilter(Schema):
    consent: ClassVar[Consent] = Consent.SEGMENTS

    @abstractmethod
    def match(self) -> AttributeMatch:
        """The profile column this filter reads and the values it accepts."""


class ActivityFilter(Schema):
    consent: ClassVar[Consent] = Consent.PERSONALISED

    @abstractmethod
    async def matching(self, session: AsyncSession, region: str, at: datetime, among: Collection[str]) -> list[str]:
        """Those of `among` (residents who consented) whose activity up to `at` matches."""


def window_start(at: datetime, days: int) -> datetime:
    """"The last N days" before `at`: from midnight (Asia/Tokyo) N days before `at`'s day, so
    today so far and the N whole days before it."""
    return datetime.combine(tokyo_date(at) - timedelta(days=days), time(0), TOKYO)


class AgeBandFilter(AttributeFilter):
    kind: Literal["age_band"]
    any_of: list[AgeBand] = Field(min_length=1, max_length=len(AgeBand))

    def match(self) -> AttributeMatch:
        return AttributeMatch("age_band", [v.value for v in self.any_of])


class AreaFilter(AttributeFilter):
    kind: Literal["area"]
    any_of: list[AreaCode] = Field(min_length=1, max_length=100)

    def match(self) -> AttributeMatch:
        return AttributeMatch("area", list(self.any_of))


class InterestFilter(AttributeFilter):
    kind: Literal["interest"]
    any_of: list[Interest] = Field(min_length=1, max_length=len(Interest))

    def match(self) -> AttributeMatch:
        return AttributeMatch("interests", [v.value for v in self.any_of])


class TransportModeFilter(AttributeFilter):
    kind: Literal["transport_mode"]
    any_of: list[TransportMode] = Field(min_length=1, max_length=len(TransportMode))

    def match(self) -> AttributeMatch:
        return AttributeMatch("transport_mode", [v.value for v in self.any_of])


class PaidAtSectorFilter(ActivityFilter):
    """Paid at a merchant of any of these sectors in the last `days` days."""

    kind: Literal["paid_at_sector"]
    sectors: list[wallet.Sector] = Field(min_length=1, max_length=len(wallet.Sector))
    days: Days

    async def matching(self, session: AsyncSession, region: str, at: datetime, among: Collection[str]) -> list[str]:
        return await wallet.payers(
            session, region=region, since=window_start(at, self.days), until=at, among=among, sectors=self.sectors
        )


class PaidFilter(ActivityFilter):
    """Paid anywhere in the region in the last `days` days."""

    kind: Literal["paid"]
    days: Days

    async def matching(self, session: AsyncSession, region: str, at: datetime, among: Collection[str]) -> list[str]:
        return await wallet.payers(session, region=region, since=window_start(at, self.days), until=at, among=among)


Filter = Annotated[
    AgeBandFilter | AreaFilter | InterestFilter | TransportModeFilter | PaidAtSectorFilter | PaidFilter,
    Field(discriminator="kind"),
]
Filters = Annotated[list[Filter], Field(min_length=1, max_length=20)]

# Stored filters (segment_versions.filters) are read back through the same validation.
FILTERS: TypeAdapter[list[Filter]] = TypeAdapter(list[Filter])


def stored(filters: list[Filter]) -> list[dict[str, object]]:
    return FILTERS.dump_python(filters, mode="json")
