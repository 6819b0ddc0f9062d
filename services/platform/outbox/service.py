"""The outbox's rules: writing an event in the caller's transaction, the destinations that sign
(or withdraw) their events, the back-off between attempts, and what the operator sees and
re-sends. The delivery itself is tasks.py's.

**Destinations.** An event names its destination by kind and key ("partner", a partner
service's id). Each kind registers a signer (app/wiring.py): asked just before each delivery, it
answers the secret to sign with (so a rotated secret applies to events still waiting) or None
when the destination no longer wants the event (a resident revoked their opt-in before it was
sent), which is then withdrawn, never sent.

**Order.** Events of one stream are delivered one at a time in the order they were written; a
failed event (every attempt spent) holds the rest of its stream back until the operator
re-sends it, so a receiver never sees a checkout refunded before it saw it paid.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.platform.outbox import repository as repo
from services.platform.outbox.errors import OutboxEventNotFound, OutboxEventPending, OutboxEventWithdrawn
from services.platform.outbox.models import EventStatus, OutboxEvent
from shared import audit
from shared.audit import Actor
from shared.clock import Clock
from shared.config import Settings
from shared.ids import new_id


@dataclass(frozen=True)
class Destination:
    kind: str  # who signs it: "partner", "data_platform"
    key: str  # which one of the kind
    url: str


@dataclass(frozen=True)
class Message:
    """An event as its destination's signer is shown it before a delivery."""

    id: uuid.UUID
    region_id: uuid.UUID
    event_type: str
    stream: str
    destination: Destination
    payload: dict[str, Any]
    created_at: datetime

    @classmethod
    def of(cls, event: OutboxEvent) -> Message:
        return cls(event.id, event.region_id, event.event_type, event.stream,
                   Destination(event.destination_kind, event.destination_key, event.url), event.payload,
                   event.created_at)


# The secret to sign a message with, or None: withdrawn, never sent.
Signer = Callable[[AsyncSession, Message], Awaitable[str | None]]
_signers: dict[str, Signer] = {}


def register_destination(kind: str, signer: Signer) -> None:
    """For the composition root: `signer` signs (or withdraws) every event of this kind."""
    _signers[kind] = signer


def signer_of(kind: str) -> Signer | None:
    return _signers.get(kind)


async def enqueue(
    session: AsyncSession, clock: Clock, *, region_id: uuid.UUID, event_type: str, stream: str,
    destination: Destination, payload: dict[str, Any],
) -> uuid.UUID:
    """Write an event in the caller's transaction (never committed here): it is delivered if and
    only if the caller's change commits. Its id is the receiver's deduplication key."""
    event_id = new_id()
    now = clock.now()
    await repo.insert_event(
        session, id=event_id, region_id=region_id, event_type=event_type, stream=stream,
        destination_kind=destination.kind, destination_key=destination.key, url=destination.url, payload=payload,
        status=EventStatus.PENDING.value, attempts=0, next_attempt_at=now, last_error=None, last_status=None,
        created_at=now, delivered_at=None,
    )
    return event_id


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff_seconds: float
    backoff_cap_seconds: float
    timeout_seconds: float

    @classmethod
    def of(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.webhook_max_attempts, settings.webhook_backoff_seconds,
                   settings.webhook_backoff_cap_seconds, settings.webhook_timeout_seconds)

    def delay(self, attempts: int) -> timedelta:
        """How long to wait after the `attempts`-th failed attempt: doubling, up to the cap."""
        return timedelta(seconds=min(self.backoff_seconds * 2 ** (attempts - 1), self.backoff_cap_seconds))


async def events(
    session: AsyncSession, *, region_id: uuid.UUID, status: EventStatus | None, stream: str | None,
    after_id: uuid.UUID | None, limit: int,
) -> list[OutboxEvent]:
    return await repo.events(
        session, region_id, status=status.value if status else None, stream=stream, after_id=after_id, limit=limit
    )


async def event(session: AsyncSession, *, region_id: uuid.UUID, event_id: uuid.UUID, lock: bool = False) -> OutboxEvent:
    found = await repo.event(session, event_id, lock=lock)
    if found is None or found.region_id != region_id:
        raise OutboxEventNotFound(f"No outbox event {event_id}.")
    return found


async def stream_events(session: AsyncSession, stream: str) -> list[OutboxEvent]:
    return await repo.stream_events(session, stream)


async def resend(session: AsyncSession, clock: Clock, actor: Actor, *, region_id: uuid.UUID, event_id: uuid.UUID) -> OutboxEvent:
    """Send a failed or delivered event again, with a fresh set of attempts, under the same event
    id (a receiver that has it already ignores it). Refuses one still pending (it is on its way)
    or withdrawn (its destination does not want it)."""
    found = await event(session, region_id=region_id, event_id=event_id, lock=True)
    if found.status == EventStatus.PENDING:
        raise OutboxEventPending(f"Event {event_id} is pending (attempt {found.attempts + 1} is due at "
                                 f"{found.next_attempt_at.isoformat()}).")
    if found.status == EventStatus.WITHDRAWN:
        raise OutboxEventWithdrawn(f"Event {event_id} was withdrawn by its destination.")
    before = {"status": found.status, "attempts": found.attempts, "last_error": found.last_error}
    await repo.record_attempt(
        session, event_id, status=EventStatus.PENDING.value, attempts=0, next_attempt_at=clock.now(), delivered_at=None,
    )
    await audit.record(
        session, clock, actor, region_id=region_id, action="outbox.resend", target_type="outbox_event",
        target_id=event_id, before=before, after={"status": EventStatus.PENDING.value},
    )
    return await event(session, region_id=region_id, event_id=event_id)
