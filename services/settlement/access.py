"""Who may see or do what in settlement: every rule about the caller (the request's `Principal`)
is here, asked by the endpoints before they call the service with an explicit `Actor`.

- Operators and auditors work with every merchant of their region.
- A merchant role works with its own merchant only: another one is not found (404, as the
  wallet answers), so an id of another shop tells nothing about it.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet import public
from shared.auth import MERCHANT_ROLES, Principal


async def merchant(session: AsyncSession, principal: Principal, merchant_id: uuid.UUID) -> public.MerchantProfile:
    if principal.role in MERCHANT_ROLES and principal.merchant_id != merchant_id:
        raise public.MerchantNotFound(f"No merchant {merchant_id} in region {principal.region_code}.")
    return await public.merchant(session, region=principal.region_code, merchant_id=merchant_id)
