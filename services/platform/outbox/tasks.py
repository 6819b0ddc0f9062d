"""Delivering the outbox: each pass takes the first due event of every stream and POSTs it,
signed, to its destination; a 2xx marks it delivered, anything else (an error status, a
refused connection, a timeout) schedules the next attempt with back-off, and the last failed
attempt marks it failed.

An event is held by a row lock for the length of its delivery, in the transaction that records
the outcome, so that several workers (every server process runs one, and `chiikipay webhooks
deliver` besides) never send it at once, and one killed mid-delivery leaves it pending: its
transaction rolls back with the connection and another worker sends it again. The receiver may
thus get an event twice (sent, then the worker died before recording it), never zero times; it
recognises the second by the event id (the X-Chiikipay-Event-Id header) and ignores it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass, replace

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.platform.outbox import repository as repo
from services.platform.outbox.models import EventStatus, OutboxEvent
from services.platform.outbox.service import Message, RetryPolicy, signer_of
from shared.clock import Clock
from shared.webhooks import signed_headers

log = logging.getLogger(__name__)

EVENT_ID_HEADER = "X-Chiikipay-Event-Id"
EVENT_TYPE_HEADER = "X-Chiikipay-Event-Type"
ATTEMPT_HEADER = "X-Chiikipay-Delivery-Attempt"
# Streams delivered at once in one pass: each holds a connection for its delivery.
CONCURRENT_DELIVERIES = 4
ERROR_CHARS = 500  # of a failure's description kept for the operator


@dataclass(frozen=True)
class Attempt:
    event_id: uuid.UUID
    status: EventStatus  # after this attempt: delivered, pending (to try again), failed, withdrawn
    http_status: int | None
    error: str | None


def body_of(event: OutboxEvent) -> bytes:
    """What the destination receives (and the signature covers)."""
    envelope = {"id": str(event.id), "type": event.event_type, "created_at": event.created_at.isoformat(),
                "data": event.payload}
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


async def deliver_due(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, http: httpx.AsyncClient, policy: RetryPolicy, *,
    limit: int = 100,
) -> list[Attempt]:
    """One pass: up to `limit` streams' due heads, a few at a time. Returns what was attempted."""
    async with sessionmaker() as session:
        heads = await repo.due_heads(session, clock.now(), limit)
    gate = asyncio.Semaphore(CONCURRENT_DELIVERIES)

    async def one(event_id: uuid.UUID) -> Attempt | None:
        async with gate:
            return await deliver(sessionmaker, clock, http, policy, event_id)

    return [a for a in await asyncio.gather(*(one(event_id) for event_id in heads)) if a is not None]


async def deliver_all_due(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, http: httpx.AsyncClient, policy: RetryPolicy,
) -> list[Attempt]:
    """Passes until nothing is due: a stream's next event is due as soon as the one before is
    delivered (`chiikipay webhooks deliver`, tests)."""
    attempts: list[Attempt] = []
    while made := await deliver_due(sessionmaker, clock, http, policy):
        attempts += made
        if not any(a.status in (EventStatus.DELIVERED, EventStatus.WITHDRAWN) for a in made):
            break  # nothing moved on: what is left waits for its back-off
    return attempts


async def deliver(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, http: httpx.AsyncClient, policy: RetryPolicy,
    event_id: uuid.UUID,
) -> Attempt | None:
    """One attempt at one event; None if it is no longer due or another worker has it."""
    async with sessionmaker() as session, session.begin():
        event = await repo.lock_due(session, event_id, clock.now())
        if event is None:
            return None
        return await _record(session, clock, policy, event, await _send(session, clock, http, policy, event))


async def _send(
    session: AsyncSession, clock: Clock, http: httpx.AsyncClient, policy: RetryPolicy, event: OutboxEvent
) -> Attempt:
    signer = signer_of(event.destination_kind)
    if signer is None:  # a wiring mistake: kept pending with its error until the kind is registered
        return Attempt(event.id, EventStatus.PENDING, None, f"no destination kind {event.destination_kind!r} is registered")
    secret = await signer(session, Message.of(event))
    if secret is None:
        return Attempt(event.id, EventStatus.WITHDRAWN, None, "withdrawn by its destination before delivery")
    body = body_of(event)
    headers = {
        "Content-Type": "application/json", EVENT_ID_HEADER: str(event.id), EVENT_TYPE_HEADER: event.event_type,
        ATTEMPT_HEADER: str(event.attempts + 1), **signed_headers(secret, clock.now(), body),
    }
    try:
        response = await http.post(event.url, content=body, headers=headers, timeout=policy.timeout_seconds)
    except httpx.HTTPError as exc:
        return Attempt(event.id, EventStatus.PENDING, None, f"{type(exc).__name__}: {exc}"[:ERROR_CHARS])
    if response.is_success:
        return Attempt(event.id, EventStatus.DELIVERED, response.status_code, None)
    return Attempt(event.id, EventStatus.PENDING, response.status_code,
                   f"HTTP {response.status_code}: {response.text}"[:ERROR_CHARS])


async def _record(session: AsyncSession, clock: Clock, policy: RetryPolicy, event: OutboxEvent, attempt: Attempt) -> Attempt:
    now = clock.now()
    attempts = event.attempts + 1
    if attempt.status == EventStatus.DELIVERED:
        values = {"status": attempt.status.value, "delivered_at": now, "last_error": None}
    elif attempt.status == EventStatus.WITHDRAWN:
        values = {"status": attempt.status.value, "last_error": attempt.error}
    else:
        status = EventStatus.FAILED if attempts >= policy.max_attempts else EventStatus.PENDING
        values = {"status": status.value, "last_error": attempt.error, "next_attempt_at": now + policy.delay(attempts)}
        attempt = replace(attempt, status=status)
        log.warning("webhook delivery failed", extra={"event_id": str(event.id), "attempts": attempts,
                                                      "status": status.value, "error": attempt.error})
    await repo.record_attempt(session, event.id, attempts=attempts, last_status=attempt.http_status, **values)
    return attempt
