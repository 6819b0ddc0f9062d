"""Campaigns: the city's programmes that put points into residents' wallets (premium sets,
grants for activities, rewards on payments), and the merchant classes their points may be
restricted to.

Every campaign has its own budget account in points. The operator funds it from the region's
campaign fund (a `funding` journal: the only way points are issued); grants, premiums and rewards
draw on it, and it can never go negative, so a campaign cannot give away more than it was given.
A grant or reward campaign keeps its budget's balance on the row (a debit is one conditional
update, never a sum over its history), so its grants and rewards queue on that row for the rest
of their transaction; separate campaigns do not meet. A premium campaign's budget is never
locked by a sale: its sets are put on sale only as far as the budget covers their premium (the
stock is the budget's guard), so a sale appends its debit without a lock, and thousands of
buyers at opening time do not queue on one row; its balance is the sum of its entries.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.campaigns import repository as repo
from services.wallet.campaigns.errors import (
    CampaignClosed,
    CampaignKindMismatch,
    CampaignNameTaken,
    InvalidCampaign,
)
from services.wallet.campaigns.models import Campaign, CampaignKind
from services.wallet.directory import service as directory
from services.wallet.directory.models import Region
from services.wallet.ledger import service as ledger
from services.wallet.ledger.lots import LotRule, end_of_months_after
from services.wallet.ledger.models import Account, AccountKind, JournalKind, Status
from shared import audit
from shared.audit import Actor
from shared.clock import TOKYO, Clock
from shared.ids import new_id
from shared.money import Unit

# --- campaigns --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignView:
    campaign: Campaign
    budget_account: Account
    budget: int
    reward_rates: dict[str, int] | None = None  # reward campaigns: basis points per merchant class


async def create_campaign(
    session: AsyncSession, clock: Clock, actor: Actor, region: Region, details: dict[str, Any]
) -> CampaignView:
    if await repo.campaign_by_name(session, region.id, details["name"]) is not None:
        raise CampaignNameTaken(f"{details['name']!r} is already a campaign in {region.code}.")
    if details.get("restriction"):
        await directory.check_classes(session, region.id, details["restriction"])
    usable_from, usable_until = details.get("usable_from"), details.get("usable_until")
    if usable_until is not None:
        if details.get("expiry_months") is not None:
            raise InvalidCampaign("Give either a fixed window (usable_until) or expiry_months, not both.")
        local = usable_until.astimezone(TOKYO)
        if local.timetz().replace(tzinfo=None) != time():
            raise InvalidCampaign("usable_until must be midnight Asia/Tokyo: value expires at the start of a day.")
        if usable_from is not None and usable_until <= usable_from:
            raise InvalidCampaign("usable_until must be after usable_from.")
        if usable_until <= clock.now():
            raise InvalidCampaign("usable_until is already past.")
    rates = await _check_reward_terms(session, region.id, details)
    now = clock.now()
    campaign = await repo.insert_campaign(
        session, id=new_id(), region_id=region.id, kind=details["kind"].value, name=details["name"],
        name_ja=details["name_ja"], status=Status.ACTIVE.value, restriction=details.get("restriction"),
        usable_from=usable_from, usable_until=usable_until, expiry_months=details.get("expiry_months"),
        reward_from=details.get("reward_from"), reward_until=details.get("reward_until"),
        reward_monthly_cap=details.get("reward_monthly_cap"),
        reward_points_payments=bool(details.get("reward_points_payments")), created_by=actor.subject, created_at=now,
    )
    await repo.insert_reward_rates(
        session, [{"campaign_id": campaign.id, "region_id": region.id, "merchant_class": code, "rate_bp": bp}
                  for code, bp in (rates or {}).items()],
    )
    budget = await ledger.insert_account(
        session, id=new_id(), region_id=region.id, kind=AccountKind.CAMPAIGN_BUDGET.value, unit=Unit.POINT.value,
        campaign_id=campaign.id, status=Status.ACTIVE.value,
        tracks_balance=details["kind"] != CampaignKind.PREMIUM, may_go_negative=False,
        created_at=now,
    )
    await audit.record(
        session, clock, actor, region_id=region.id, action="campaign.create", target_type="campaign",
        target_id=campaign.id, after=_campaign_record(campaign) | {"reward_rates": rates},
    )
    return CampaignView(campaign, budget, 0, rates)


REWARD_TERMS = ("reward_rates", "reward_from", "reward_until", "reward_monthly_cap", "reward_points_payments")


async def _check_reward_terms(session: AsyncSession, region_id: uuid.UUID, details: dict[str, Any]) -> dict[str, int] | None:
    """A reward campaign needs its rates per merchant class; other campaigns take no reward terms."""
    if details["kind"] != CampaignKind.REWARD:
        given = [term for term in REWARD_TERMS if details.get(term) is not None]
        if given:
            raise InvalidCampaign(f"Only reward campaigns take {', '.join(given)}.")
        return None
    given = details.get("reward_rates")
    if not given:
        raise InvalidCampaign("A reward campaign needs reward_rates: basis points per merchant class.")
    rates = {rate["merchant_class"]: rate["rate_bp"] for rate in given}
    if len(rates) != len(given):
        raise InvalidCampaign("reward_rates names a merchant class twice.")
    await directory.check_classes(session, region_id, list(rates))
    start, end = details.get("reward_from"), details.get("reward_until")
    if start is not None and end is not None and end <= start:
        raise InvalidCampaign("reward_until must be after reward_from.")
    return rates


async def view(session: AsyncSession, campaign: Campaign) -> CampaignView:
    account = await repo.budget_account(session, campaign.id)
    rates = await repo.reward_rates(session, campaign.id) if campaign.kind == CampaignKind.REWARD else None
    budget = account.balance if account.tracks_balance else await ledger.entries_sum(session, account.id)
    return CampaignView(campaign, account, budget, rates)


async def list_campaigns(
    session: AsyncSession, region: Region, *, after_id: uuid.UUID | None, limit: int
) -> list[CampaignView]:
    return [await view(session, c) for c in await repo.campaigns(session, region.id, after_id=after_id, limit=limit)]


async def close_campaign(session: AsyncSession, clock: Clock, actor: Actor, campaign: Campaign) -> CampaignView:
    """No more grants, sales or rewards; lots already given keep their rules."""
    updated = await repo.set_campaign_status(session, campaign.id, Status.CLOSED.value)
    await audit.record(
        session, clock, actor, region_id=campaign.region_id, action="campaign.close", target_type="campaign",
        target_id=campaign.id, before={"status": campaign.status}, after={"status": updated.status},
    )
    return await view(session, updated)


async def fund(
    session: AsyncSession, clock: Clock, actor: Actor, campaign: Campaign, amount: int
) -> tuple[uuid.UUID, CampaignView]:
    """The city puts `amount` points into the campaign's budget from its campaign fund."""
    active(campaign)
    budget = await repo.budget_account(session, campaign.id)
    fund_account = await ledger.system_account(session, campaign.region_id, AccountKind.CAMPAIGN_FUND, Unit.POINT.value)
    posted = await ledger.post_journal(
        session, clock, region_id=campaign.region_id, kind=JournalKind.FUNDING, actor=actor.subject,
        legs=[ledger.Leg(fund_account, -amount), ledger.Leg(budget, amount)], reference=str(campaign.id),
    )
    result = await view(session, campaign)
    await audit.record(
        session, clock, actor, region_id=campaign.region_id, action="campaign.fund", target_type="campaign",
        target_id=campaign.id, after={"amount": amount, "journal_id": str(posted.journal_id), "budget": result.budget},
    )
    return posted.journal_id, result


