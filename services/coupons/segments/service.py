"""The rules of segments: residents' profiles under their consents, the operator's segments and
their versions, who is in an audience now, and notices to an audience.

Functions take the caller's session and flush (the request dependency or a job commits once), the
region by its code and an explicit actor, as the wallet's public surface does; who may call them
is the endpoint's check. The region's residents and their payments are the wallet's, read through
services/wallet/public.py only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from services.coupons.segments import repository as repo
from services.coupons.segments.errors import ConsentRequired, SegmentEmpty, SegmentNameTaken, SegmentNotFound
from services.coupons.segments.filters import FILTERS, ActivityFilter, AttributeFilter, Filter, stored
from services.coupons.segments.models import AgeBand, Announcement, Interest, ResidentProfile, Segment, TransportMode
from services.wallet import public as wallet
from shared import audit
from shared.audit import Actor
from shared.clock import Clock
from shared.ids import new_id

# The audience everyone is in, no consent needed: a distribution to all residents.
ALL: Literal["all"] = "all"
Audience = uuid.UUID | Literal["all"]
ANNOUNCEMENT = "announcement"  # the kind of the wallet notice an announcement makes

# --- profiles ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """A resident's consents and the attributes they shared; all empty without a stored profile."""

    segments_consent: bool = False
    personalised_consent: bool = False
    age_band: AgeBand | None = None
    area: str | None = None
    interests: tuple[Interest, ...] = ()
    transport_mode: TransportMode | None = None
    updated_at: datetime | None = None

    @classmethod
    def of(cls, row: ResidentProfile | None) -> Profile:
        if row is None:
            return cls()
        return cls(
            row.segments_consent, row.personalised_consent, AgeBand(row.age_band) if row.age_band else None, row.area,
            tuple(Interest(i) for i in row.interests), TransportMode(row.transport_mode) if row.transport_mode else None,
            row.updated_at,
        )

    @property
    def consents(self) -> dict[str, bool]:
        return {"segments": self.segments_consent, "personalised": self.personalised_consent}

    @property
    def has_attributes(self) -> bool:
        return any((self.age_band, self.area, self.interests, self.transport_mode))


async def profile(session: AsyncSession, *, region: str, subject: str) -> Profile:
    region_id = await wallet.region_id(session, region=region)
    return Profile.of(await repo.profile(session, region_id, subject))


async def set_profile(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, subject: str, wanted: Profile
) -> Profile:
    """The resident's whole profile, replaced. Attributes need the `segments` consent, and
    withdrawing it deletes them in the same statement; withdrawing both consents deletes the
    profile. Either withdrawal is in force once this commits: audiences are worked out from the
    stored profile each time, never from a copy. Consent changes are audited (what was agreed
    to and when), the attributes never: the audit trail is append-only and would keep them."""
    if wanted.has_attributes and not wanted.segments_consent:
        raise ConsentRequired(
            "Attributes are kept only with the `segments` consent: give it, or send no attributes."
        )
    region_id = await wallet.region_id(session, region=region)
    before = Profile.of(await repo.profile(session, region_id, subject, lock=True))
    if not (wanted.segments_consent or wanted.personalised_consent):
        await repo.delete_profile(session, region_id, subject)
        saved = Profile()
    else:
        saved = Profile.of(await repo.save_profile(session, {
            "region_id": region_id, "subject": subject, "segments_consent": wanted.segments_consent,
            "personalised_consent": wanted.personalised_consent,
            "age_band": wanted.age_band.value if wanted.age_band else None, "area": wanted.area,
            "interests": sorted({i.value for i in wanted.interests}),
            "transport_mode": wanted.transport_mode.value if wanted.transport_mode else None,
            "updated_at": clock.now(),
        }))
    if before.consents != saved.consents:
        await audit.record(
            session, clock, actor, region_id=region_id, action="segments.consent.update", target_type="resident",
            target_id=subject, before=before.consents, after=saved.consents,
        )
    return saved


# --- segments ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentView:
    segment: Segment
    version: int  # of the filters below
    filters: list[Filter]


