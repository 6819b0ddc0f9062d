"""The audit trail: who moved value or changed settings, accounts or access, and how.

Written in the same transaction as the change it describes, so the two commit or fail together;
append-only in the database (a trigger refuses UPDATE and DELETE).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal
from shared.clock import Clock
from shared.ids import new_id
from shared.models import AuditEvent


@dataclass(frozen=True)
class Actor:
    """Who a change is recorded against when it is not simply a request's principal: a job acting
    for someone (a grant upload's worker for its uploader), or another service acting for one
    (coupons, settlement), so that none needs a made-up `Principal`. Its subject is what journals
    record as their actor."""

    subject: str  # as the trail shows it: e.g. "settlement:run:2026-10", "api_key:<id>" for a key
    role: str
    request_id: str | None = None
    source_address: str | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        """The caller of a request, as the audit trail names it."""
        subject = principal.subject if principal.api_key_id is None else f"api_key:{principal.api_key_id}"
        return cls(subject, principal.role.value, principal.request_id, principal.source_address)


async def record(
    session: AsyncSession,
    clock: Clock,
    by: Principal | Actor,
    *,
    region_id: uuid.UUID | None,
    action: str,
    target_type: str,
    target_id: Any,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    actor = by if isinstance(by, Actor) else Actor.of(by)
    await session.execute(
        insert(AuditEvent).values(
            id=new_id(),
            region_id=region_id,
            actor_subject=actor.subject,
            actor_role=actor.role,
            action=action,
            target_type=target_type,
            target_id=str(target_id) if target_id is not None else None,
            before=before,
            after=after,
            request_id=actor.request_id,
            source_address=actor.source_address,
            created_at=clock.now(),
        )
    )


async def list_events(
    session: AsyncSession, region_id: uuid.UUID, *, after_id: uuid.UUID | None, limit: int
) -> list[AuditEvent]:
    """Newest first; `after_id` is the cursor (ids are time-ordered)."""
    query = select(AuditEvent).where(AuditEvent.region_id == region_id)
    if after_id is not None:
        query = query.where(AuditEvent.id < after_id)
    result = await session.execute(query.order_by(AuditEvent.id.desc()).limit(limit))
    return list(result.scalars())
