"""Every SQL query of segments."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ARRAY, Text, any_, bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.coupons.segments.filters import AttributeMatch
from services.coupons.segments.models import Announcement, ResidentProfile, Segment, SegmentVersion

# --- profiles ---------------------------------------------------------------------------------


async def profile(session: AsyncSession, region_id: uuid.UUID, subject: str, *, lock: bool = False) -> ResidentProfile | None:
    query = select(ResidentProfile).where(ResidentProfile.region_id == region_id, ResidentProfile.subject == subject)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def save_profile(session: AsyncSession, values: dict[str, Any]) -> ResidentProfile:
    statement = pg_insert(ResidentProfile).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[ResidentProfile.region_id, ResidentProfile.subject],
        set_={k: statement.excluded[k] for k in values if k not in ("region_id", "subject")},
    ).returning(ResidentProfile)
    return (await session.execute(statement, execution_options={"populate_existing": True})).scalar_one()


async def delete_profile(session: AsyncSession, region_id: uuid.UUID, subject: str) -> None:
    await session.execute(
        delete(ResidentProfile).where(ResidentProfile.region_id == region_id, ResidentProfile.subject == subject)
    )


async def consenting(
    session: AsyncSession, region_id: uuid.UUID, *, segments: bool, personalised: bool,
    attributes: Sequence[AttributeMatch], among: Sequence[str] | None = None,
) -> list[str]:
    """Subjects of the region's profiles with the consents asked for, matching every attribute;
    of `among` only, if given (one resident's check reads one row)."""
    query = select(ResidentProfile.subject).where(ResidentProfile.region_id == region_id)
    if among is not None:
        query = query.where(ResidentProfile.subject == any_(bindparam("among", list(among), type_=ARRAY(Text))))
    if segments:
        query = query.where(ResidentProfile.segments_consent)
    if personalised:
        query = query.where(ResidentProfile.personalised_consent)
    for n, match in enumerate(attributes):
        column = getattr(ResidentProfile, match.column)
        values = bindparam(f"values_{n}", match.values, type_=ARRAY(Text))
        query = query.where(column.op("&&")(values) if isinstance(column.type, ARRAY) else column == any_(values))
    return list((await session.execute(query.order_by(ResidentProfile.subject))).scalars())


# --- segments ---------------------------------------------------------------------------------


async def insert_segment(session: AsyncSession, **values: Any) -> Segment | None:
    """None if a live segment of the region has the name already."""
    statement = (
        pg_insert(Segment).values(**values)
        .on_conflict_do_nothing(index_elements=[Segment.region_id, Segment.name], index_where=Segment.archived_at.is_(None))
        .returning(Segment)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def insert_version(session: AsyncSession, **values: Any) -> SegmentVersion:
    return (await session.execute(insert(SegmentVersion).values(**values).returning(SegmentVersion))).scalar_one()


async def segment(
    session: AsyncSession, region_id: uuid.UUID, segment_id: uuid.UUID, *, lock: bool = False
) -> Segment | None:
    """A live (not archived) segment of the region."""
    query = select(Segment).where(
        Segment.id == segment_id, Segment.region_id == region_id, Segment.archived_at.is_(None)
    )
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def version(session: AsyncSession, segment_id: uuid.UUID, number: int) -> SegmentVersion | None:
    return await session.get(SegmentVersion, (segment_id, number))


async def segments(
    session: AsyncSession, region_id: uuid.UUID, *, after_id: uuid.UUID | None, limit: int
) -> list[tuple[Segment, SegmentVersion]]:
    """Live segments with their version in force, newest first; `after_id` is the cursor."""
    query = (
        select(Segment, SegmentVersion)
        .join(SegmentVersion, (SegmentVersion.segment_id == Segment.id) & (SegmentVersion.version == Segment.version))
        .where(Segment.region_id == region_id, Segment.archived_at.is_(None))
    )
    if after_id is not None:
        query = query.where(Segment.id < after_id)
    rows = await session.execute(query.order_by(Segment.id.desc()).limit(limit))
    return [(row[0], row[1]) for row in rows]


async def update_segment(session: AsyncSession, segment_id: uuid.UUID, **values: Any) -> Segment | None:
    """None if the new name is a live segment's already: the unique index decides, so two renames
    to one name at once cannot both succeed."""
    statement = update(Segment).where(Segment.id == segment_id).values(**values).returning(Segment)
    try:
        async with session.begin_nested():
            return (await session.execute(statement, execution_options={"populate_existing": True})).scalar_one()
    except IntegrityError:
        return None


# --- announcements ----------------------------------------------------------------------------


async def insert_announcement(session: AsyncSession, **values: Any) -> Announcement:
    return (await session.execute(insert(Announcement).values(**values).returning(Announcement))).scalar_one()

