"""PostgreSQL access: one async engine per process, one session and one commit per request.

The request's session is committed by `get_session` after the endpoint returns and before the
response is sent (`Depends(scope="function")`), so a 2xx always means committed (invariant 7).
Code below the endpoint calls `flush()`, never `commit()`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Date, event, func
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session

from shared.config import Settings

# Reports are few and long; two connections keep one from holding the primary's pool.
REPORT_POOL_SIZE = 2


def create_engine(settings: Settings, *, read_only: bool = False) -> AsyncEngine:
    """The primary's engine, or (`read_only`) the reports' engine: `DATABASE_READ_URL` (a
    replica), else the primary, every transaction of it read-only, so a report can never write."""
    assert settings.database_url, "database_url is resolved before the engine is made"
    server_settings = {"application_name": "chiikipay", "timezone": "UTC"}
    if read_only:
        server_settings |= {"application_name": "chiikipay-reports", "default_transaction_read_only": "on"}
    return create_async_engine(
        (settings.database_read_url or settings.database_url) if read_only else settings.database_url,
        # A fixed pool: a request waits for a free connection rather than opening an overflow
        # one that is closed again on return; that churn doubled PostgreSQL's CPU per payment
        # under 128 connections (bench/RESULTS.md).
        pool_size=REPORT_POOL_SIZE if read_only else settings.db_pool_size,
        max_overflow=0,
        # No pre-ping: it costs a round trip per request. A connection broken by a database
        # restart fails one request (nothing committed) and is replaced.
        pool_recycle=3600,
        # A database error's message would otherwise carry the statement's bind values (a
        # resident's subject, a shop's name) into the logs.
        hide_parameters=True,
        connect_args={"server_settings": server_settings},
    )


@event.listens_for(Session, "do_orm_execute")
def _locked_rows_are_read_afresh(state: ORMExecuteState) -> None:
    """A row read FOR UPDATE is what was committed when the lock was granted, never the copy the
    session loaded before it waited: without this, an object already in the identity map keeps its
    old attributes (two refunds of one payment each computed on the totals before the other)."""
    if state.is_select and getattr(state.statement, "_for_update_arg", None) is not None:
        state.update_execution_options(populate_existing=True)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session of the reports' read-only engine: it never commits; what it read is let go."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.read_sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
        finally:
            await session.rollback()


async def fetch_on_driver(session: AsyncSession, statement: str, *args: Any) -> Sequence[Sequence[Any]]:
    """Run one SQL statement (asyncpg's `$n` parameters) in the session's transaction, on the
    session's own asyncpg connection, past SQLAlchemy's execution path; its rows, by position.

    For the few statements of a hot path whose cost to the app is mostly that path: about 110 µs
    of the 170 µs a statement costs one at a time, more under load (bench/RESULTS.md, 2026-12-04:
    a payment with a coupon's claim and redemption). Use it for nothing else: SQLAlchemy's path is
    the rule. A session whose transaction has not begun (SQLAlchemy begins it with the first
    statement it runs) runs the statement through SQLAlchemy, so it never runs outside it."""
    connection = await session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    if driver is not None and driver.is_in_transaction():
        return await driver.fetch(statement, *args)
    return (await connection.exec_driver_sql(statement, args)).all()


def tokyo_day(column: Any) -> Any:
    """A timestamp column's calendar day in Asia/Tokyo, the day every report and period counts in."""
    return func.date(func.timezone("Asia/Tokyo", column)).cast(Date)


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session, scope="function")]
