"""shared.db.fetch_on_driver: a statement run on the session's asyncpg connection is inside the
session's transaction, whether or not SQLAlchemy had begun it: a rollback undoes it, a commit
keeps it, and its rows come back by position."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from shared.db import fetch_on_driver

NAME = "driver-statement-test"


async def _kept(sessionmaker) -> int:
    async with sessionmaker() as s:
        return (await s.execute(text("SELECT count(*) FROM platform.idempotency_keys WHERE caller = :c"),
                                {"c": NAME})).scalar_one()


async def _insert(session) -> list:
    return await fetch_on_driver(
        session,
        "INSERT INTO platform.idempotency_keys (caller, key, request_hash, created_at) VALUES ($1, $1, $1, now())"
        " RETURNING caller, 1 + 1",
        NAME,
    )


@pytest.mark.parametrize("begun", [False, True], ids=["first statement", "after another"])
async def test_a_driver_statement_is_undone_by_the_sessions_rollback(sessionmaker, begun):
    async with sessionmaker() as s:
        if begun:
            await s.execute(text("SELECT 1"))
        rows = await _insert(s)
        assert [tuple(r) for r in rows] == [(NAME, 2)]
        await s.rollback()
    assert await _kept(sessionmaker) == 0


async def test_a_driver_statement_is_kept_by_the_sessions_commit(sessionmaker):
    async with sessionmaker() as s:
        await s.execute(text("SELECT 1"))
        await _insert(s)
        await s.commit()
    assert await _kept(sessionmaker) == 1