def active(campaign: Campaign, kind: CampaignKind | None = None) -> Campaign:
    check_active(campaign.name, campaign.status, campaign.kind, kind)
    return campaign


def check_active(name: str, status: str, kind: str, wanted: CampaignKind | None = None) -> None:
    """Refuse a campaign that is closed, or not of the `wanted` kind (for callers that read its
    fields without loading it, as wallet.buy_premium's answer)."""
    if status != Status.ACTIVE:
        raise CampaignClosed(f"Campaign {name!r} is closed.")
    if wanted is not None and kind != wanted:
        raise CampaignKindMismatch(f"Campaign {name!r} is a {kind} campaign, not {wanted}.")


def lot_rule(campaign: Campaign, now: datetime) -> LotRule:
    """The rules of a lot the campaign creates now."""
    expires_at = campaign.usable_until
    if expires_at is None and campaign.expiry_months is not None:
        expires_at = end_of_months_after(now, campaign.expiry_months)
    return LotRule(restriction=campaign.restriction, usable_from=campaign.usable_from, expires_at=expires_at)


def _campaign_record(campaign: Campaign) -> dict[str, Any]:
    return {
        "kind": campaign.kind, "name": campaign.name, "name_ja": campaign.name_ja, "status": campaign.status,
        "restriction": campaign.restriction,
        "usable_from": campaign.usable_from.isoformat() if campaign.usable_from else None,
        "usable_until": campaign.usable_until.isoformat() if campaign.usable_until else None,
        "expiry_months": campaign.expiry_months,
        "reward_from": campaign.reward_from.isoformat() if campaign.reward_from else None,
        "reward_until": campaign.reward_until.isoformat() if campaign.reward_until else None,
        "reward_monthly_cap": campaign.reward_monthly_cap,
        "reward_points_payments": campaign.reward_points_payments,
    }


# Queries the modules above use as they are: they call this service, never the repository.
budget_account = repo.budget_account
campaign = repo.campaign
campaign_names = repo.campaign_names
