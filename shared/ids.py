"""Ids: UUIDv7, time-ordered, so that busy tables append to the end of their primary key index.
Their short form (22 base64url characters) fits where 36 characters do not: a pagination
cursor, the 25-character bill number of a QR code."""

import base64
import binascii
import secrets
import uuid
from datetime import datetime

from uuid_utils.compat import uuid7


def new_id() -> uuid.UUID:
    return uuid7()


def id_at(at: datetime) -> uuid.UUID:
    """A UUIDv7 of the instant `at` (its millisecond) instead of now: a record that happened long
    ago (a movement imported from a previous platform) sorts among ids by when it happened."""
    millis = int(at.timestamp() * 1000)
    assert 0 <= millis < 1 << 48, f"{at} is outside UUIDv7 time"
    rand = secrets.randbits(74)
    value = (millis << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return uuid.UUID(int=value)


def short_id(value: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(value.bytes).decode().rstrip("=")


def from_short_id(text: str) -> uuid.UUID:
    """ValueError unless `text` is the short form of some UUID."""
    if len(text) != 22:
        raise ValueError("a short id has 22 characters")
    try:
        value = uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=="))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not a short id") from exc
    # The last character carries 2 unused bits: four spellings decode to one id. Only the one
    # short_id gives is accepted, so that an id has one text (a bill number, a cursor).
    if short_id(value) != text:
        raise ValueError("not the canonical short id")
    return value
