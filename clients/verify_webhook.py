"""How a partner service verifies chiikipay's webhooks: copy this function (standard library only).

chiikipay POSTs each event as JSON with these headers:

    X-Chiikipay-Event-Id:        the event's id; the same event may arrive twice (a retry after a
                                 lost answer): process each id once
    X-Chiikipay-Event-Type:      checkout.paid, checkout.refunded, checkout.cancelled,
                                 checkout.expired, checkout.declined
    X-Chiikipay-Timestamp:       Unix seconds when it was signed
    X-Chiikipay-Signature:       "sha256=" + hex HMAC-SHA256(signing secret, timestamp + "." + raw body)

Verify over the raw body bytes as received, before parsing them, and answer 2xx once the event is
stored; any other answer (or none within 10 s) makes chiikipay send it again later, with back-off.
Events of one checkout arrive in order, each only after the one before it was answered 2xx.

    verify(secret, headers["X-Chiikipay-Timestamp"], headers["X-Chiikipay-Signature"], body)
"""

from __future__ import annotations

import hashlib
import hmac
import time

TOLERANCE_SECONDS = 300  # refuse older (or future) signatures: a captured request replayed later


class InvalidWebhook(Exception):
    """The request is not chiikipay's, or was signed too long ago: answer 400 and ignore it."""


def verify(secret: str, timestamp: str, signature: str, body: bytes, *, now: float | None = None) -> None:
    """Raises InvalidWebhook unless `body` was signed with `secret` within TOLERANCE_SECONDS of `now`."""
    try:
        signed_at = int(timestamp)
    except ValueError:
        raise InvalidWebhook("the timestamp is not Unix seconds") from None
    if abs((time.time() if now is None else now) - signed_at) > TOLERANCE_SECONDS:
        raise InvalidWebhook("the signature is stale")
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise InvalidWebhook("the signature does not match")
