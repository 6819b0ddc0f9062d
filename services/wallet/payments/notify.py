"""Real-time notice to the shop: "payment received", as server-sent events.

PostgreSQL is the record; Redis pub/sub only wakes the streams up, in whichever server process
they live. A payment is published after its transaction commits; if Redis is down the payment
still stands and a reconnecting terminal catches up from the database (Last-Event-ID). Delivery
is at least once: payments committed close together may publish out of id order, so a resumed
stream re-reads a short window before the last id, and terminals drop ids they have seen.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.wallet.payments import repository as repo
from services.wallet.payments.schemas import PaymentOut
from shared.errors import ServiceUnavailable

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
RESUME_WINDOW_MS = 2_000  # how far before the last seen id a resumed stream looks again
CATCH_UP_LIMIT = 1_000


class NotificationsUnavailable(ServiceUnavailable):
    slug, title = "notifications-unavailable", "Real-time notices are unavailable (Redis is down)"


def channel(merchant_id: uuid.UUID) -> str:
    return f"chiikipay:merchant:{merchant_id}:payments"


async def publish_payment(redis: Redis, payment: PaymentOut) -> None:
    """Runs after the commit (a background task); a lost notice is recovered on reconnect."""
    try:
        await redis.publish(channel(payment.merchant_id), payment.model_dump_json())
    except (RedisError, OSError) as exc:
        log.warning("payment notice not published", extra={"payment_id": str(payment.id), "error": type(exc).__name__})


def _window_start(last_id: uuid.UUID) -> uuid.UUID:
    """The smallest UUIDv7 of RESUME_WINDOW_MS before `last_id`'s timestamp."""
    millis = max((last_id.int >> 80) - RESUME_WINDOW_MS, 0)
    return uuid.UUID(int=millis << 80)


def _frame(payment: PaymentOut) -> str:
    return f"id: {payment.id}\nevent: payment.received\ndata: {payment.model_dump_json()}\n\n"


async def open_stream(
    redis: Redis,
    sessionmaker: async_sessionmaker[AsyncSession],
    merchant_id: uuid.UUID,
    last_event_id: uuid.UUID | None,
    is_disconnected: Any,
) -> AsyncIterator[str]:
    """Subscribe first (so nothing committed from now on is missed), then catch up from the
    database, then follow the channel. Raises NotificationsUnavailable before any byte is sent
    when Redis cannot be reached."""
    pubsub = redis.pubsub()
    try:
        await pubsub.subscribe(channel(merchant_id))
    except (RedisError, OSError):
        await pubsub.aclose()
        raise NotificationsUnavailable("Try again shortly; payments themselves are not affected.") from None
    return _follow(pubsub, sessionmaker, merchant_id, last_event_id, is_disconnected)


async def _follow(pubsub: Any, sessionmaker: Any, merchant_id: uuid.UUID, last_event_id: uuid.UUID | None,
                  is_disconnected: Any) -> AsyncIterator[str]:
    seen: set[uuid.UUID] = set()
    try:
        yield "retry: 2000\n\n"
        if last_event_id is not None:
            async with sessionmaker() as session:
                missed = await repo.merchant_payments(
                    session, merchant_id, after_id=_window_start(last_event_id), limit=CATCH_UP_LIMIT,
                    newest_first=False,
                )
            for payment in missed:
                if payment.id != last_event_id:
                    seen.add(payment.id)
                    yield _frame(PaymentOut.model_validate(payment))
        while not await is_disconnected():
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=KEEPALIVE_SECONDS)
            except (RedisError, OSError):
                log.warning("payment stream lost Redis; the terminal will reconnect and catch up")
                return
            if message is None:
                yield ": keep-alive\n\n"
                continue
            payment = PaymentOut.model_validate(json.loads(message["data"]))
            if payment.id not in seen:
                seen.add(payment.id)
                yield _frame(payment)
    finally:
        try:
            await pubsub.aclose()
        except (RedisError, OSError):
            pass