async def _version(session: AsyncSession, segment: Segment, number: int | None) -> SegmentView:
    found = await repo.version(session, segment.id, segment.version if number is None else number)
    if found is None:
        raise SegmentNotFound(f"Segment {segment.id} has no version {number}.")
    return SegmentView(segment, found.version, FILTERS.validate_python(found.filters))


async def segment(
    session: AsyncSession, *, region: str, segment_id: uuid.UUID, version: int | None = None
) -> SegmentView:
    """A live segment of the region, at `version` (default: the one in force)."""
    region_id = await wallet.region_id(session, region=region)
    found = await repo.segment(session, region_id, segment_id)
    if found is None:
        raise SegmentNotFound(f"No segment {segment_id} in region {region}.")
    return await _version(session, found, version)


async def list_segments(
    session: AsyncSession, *, region: str, after_id: uuid.UUID | None, limit: int
) -> list[SegmentView]:
    region_id = await wallet.region_id(session, region=region)
    return [
        SegmentView(s, v.version, FILTERS.validate_python(v.filters))
        for s, v in await repo.segments(session, region_id, after_id=after_id, limit=limit)
    ]


def _record(view: SegmentView) -> dict[str, Any]:
    return {"name": view.segment.name, "version": view.version, "filters": stored(view.filters)}


async def create_segment(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, name: str, filters: list[Filter]
) -> SegmentView:
    region_id = await wallet.region_id(session, region=region)
    now = clock.now()
    created = await repo.insert_segment(
        session, id=new_id(), region_id=region_id, name=name, version=1, created_by=actor.subject, created_at=now,
        updated_at=now, archived_at=None,
    )
    if created is None:
        raise SegmentNameTaken(f"The region already has a segment named {name!r}.")
    await repo.insert_version(
        session, segment_id=created.id, version=1, filters=stored(filters), created_by=actor.subject, created_at=now
    )
    view = SegmentView(created, 1, filters)
    await audit.record(
        session, clock, actor, region_id=region_id, action="segment.create", target_type="segment",
        target_id=created.id, after=_record(view),
    )
    return view


async def update_segment(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, segment_id: uuid.UUID,
    name: str | None = None, filters: list[Filter] | None = None,
) -> SegmentView:
    """A rename, or new filters as a new version (the earlier ones stay as they were, for the
    distributions that used them); both audited. Nothing new is written when nothing changes."""
    region_id = await wallet.region_id(session, region=region)
    locked = await repo.segment(session, region_id, segment_id, lock=True)
    if locked is None:
        raise SegmentNotFound(f"No segment {segment_id} in region {region}.")
    before = await _version(session, locked, None)
    new_filters = filters is not None and stored(filters) != stored(before.filters)
    renamed = name is not None and name != locked.name
    if not (new_filters or renamed):
        return before
    recorded = _record(before)  # before the update refreshes the segment it holds
    now = clock.now()
    number = before.version + 1 if new_filters else before.version
    updated = await repo.update_segment(session, segment_id, name=name or locked.name, version=number, updated_at=now)
    if updated is None:
        raise SegmentNameTaken(f"The region already has a segment named {name!r}.")
    if new_filters:
        assert filters is not None
        await repo.insert_version(
            session, segment_id=segment_id, version=number, filters=stored(filters), created_by=actor.subject,
            created_at=now,
        )
    after = SegmentView(updated, number, filters if new_filters and filters is not None else before.filters)
    await audit.record(
        session, clock, actor, region_id=region_id, action="segment.update", target_type="segment",
        target_id=segment_id, before=recorded, after=_record(after),
    )
    return after


async def archive_segment(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, segment_id: uuid.UUID
) -> SegmentView:
    """Gone for every use from now on (its name free again); its versions are kept."""
    region_id = await wallet.region_id(session, region=region)
    locked = await repo.segment(session, region_id, segment_id, lock=True)
    if locked is None:
        raise SegmentNotFound(f"No segment {segment_id} in region {region}.")
    view = await _version(session, locked, None)
    recorded = _record(view)
    archived = await repo.update_segment(session, segment_id, archived_at=clock.now())
    assert archived is not None, "archiving frees a name, it cannot take one"
    await audit.record(
        session, clock, actor, region_id=region_id, action="segment.archive", target_type="segment",
        target_id=segment_id, before=recorded,
    )
    return SegmentView(archived, view.version, view.filters)


