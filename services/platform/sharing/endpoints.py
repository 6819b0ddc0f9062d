"""A resident's own choice whether their payment results go to the city's data platform
(/v1/me/data-sharing): see it, change it. Revoking is in force once the answer is sent."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from services.platform.sharing import service
from services.platform.sharing.schemas import SharingIn, SharingOut
from shared.audit import Actor
from shared.auth import Principal, Role, require
from shared.db import SessionDep
from shared.deps import ClockDep
from shared.idempotency import IdempotencyDep
from shared.openapi import PROBLEMS

router = APIRouter(prefix="/v1", tags=["data sharing"])

Resident = Annotated[Principal, require(Role.RESIDENT)]


def sharing_out(found: service.Choice) -> SharingOut:
    return SharingOut(opted_in=found.opted_in, source=found.source, area=found.area, updated_at=found.updated_at)


@router.get("/me/data-sharing", response_model=SharingOut, responses=PROBLEMS)
async def my_data_sharing(principal: Resident, session: SessionDep) -> SharingOut:
    """Whether my payment results are shared with the city's data platform, and by whose choice (resident)."""
    return sharing_out(await service.choice(session, region=principal.region_code, subject=principal.subject))


@router.put("/me/data-sharing", response_model=SharingOut, responses=PROBLEMS)
async def set_my_data_sharing(
    body: SharingIn, principal: Resident, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """Share my payment results, or stop (resident). My choice here wins over the one made at
    the city's ID until I change it there; stopping withdraws results not yet delivered."""
    if replay := await idem.replay():
        return replay
    saved = await service.choose(
        session, clock, Actor.of(principal), region=principal.region_code, subject=principal.subject,
        opted_in=body.opted_in,
    )
    return await idem.respond(200, sharing_out(saved))
