"""Signed webhooks: one scheme for the events chiikipay receives (the bank's top-ups,
services/wallet/topups) and the events it sends (to partner services and the city's data
platform, services/platform/outbox), so that a sender and a receiver on either side check the
same bytes the same way.

The signer takes the Unix time in whole seconds as text, `t`, and the raw body bytes, `b`, and
computes HMAC-SHA256 with the shared secret over `t + "." + b`; it sends

    X-Chiikipay-Timestamp: t
    X-Chiikipay-Signature: sha256=<the HMAC as lower-case hex>

The receiver recomputes the HMAC over the body exactly as received (before parsing it: parsing
and re-encoding would change the bytes), compares it in constant time, and refuses a timestamp
more than its tolerance away from its own clock, so that a captured request cannot be replayed
later. The timestamp is inside the signed text, so it cannot be moved without the secret.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from shared.errors import Unauthenticated

TIMESTAMP_HEADER = "X-Chiikipay-Timestamp"
SIGNATURE_HEADER = "X-Chiikipay-Signature"
SCHEME = "sha256="


class WebhookSignatureInvalid(Unauthenticated):
    slug, title = "webhook-signature-invalid", "The webhook signature does not verify"


class WebhookTimestampStale(Unauthenticated):
    slug, title = "webhook-timestamp-stale", "The webhook timestamp is too old or in the future"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Chiikipay-Signature` value of `body` sent at `timestamp` (Unix seconds as text)."""
    return SCHEME + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signed_headers(secret: str, at: datetime, body: bytes) -> dict[str, str]:
    """The two headers a sender adds to `body`, signed at the instant `at`."""
    timestamp = str(int(at.timestamp()))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(secret: str, timestamp: str, sent_signature: str, body: bytes, *, now: datetime, tolerance_seconds: int) -> None:
    """Refuses (401) a timestamp that is not Unix seconds or is more than `tolerance_seconds`
    from `now` (webhook-timestamp-stale), and a signature that is not the body's
    (webhook-signature-invalid)."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookTimestampStale("The timestamp header must be Unix seconds.") from None
    if abs(now.timestamp() - sent_at) > tolerance_seconds:
        raise WebhookTimestampStale(f"The timestamp is more than {tolerance_seconds} s from now.")
    if not hmac.compare_digest(signature(secret, timestamp, body), sent_signature):
        raise WebhookSignatureInvalid()
