"""Benchmark: a CSV upload of 100,000 point grants, end to end through the API.

    createdb -h 127.0.0.1 -U root grants_bench
    BENCH_DATABASE_URL=postgresql+asyncpg://root@127.0.0.1:5432/grants_bench \\
    BENCH_REDIS_URL=redis://127.0.0.1:6379/13 .venv/bin/python bench/grants_upload.py [--rows 100000]

The database's schemas are dropped and rebuilt first. The region gets `--rows` residents (one
grant each); the file is posted in-process (httpx over ASGI, so no network in the figure) and the
status polled until the upload is done. Prints the time to accept the file, to check every row,
to grant them all (one transaction), the whole, a second upload of the same file (every row
skipped), and checks the ledger afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.wallet.grants import tasks
from services.wallet.verify import verify_ledger
from app.application import create_app
from shared.auth import Role
from shared.config import Settings
from app.demo import seed
from shared.migrate import upgrade_sync

SCHEMAS = ("wallet", "coupons", "settlement", "platform")


def rebuild(database_url: str) -> None:
    async def drop() -> None:
        engine = create_async_engine(database_url)
        async with engine.begin() as conn:
            for schema in SCHEMAS:
                await conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await engine.dispose()

    asyncio.run(drop())
    upgrade_sync(database_url)


async def residents(app, count: int) -> list[str]:
    """`count` residents with wallets (yen and point accounts), inserted set-based."""
    async with app.state.sessionmaker() as session, session.begin():
        region_id = (await session.execute(text("SELECT id FROM wallet.regions WHERE code = 'aizu'"))).scalar_one()
        await session.execute(text(
            "INSERT INTO wallet.residents (id, region_id, subject, created_at) "
            "SELECT gen_random_uuid(), :r, 'bench-' || g, now() FROM generate_series(1, :n) g"), {"r": region_id, "n": count})
        await session.execute(text(
            "INSERT INTO wallet.accounts (id, region_id, kind, unit, resident_id, status, tracks_balance, may_go_negative, "
            "balance, created_at) SELECT gen_random_uuid(), :r, 'resident', u.unit, res.id, 'active', true, false, 0, now() "
            "FROM wallet.residents res CROSS JOIN (VALUES ('yen'), ('point')) u (unit) WHERE res.subject LIKE 'bench-%'"),
            {"r": region_id})
        rows = await session.execute(text(
            "SELECT a.id FROM wallet.accounts a JOIN wallet.residents res ON res.id = a.resident_id "
            "WHERE res.subject LIKE 'bench-%' AND a.unit = 'yen' ORDER BY res.subject"))
        return [str(r[0]) for r in rows]


async def main(rows: int) -> None:
    database_url = os.environ["BENCH_DATABASE_URL"]
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
    await asyncio.to_thread(rebuild, database_url)
    settings = Settings(_env_file=None, database_url=database_url, redis_url=redis_url, data_dir=".chiikipay-bench")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with app.state.sessionmaker() as session, session.begin():
            await seed(session, app.state.clock, settings)
        started = time.perf_counter()
        wallets = await residents(app, rows)
        print(f"setup: {rows} residents in {time.perf_counter() - started:.1f} s")
        issuer = app.state.dev_issuer
        operator = {"Authorization": "Bearer " + issuer.mint(subject="operator-aizu", role=Role.OPERATOR, region="aizu")}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=600) as client:
            def key() -> dict[str, str]:
                return {**operator, "Idempotency-Key": str(uuid.uuid4())}

            campaign = (await client.post("/v1/campaigns", headers=key(), json={
                "kind": "grant", "name": "Bench health points", "name_ja": "健康ポイント", "expiry_months": 12})).json()
            await client.post(f"/v1/campaigns/{campaign['id']}/funding", headers=key(), json={"amount": 1_000 * rows})
            body = "row_key,wallet_id,amount,category,event_id,activity_date,memo\n" + "".join(
                f"kenshin-2026-{i:06d},{w},{100 + i % 900},health_checkup,kenshin-2026,2026-03-{1 + i % 28:02d},\n"
                for i, w in enumerate(wallets)
            )
            content = body.encode()
            print(f"file: {rows} rows, {len(content) / 1e6:.1f} MB")

            for attempt in ("first upload", "same file again"):
                t0 = time.perf_counter()
                accepted = await client.post(f"/v1/campaigns/{campaign['id']}/grant-uploads", content=content,
                                             headers={**key(), "Content-Type": "text/csv"})
                assert accepted.status_code == 202, accepted.text
                t_accept = time.perf_counter() - t0
                location = accepted.headers["Location"]
                t_granting = None
                polls = 0
                while True:
                    status = (await client.get(location, headers=operator)).json()
                    polls += 1
                    if status["status"] == "granting" and t_granting is None:
                        t_granting = time.perf_counter() - t0
                    if status["status"] not in ("validating", "granting"):
                        break
                    await asyncio.sleep(0.05)
                total = time.perf_counter() - t0
                await tasks.drain()
                assert status["status"] == "done", status
                checked = (t_granting or total) - t_accept
                print(f"{attempt}: accepted in {t_accept:.2f} s; rows checked in {checked:.2f} s; "
                      f"granted in {total - (t_granting or total):.2f} s; total {total:.2f} s "
                      f"({rows / total:,.0f} rows/s); granted {status['granted_rows']}, skipped {status['skipped_rows']}, "
                      f"points {status['points']}; {polls} status reads meanwhile")


        t0 = time.perf_counter()
        async with app.state.sessionmaker() as session:
            violations = await verify_ledger(session)
            grants = (await session.execute(text("SELECT count(*) FROM wallet.grants"))).scalar_one()
        print(f"ledger verify: {len(violations)} violations ({time.perf_counter() - t0:.1f} s); {grants} grants")
        assert not violations, violations[:5]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().rows))
