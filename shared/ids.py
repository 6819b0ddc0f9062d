"""Ids: UUIDv7, time-ordered, so that busy tables append to the end of their primary key index."""

import uuid

from uuid_utils.compat import uuid7


def new_id() -> uuid.UUID:
    return uuid7()
