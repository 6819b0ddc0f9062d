"""The outbox for the operator (/v1/platform/outbox): every event with its delivery state and
last error, and re-sending one."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.platform.outbox import service
from services.platform.outbox.models import EventStatus
from services.platform.outbox.schemas import OutboxEventOut
from services.wallet import public as wallet
from shared.audit import Actor
from shared.auth import Principal, Role, require
from shared.db import SessionDep
from shared.deps import ClockDep
from shared.idempotency import IdempotencyDep
from shared.openapi import PROBLEMS
from shared.pagination import CursorParam, LimitParam, Page, decode_cursor, page_of

router = APIRouter(tags=["platform"])

Operator = Annotated[Principal, require(Role.OPERATOR)]
Overseer = Annotated[Principal, require(Role.OPERATOR, Role.AUDITOR)]


@router.get("/v1/platform/outbox", response_model=Page[OutboxEventOut], responses=PROBLEMS)
async def list_outbox_events(
    principal: Overseer, session: SessionDep,
    status: Annotated[EventStatus | None, Query(description="only events in this state")] = None,
    stream: Annotated[str | None, Query(pattern=r"^[!-~]{1,200}$",
                                        description='only this stream\'s, e.g. "checkout:<id>"')] = None,
    cursor: CursorParam = None, limit: LimitParam = 50,
) -> Page[OutboxEventOut]:
    """The region's outgoing events, newest first, with their delivery state."""
    found = await service.events(
        session, region_id=await wallet.region_id(session, region=principal.region_code), status=status, stream=stream,
        after_id=decode_cursor(cursor), limit=limit + 1,
    )
    return page_of([OutboxEventOut.model_validate(e) for e in found], [e.id for e in found], limit)


@router.get("/v1/platform/outbox/{event_id}", response_model=OutboxEventOut, responses=PROBLEMS)
async def get_outbox_event(event_id: uuid.UUID, principal: Overseer, session: SessionDep) -> OutboxEventOut:
    region_id = await wallet.region_id(session, region=principal.region_code)
    return OutboxEventOut.model_validate(await service.event(session, region_id=region_id, event_id=event_id))


@router.post("/v1/platform/outbox/{event_id}/resend", response_model=OutboxEventOut, responses=PROBLEMS)
async def resend_outbox_event(
    event_id: uuid.UUID, principal: Operator, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """Send a failed or delivered event again, under the same event id, with a fresh set of
    attempts (audited). Refused for one still pending (409 outbox-event-pending) or withdrawn
    (409 outbox-event-withdrawn)."""
    if replay := await idem.replay():
        return replay
    region_id = await wallet.region_id(session, region=principal.region_code)
    resent = await service.resend(session, clock, Actor.of(principal), region_id=region_id, event_id=event_id)
    return await idem.respond(200, OutboxEventOut.model_validate(resent))
