"""`ledger verify`: the ledger's invariants and every module's record against the ledger, for the
whole platform or one region. An empty list means the books are sound."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.ledger import service as ledger
from services.wallet.payments import service as payments


async def verify_ledger(session: AsyncSession, region_id: uuid.UUID | None = None) -> list[ledger.Violation]:
    return await ledger.find_violations(session, region_id) + await payments.find_violations(session, region_id)