# --- audiences --------------------------------------------------------------------------------


async def matching(
    session: AsyncSession, *, region: str, filters: list[Filter], at: datetime, among: list[str] | None = None
) -> list[str]:
    """Subjects of the residents with an active wallet who match every filter at `at`: attribute
    filters only among those who consented to `segments`, activity filters only among those who
    consented to `personalised` offers (the wallet is asked only about them). With `among`, only
    those of them are looked at."""
    region_id = await wallet.region_id(session, region=region)
    attributes = [f.match() for f in filters if isinstance(f, AttributeFilter)]
    activities = [f for f in filters if isinstance(f, ActivityFilter)]
    candidates = await repo.consenting(
        session, region_id, segments=bool(attributes), personalised=bool(activities), attributes=attributes,
        among=among,
    )
    for activity in activities:
        if not candidates:
            break
        candidates = await activity.matching(session, region, at, candidates)
    return await wallet.residents(session, region=region, among=candidates) if candidates else []


async def members(
    session: AsyncSession, *, region: str, segment_id: uuid.UUID, at: datetime, version: int | None = None
) -> list[str]:
    view = await segment(session, region=region, segment_id=segment_id, version=version)
    return await matching(session, region=region, filters=view.filters, at=at)


async def is_member(
    session: AsyncSession, *, region: str, segment_id: uuid.UUID, subject: str, at: datetime
) -> bool:
    """Whether one resident is in the segment's version in force at `at`, worked out live from
    their stored profile and activity as `members` does, but for them alone (a claim's check).
    No one is in a segment that was archived: what was offered to it is offered to no one."""
    try:
        view = await segment(session, region=region, segment_id=segment_id)
    except SegmentNotFound:
        return False
    return bool(await matching(session, region=region, filters=view.filters, at=at, among=[subject]))


async def everyone(session: AsyncSession, *, region: str) -> list[str]:
    return await wallet.residents(session, region=region)


@dataclass(frozen=True)
class AudienceCount:
    segment_id: uuid.UUID
    version: int
    residents: int
    at: datetime


async def audience(session: AsyncSession, clock: Clock, *, region: str, segment_id: uuid.UUID) -> AudienceCount:
    """How many residents the segment's version in force matches now: the count only."""
    view = await segment(session, region=region, segment_id=segment_id)
    at = clock.now()
    found = await matching(session, region=region, filters=view.filters, at=at)
    return AudienceCount(segment_id, view.version, len(found), at)


# --- notices ----------------------------------------------------------------------------------


async def notify(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, audience: Audience, kind: str,
    payload: dict[str, Any], version: int | None = None,
) -> int:
    """One wallet notice of `kind` per resident in the audience now; how many. An empty audience
    is refused (segment-empty) before anything is written."""
    if audience == ALL:
        subjects = await everyone(session, region=region)
    else:
        subjects = await members(session, region=region, segment_id=audience, at=clock.now(), version=version)
    if not subjects:
        raise SegmentEmpty("No resident is in this audience now; nothing was sent.")
    return await wallet.post_notices(
        session, clock, region=region, actor=actor, subjects=subjects, kind=kind, payload=payload
    )


async def announce(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, segment_id: uuid.UUID, title: str, body: str
) -> Announcement:
    """A plain message to the segment's residents now, at its version in force, recorded with
    how many it reached."""
    view = await segment(session, region=region, segment_id=segment_id)
    announcement_id = new_id()
    recipients = await notify(
        session, clock, region=region, actor=actor, audience=segment_id, version=view.version, kind=ANNOUNCEMENT,
        payload={"announcement_id": str(announcement_id), "title": title, "body": body},
    )
    made = await repo.insert_announcement(
        session, id=announcement_id, region_id=view.segment.region_id, segment_id=segment_id,
        segment_version=view.version, title=title, body=body, recipients=recipients, created_by=actor.subject,
        created_at=clock.now(),
    )
    await audit.record(
        session, clock, actor, region_id=view.segment.region_id, action="segment.announce", target_type="segment",
        target_id=segment_id, after={"announcement_id": str(announcement_id), "version": view.version,
                                     "recipients": recipients},
    )
    return made
