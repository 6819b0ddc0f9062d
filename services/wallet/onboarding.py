"""Setting up a region and its merchants: what the directory records, and what the payments
module needs from the first day (a region's default fee plans, a merchant's first store). It sits
above both, so that neither reaches up to the other."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.directory import service as directory
from services.wallet.directory.models import Merchant, Region
from services.wallet.payments import service as payments
from shared import audit
from shared.audit import Actor
from shared.clock import Clock
from shared.config import Settings


async def create_region(
    session: AsyncSession, clock: Clock, settings: Settings, *, code: str, name: str, name_ja: str,
    **chosen: int | None,
) -> Region:
    """A region (directory.create_region) with its default fee plans."""
    region = await directory.create_region(session, clock, settings, code=code, name=name, name_ja=name_ja, **chosen)
    await payments.create_default_fee_plans(session, region, actor="region.create")
    return region


async def onboard_region(
    session: AsyncSession, clock: Clock, actor: Actor, settings: Settings, *, code: str, name: str,
    name_ja: str, **chosen: int | None,
) -> Region:
    """A new regional currency on the platform (platform operator; audited in the new region's
    own trail, where its auditors will look)."""
    region = await create_region(session, clock, settings, code=code, name=name, name_ja=name_ja, **chosen)
    await audit.record(
        session, clock, actor, region_id=region.id, action="region.create", target_type="region",
        target_id=region.code,
        after={"name": region.name, "name_ja": region.name_ja, **directory.region_settings(region)},
    )
    return region


async def onboard_merchant(
    session: AsyncSession, clock: Clock, actor: Actor, region: Region, details: dict[str, Any]
) -> Merchant:
    """A merchant (directory.onboard_merchant) with its first store: every merchant starts with
    one register; more are added per place of sale."""
    merchant = await directory.onboard_merchant(session, clock, actor, region, details)
    await payments.create_store(session, clock, merchant, name=merchant.name, name_ja=merchant.name_ja, terminal_label=None)
    return merchant
