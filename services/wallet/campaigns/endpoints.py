"""Campaigns and merchant classes (/v1)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter

from services.wallet import access
from services.wallet.campaigns import service
from services.wallet.campaigns.schemas import (
    CampaignCreate,
    CampaignOut,
    FundingCreate,
    FundingOut,
    MerchantClassCreate,
    MerchantClassOut,
    RewardRate,
)
from services.wallet.directory import service as directory
from shared.audit import Actor
from shared.auth import Principal, Role, require
from shared.db import SessionDep
from shared.deps import ClockDep
from shared.idempotency import IdempotencyDep
from shared.openapi import PROBLEMS
from shared.pagination import CursorParam, LimitParam, Page, decode_cursor, page_of

router = APIRouter(prefix="/v1", tags=["campaigns"])

Operator = Annotated[Principal, require(Role.OPERATOR)]
Overseer = Annotated[Principal, require(Role.OPERATOR, Role.AUDITOR)]
Anyone = Annotated[Principal, require(*Role)]


def campaign_out(found: service.CampaignView) -> CampaignOut:
    c = found.campaign
    return CampaignOut(
        id=c.id, kind=c.kind, name=c.name, name_ja=c.name_ja, status=c.status, restriction=c.restriction,
        usable_from=c.usable_from, usable_until=c.usable_until, expiry_months=c.expiry_months,
        reward_rates=None if found.reward_rates is None else [
            RewardRate(merchant_class=code, rate_bp=bp) for code, bp in sorted(found.reward_rates.items())
        ],
        reward_from=c.reward_from, reward_until=c.reward_until,
        reward_monthly_cap=c.reward_monthly_cap, reward_points_payments=c.reward_points_payments,
        budget_account_id=found.budget_account.id, budget=found.budget, created_at=c.created_at,
    )


@router.get("/merchant-classes", response_model=list[MerchantClassOut], responses=PROBLEMS)
async def merchant_classes(principal: Anyone, session: SessionDep) -> list[MerchantClassOut]:
    """The region's merchant classes (local shop in a shopping street, chain store …)."""
    classes = await directory.merchant_classes(session, await access.region(session, principal))
    return [MerchantClassOut.model_validate(c) for c in classes]


@router.post("/merchant-classes", status_code=201, response_model=MerchantClassOut, responses=PROBLEMS)
async def add_merchant_class(
    body: MerchantClassCreate, principal: Operator, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    if replay := await idem.replay():
        return replay
    added = await directory.add_merchant_class(
        session, clock, Actor.of(principal), await access.region(session, principal), code=body.code, name=body.name,
        name_ja=body.name_ja,
    )
    return await idem.respond(201, MerchantClassOut.model_validate(added))


@router.post("/campaigns", status_code=201, response_model=CampaignOut, responses=PROBLEMS)
async def create_campaign(
    body: CampaignCreate, principal: Operator, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """A campaign with an empty budget; fund it before it gives anything."""
    if replay := await idem.replay():
        return replay
    created = await service.create_campaign(
        session, clock, Actor.of(principal), await access.region(session, principal), body.model_dump()
    )
    return await idem.respond(201, campaign_out(created))


@router.get("/campaigns", response_model=Page[CampaignOut], responses=PROBLEMS)
async def list_campaigns(
    principal: Overseer, session: SessionDep, cursor: CursorParam = None, limit: LimitParam = 50
) -> Page[CampaignOut]:
    found = await service.list_campaigns(session, await access.region(session, principal), after_id=decode_cursor(cursor), limit=limit + 1)
    return page_of([campaign_out(c) for c in found], [c.campaign.id for c in found], limit)


@router.get("/campaigns/{campaign_id}", response_model=CampaignOut, responses=PROBLEMS)
async def get_campaign(campaign_id: uuid.UUID, principal: Overseer, session: SessionDep) -> CampaignOut:
    return campaign_out(await service.view(session, await access.campaign(session, principal, campaign_id)))


@router.post("/campaigns/{campaign_id}/close", response_model=CampaignOut, responses=PROBLEMS)
async def close_campaign(
    campaign_id: uuid.UUID, principal: Operator, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    if replay := await idem.replay():
        return replay
    closed = await service.close_campaign(
        session, clock, Actor.of(principal), await access.campaign(session, principal, campaign_id)
    )
    return await idem.respond(200, campaign_out(closed))


@router.post("/campaigns/{campaign_id}/funding", status_code=201, response_model=FundingOut, responses=PROBLEMS)
async def fund_campaign(
    campaign_id: uuid.UUID, body: FundingCreate, principal: Operator, session: SessionDep, clock: ClockDep,
    idem: IdempotencyDep,
):
    """Points from the region's campaign fund into the campaign's budget (the city's money)."""
    if replay := await idem.replay():
        return replay
    journal_id, found = await service.fund(
        session, clock, Actor.of(principal), await access.campaign(session, principal, campaign_id), body.amount
    )
    return await idem.respond(
        201, FundingOut(campaign_id=campaign_id, journal_id=journal_id, amount=body.amount, budget=found.budget)
    )
