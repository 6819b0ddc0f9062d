"""Segments (/v1/coupons): residents' own profiles and consents; the operator's segments, their
audience counts and announcements. Auditors may read segments and counts; no one is ever shown
who is in a segment."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter

from services.coupons.segments import service
from services.coupons.segments.schemas import (
    AnnouncementCreate,
    AnnouncementOut,
    AudienceOut,
    ProfileIn,
    ProfileOut,
    SegmentCreate,
    SegmentOut,
    SegmentUpdate,
)
from shared.audit import Actor
from shared.auth import Principal, Role, require
from shared.db import SessionDep
from shared.deps import ClockDep
from shared.idempotency import IdempotencyDep
from shared.openapi import PROBLEMS
from shared.pagination import CursorParam, LimitParam, Page, decode_cursor, page_of

router = APIRouter(prefix="/v1", tags=["segments"])

Resident = Annotated[Principal, require(Role.RESIDENT)]
Operator = Annotated[Principal, require(Role.OPERATOR)]
Overseer = Annotated[Principal, require(Role.OPERATOR, Role.AUDITOR)]


def profile_out(found: service.Profile) -> ProfileOut:
    return ProfileOut(
        segments_consent=found.segments_consent, personalised_consent=found.personalised_consent,
        age_band=found.age_band, area=found.area, interests=list(found.interests),
        transport_mode=found.transport_mode, updated_at=found.updated_at,
    )


def segment_out(found: service.SegmentView) -> SegmentOut:
    s = found.segment
    return SegmentOut(
        id=s.id, name=s.name, version=found.version, filters=found.filters, created_at=s.created_at,
        updated_at=s.updated_at, archived_at=s.archived_at,
    )


@router.get("/coupons/me/profile", response_model=ProfileOut, responses=PROBLEMS)
async def my_segment_profile(principal: Resident, session: SessionDep) -> ProfileOut:
    """What I agreed to share for offers (resident)."""
    return profile_out(await service.profile(session, region=principal.region_code, subject=principal.subject))


@router.put("/coupons/me/profile", response_model=ProfileOut, responses=PROBLEMS)
async def set_segment_profile(
    body: ProfileIn, principal: Resident, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """Replace my profile (resident). Withdrawing `segments_consent` deletes my attributes and
    withdrawing either consent takes me out of the segments that need it, at once; attributes
    without `segments_consent` are refused (consent-required)."""
    if replay := await idem.replay():
        return replay
    wanted = service.Profile(
        body.segments_consent, body.personalised_consent, body.age_band, body.area, tuple(body.interests),
        body.transport_mode,
    )
    saved = await service.set_profile(
        session, clock, region=principal.region_code, actor=Actor.of(principal), subject=principal.subject,
        wanted=wanted,
    )
    return await idem.respond(200, profile_out(saved))


@router.post("/segments", status_code=201, response_model=SegmentOut, responses=PROBLEMS)
async def create_segment(
    body: SegmentCreate, principal: Operator, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """A segment of the region's residents by attributes and activity (operator; audited)."""
    if replay := await idem.replay():
        return replay
    created = await service.create_segment(
        session, clock, region=principal.region_code, actor=Actor.of(principal), name=body.name, filters=body.filters
    )
    return await idem.respond(201, segment_out(created))


@router.get("/segments", response_model=Page[SegmentOut], responses=PROBLEMS)
async def list_segments(
    principal: Overseer, session: SessionDep, cursor: CursorParam = None, limit: LimitParam = 50
) -> Page[SegmentOut]:
    """The region's segments, newest first (operator, auditor)."""
    found = await service.list_segments(
        session, region=principal.region_code, after_id=decode_cursor(cursor), limit=limit + 1
    )
    return page_of([segment_out(s) for s in found], [s.segment.id for s in found], limit)


@router.get("/segments/{segment_id}", response_model=SegmentOut, responses=PROBLEMS)
async def get_segment(segment_id: uuid.UUID, principal: Overseer, session: SessionDep) -> SegmentOut:
    return segment_out(await service.segment(session, region=principal.region_code, segment_id=segment_id))


@router.patch("/segments/{segment_id}", response_model=SegmentOut, responses=PROBLEMS)
async def update_segment(
    segment_id: uuid.UUID, body: SegmentUpdate, principal: Operator, session: SessionDep, clock: ClockDep,
    idem: IdempotencyDep,
):
    """Rename, or give new filters: a new version, the earlier ones kept for the distributions
    that used them (operator; audited)."""
    if replay := await idem.replay():
        return replay
    updated = await service.update_segment(
        session, clock, region=principal.region_code, actor=Actor.of(principal), segment_id=segment_id,
        name=body.name, filters=body.filters,
    )
    return await idem.respond(200, segment_out(updated))


@router.delete("/segments/{segment_id}", response_model=SegmentOut, responses=PROBLEMS)
async def archive_segment(
    segment_id: uuid.UUID, principal: Operator, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """Archive the segment: gone for every use, its versions kept (operator; audited)."""
    if replay := await idem.replay():
        return replay
    archived = await service.archive_segment(
        session, clock, region=principal.region_code, actor=Actor.of(principal), segment_id=segment_id
    )
    return await idem.respond(200, segment_out(archived))


@router.get("/segments/{segment_id}/audience", response_model=AudienceOut, responses=PROBLEMS)
async def segment_audience(segment_id: uuid.UUID, principal: Overseer, session: SessionDep, clock: ClockDep) -> AudienceOut:
    """How many residents the segment matches now, before sending (operator, auditor): the count,
    never the residents."""
    found = await service.audience(session, clock, region=principal.region_code, segment_id=segment_id)
    return AudienceOut(segment_id=found.segment_id, version=found.version, residents=found.residents, at=found.at)


@router.post("/segments/{segment_id}/announcements", status_code=201, response_model=AnnouncementOut,
             responses=PROBLEMS)
async def announce_to_segment(
    segment_id: uuid.UUID, body: AnnouncementCreate, principal: Operator, session: SessionDep, clock: ClockDep,
    idem: IdempotencyDep,
):
    """A plain message to every resident in the segment now, as a notice in their app (operator;
    audited). An empty segment is refused (segment-empty) and nothing is sent."""
    if replay := await idem.replay():
        return replay
    made = await service.announce(
        session, clock, region=principal.region_code, actor=Actor.of(principal), segment_id=segment_id,
        title=body.title, body=body.body,
    )
    return await idem.respond(201, AnnouncementOut.model_validate(made))
