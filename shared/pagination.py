"""Cursor pagination. Rows are listed newest first by their time-ordered UUIDv7 id; the cursor
is the last id of a page, opaque to clients."""

from __future__ import annotations

import uuid
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from shared.ids import from_short_id, short_id

T = TypeVar("T")

# A short id (shared.ids): 22 base64url characters, the last of which carries 4 bits and 2 unused
# ones, so only A, Q, g or w ends a cursor the API gave out.
CursorParam = Annotated[
    str | None, Query(description="`next_cursor` of the previous page", pattern=r"^[A-Za-z0-9_-]{21}[AQgw]$")
]
LimitParam = Annotated[int, Query(ge=1, le=200, description="page size")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


def encode_cursor(last_id: uuid.UUID) -> str:
    return short_id(last_id)


def decode_cursor(cursor: str | None) -> uuid.UUID | None:
    """`CursorParam`'s pattern admits only the canonical spelling of a short id, which always decodes."""
    return from_short_id(cursor) if cursor else None


def page_of(items: list[T], ids: list[uuid.UUID], limit: int) -> Page[T]:
    """Build a page from up to limit + 1 fetched rows (the extra one says whether more exist)."""
    more = len(items) > limit
    return Page[T](items=items[:limit], next_cursor=encode_cursor(ids[limit - 1]) if more else None)
