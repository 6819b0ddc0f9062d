"""Partner services for the operator (/v1/platform/partners): register one, rotate its API key or
signing secret, revoke it."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter

from services.platform.partners import service
from services.platform.partners.models import PartnerService
from services.platform.partners.schemas import (
    CallbackUrlsIn,
    PartnerCreate,
    PartnerCreated,
    PartnerOut,
    PartnerServiceKeyOut,
    SigningSecretOut,
)
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


def partner_out(found: PartnerService) -> PartnerOut:
    return PartnerOut.model_validate(found)


@router.post("/v1/platform/partners", status_code=201, response_model=PartnerCreated, responses=PROBLEMS)
async def register_partner(
    body: PartnerCreate, principal: Operator, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """Register a partner service that takes payment by checkout, settling to `merchant_id`. Its
    API key and signing secret are shown this once (audited). Refused: a callback URL that is not
    https (422 callback-url-invalid), a merchant without a store (409 partner-merchant-has-no-store),
    a name the region has (409 partner-name-taken)."""
    if replay := await idem.replay():
        return replay
    made, key, secret = await service.register(
        session, clock, Actor.of(principal), region=principal.region_code, name=body.name,
        merchant_id=body.merchant_id, callback_urls=body.callback_urls,
    )
    return await idem.respond(201, PartnerCreated(**partner_out(made).model_dump(), api_key=key, signing_secret=secret))


@router.get("/v1/platform/partners", response_model=Page[PartnerOut], responses=PROBLEMS)
async def list_partners(
    principal: Overseer, session: SessionDep, cursor: CursorParam = None, limit: LimitParam = 50
) -> Page[PartnerOut]:
    found = await service.list_partners(session, region=principal.region_code, after_id=decode_cursor(cursor),
                                        limit=limit + 1)
    return page_of([partner_out(p) for p in found], [p.id for p in found], limit)


@router.get("/v1/platform/partners/{partner_id}", response_model=PartnerOut, responses=PROBLEMS)
async def get_partner(partner_id: uuid.UUID, principal: Overseer, session: SessionDep) -> PartnerOut:
    return partner_out(await service.partner(session, region=principal.region_code, partner_id=partner_id))


@router.post("/v1/platform/partners/{partner_id}/api-key", response_model=PartnerServiceKeyOut, responses=PROBLEMS)
async def rotate_partner_key(
    partner_id: uuid.UUID, principal: Operator, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """A new API key, shown this once; the earlier ones stop at once (audited)."""
    if replay := await idem.replay():
        return replay
    key = await service.rotate_key(session, clock, Actor.of(principal), region=principal.region_code, partner_id=partner_id)
    return await idem.respond(200, PartnerServiceKeyOut(partner_id=partner_id, api_key=key))


@router.post("/v1/platform/partners/{partner_id}/signing-secret", response_model=SigningSecretOut, responses=PROBLEMS)
async def rotate_partner_signing_secret(
    partner_id: uuid.UUID, principal: Operator, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """A new webhook signing secret, shown this once: every webhook from now on is signed with it,
    those still waiting included (audited)."""
    if replay := await idem.replay():
        return replay
    _, secret = await service.rotate_signing_secret(
        session, clock, Actor.of(principal), region=principal.region_code, partner_id=partner_id
    )
    return await idem.respond(200, SigningSecretOut(partner_id=partner_id, signing_secret=secret))


@router.put("/v1/platform/partners/{partner_id}/callback-urls", response_model=PartnerOut, responses=PROBLEMS)
async def set_partner_callback_urls(
    partner_id: uuid.UUID, body: CallbackUrlsIn, principal: Operator, session: SessionDep, clock: ClockDep,
    idem: IdempotencyDep,
):
    """Replace the partner's allowed URLs (audited): new checkouts are held to the new list, those
    made before keep their URLs."""
    if replay := await idem.replay():
        return replay
    updated = await service.set_callback_urls(
        session, clock, Actor.of(principal), region=principal.region_code, partner_id=partner_id,
        callback_urls=body.callback_urls,
    )
    return await idem.respond(200, partner_out(updated))


@router.post("/v1/platform/partners/{partner_id}/revoke", response_model=PartnerOut, responses=PROBLEMS)
async def revoke_partner(
    partner_id: uuid.UUID, principal: Operator, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """Its keys stop at once (401 invalid-token) and its open checkouts can no longer be paid
    (409 partner-revoked); webhooks of what happened are still delivered (audited)."""
    if replay := await idem.replay():
        return replay
    revoked = await service.revoke(session, clock, Actor.of(principal), region=principal.region_code, partner_id=partner_id)
    return await idem.respond(200, partner_out(revoked))
