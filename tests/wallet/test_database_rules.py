"""Rules the database itself enforces, whatever code writes: double entry at commit. And every
database function and view is its living source (a `sql/*.sql` file, migrations/targets.py finds
them): what the migrations installed is the file, and the database holds no function without one."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from migrations import targets
from tests.helpers import snapshot

ROOT = Path(__file__).resolve().parents[2]
SQL_SOURCES = targets.function_sources()
VIEW_SOURCES = targets.view_sources()


async def _raw_journal(session, legs: list[tuple[str, str, int]]) -> uuid.UUID:
    """A journal written by hand, as any code could: (account kind, unit, amount) per leg."""
    region = (await session.execute(text("SELECT id FROM wallet.regions WHERE code = 'aizu'"))).scalar_one()
    journal = uuid.uuid4()
    await session.execute(text("INSERT INTO wallet.journals VALUES (:id, :region, 'adjustment', 'raw-sql', NULL, NULL, now())"),
                          {"id": journal, "region": region})
    for kind, unit, amount in legs:
        account = (await session.execute(text(
            "SELECT id FROM wallet.accounts WHERE region_id = :region AND kind = :kind AND unit = :unit "
            "AND resident_id IS NULL AND merchant_id IS NULL AND campaign_id IS NULL"
        ), {"region": region, "kind": kind, "unit": unit})).scalar_one()
        await session.execute(text(
            "INSERT INTO wallet.entries VALUES (:id, :journal, :account, :region, :unit, :amount, NULL, now())"
        ), {"id": uuid.uuid4(), "journal": journal, "account": account, "region": region, "unit": unit, "amount": amount})
    return journal


@pytest.mark.parametrize("legs", [
    [("fee_income", "yen", 500)],  # one leg: value from nowhere
    [("fee_income", "yen", 500), ("expired", "yen", -499)],  # a yen short
    [("fee_income", "yen", 500), ("expired", "point", -500)],  # balanced in sum, not per unit
])
async def test_an_unbalanced_journal_written_in_raw_sql_is_refused_at_commit(sessionmaker, town, legs):
    before = await snapshot(sessionmaker)
    async with sessionmaker() as s:
        journal = await _raw_journal(s, legs)
        with pytest.raises(DBAPIError, match=f"journal {journal} does not balance"):
            await s.commit()
    assert await snapshot(sessionmaker) == before


async def test_a_balanced_journal_in_raw_sql_commits(sessionmaker, town):
    """The trigger judges balance only (what else a journal must respect, `ledger verify` checks)."""
    async with sessionmaker() as s:
        journal = await _raw_journal(s, [("fee_income", "yen", 500), ("expired", "yen", -500),
                                         ("fee_income", "point", 200), ("expired", "point", -200)])
        await s.commit()
    async with sessionmaker() as s:
        stored = (await s.execute(text("SELECT count(*) FROM wallet.entries WHERE journal_id = :id"),
                                  {"id": journal})).scalar_one()
    assert stored == 4


def _function_body(sql: str) -> tuple[str, str]:
    """(schema.name, body) of the one CREATE FUNCTION in a source file."""
    name = re.search(r"CREATE (?:OR REPLACE )?FUNCTION\s+([\w.]+)\s*\(", sql).group(1)
    body = re.search(r"AS \$\$(.*)\$\$", sql, re.S).group(1)
    return name, body


def test_the_sources_are_found():
    """Else the drift tests below would check nothing: the files under services/ and shared/."""
    assert {"check_journal_balanced.sql", "spending_key.sql", "fee_for.sql", "pay.sql", "refuse_change.sql"} <= {
        p.name for p in SQL_SOURCES
    }
    assert "statement_lines.sql" in [p.name for p in VIEW_SOURCES]


@pytest.mark.parametrize("source", SQL_SOURCES, ids=[p.name for p in SQL_SOURCES])
async def test_the_migrated_function_is_its_sql_file(sessionmaker, source):
    name, body = _function_body(source.read_text())
    schema, function = name.split(".")
    async with sessionmaker() as s:
        installed = (await s.execute(text(
            "SELECT p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = :schema AND p.proname = :function"
        ), {"schema": schema, "function": function})).scalar_one()
    # Whitespace is not drift: migration 0001 wrote its function indented inside Python.
    assert installed.split() == body.split(), f"{name} in the database differs from {source.relative_to(ROOT)}"


async def test_every_function_in_the_database_has_its_sql_file(sessionmaker):
    """A function a migration created (or someone added by hand) with no living source is found.
    Extensions' functions are theirs; alembic_utils leaves none behind (it tries definitions in a
    rolled-back savepoint); `platform`'s function is shared's, with its file in shared/sql/."""
    filed = {f"{entity.schema}.{entity.signature.split('(')[0]}" for entity in targets.functions()}
    async with sessionmaker() as s:
        installed = set((await s.execute(text(
            "SELECT n.nspname || '.' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = ANY (:schemas) AND NOT EXISTS (SELECT 1 FROM pg_depend d "
            "WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')"
        ), {"schemas": list(targets.SCHEMAS)})).scalars())
    assert installed - filed == set(), "functions in the database without a sql/*.sql file"


@pytest.mark.parametrize("source", VIEW_SOURCES, ids=[p.name for p in VIEW_SOURCES])
async def test_the_migrated_view_is_its_sql_file(sessionmaker, source):
    """The file's query, installed as a temporary view, reads back exactly as the migrated view
    does (PostgreSQL prints both the same way, whatever the file's layout)."""
    name = re.search(r"CREATE VIEW\s+([\w.]+)\s+AS", source.read_text()).group(1)
    query = re.search(r"CREATE VIEW\s+[\w.]+\s+AS(.*);", source.read_text(), re.S).group(1)
    async with sessionmaker() as s:
        await s.execute(text(f"CREATE TEMP VIEW from_file AS {query}"))
        from_file, installed = (await s.execute(text(
            "SELECT pg_get_viewdef('pg_temp.from_file'::regclass), pg_get_viewdef(CAST(:name AS regclass))"
        ), {"name": name})).one()
        await s.rollback()
    assert installed == from_file, f"{name} in the database differs from {source.relative_to(ROOT)}"
