"""`ledger verify`: the ledger's invariants and every module's record against the ledger, for the
whole platform or one region. An empty list means the books are sound."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.history import service as history
from services.wallet.ledger import service as ledger
from services.wallet.payments import service as payments


async def verify_ledger(session: AsyncSession, region_id: uuid.UUID | None = None) -> list[ledger.Violation]:
    return (
        await ledger.find_violations(session, region_id)
        + await payments.find_violations(session, region_id)
        + await _history_violations(session, region_id)
    )


async def _history_violations(session: AsyncSession, region_id: uuid.UUID | None) -> list[ledger.Violation]:
    """An imported resident's opening carries exactly what their imported movements imply, which
    is what the file stated they held (services/wallet/history/service.py)."""
    return [
        ledger.Violation(
            "history", f"resident {m.resident_id}",
            f"{m.unit}: stated closing {m.stated}, imported movements give {m.implied}, opening carried {m.opened}",
        )
        for m in await history.find_mismatches(session, region_id)
    ]
