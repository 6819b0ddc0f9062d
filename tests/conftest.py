"""Test harness: real PostgreSQL and Redis, never mocks.

By default the tests start the embedded servers (as a user's machine would) in a temporary data
folder; with TEST_DATABASE_URL and TEST_REDIS_URL set they use those servers instead (CI runs
both ways). The schemas are rebuilt from the migrations once per run; every test starts from
empty tables and a clock frozen at a known instant.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.application import create_app
from app.demo import DemoTown, seed
from services.wallet.directory.service import region_identities
from shared.auth import DevIssuer, Role
from shared.clock import FrozenClock
from shared.config import Settings
from shared.embedded import embedded_servers
from shared.migrate import upgrade_sync
from tests.helpers import DocumentedResponses

START = datetime(2026, 4, 1, 0, 30, tzinfo=UTC)  # 09:30 on the first day of FY2026 in Tokyo
SCHEMAS = ("wallet", "coupons", "settlement", "platform")


def _asyncpg(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    return url


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    data_dir = tmp_path_factory.mktemp("chiikipay")
    external_db, external_redis = os.environ.get("TEST_DATABASE_URL"), os.environ.get("TEST_REDIS_URL")
    base = Settings(
        _env_file=None,
        data_dir=data_dir,
        database_url=_asyncpg(external_db) if external_db else None,
        redis_url=external_redis or None,
        dev_issuer_enabled=True,
        jwt_jwks_url=None,
        jwt_public_key=None,
        db_pool_size=10,
        jobs_scheduler=False,  # tests run the jobs themselves, at the instants they choose
    )
    with embedded_servers(base) as resolved:
        _rebuild_schema(resolved.database_url)
        yield resolved


def _rebuild_schema(database_url: str) -> None:
    import asyncio

    async def drop() -> None:
        engine = create_async_engine(database_url)
        async with engine.begin() as conn:
            for schema in SCHEMAS:
                await conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await engine.dispose()

    asyncio.run(drop())
    upgrade_sync(database_url)


@pytest.fixture(scope="session")
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture(scope="session")
async def app(settings: Settings, clock: FrozenClock) -> AsyncIterator[Any]:
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
def sessionmaker(app: Any) -> Any:
    return app.state.sessionmaker


@pytest.fixture(autouse=True)
async def clean(request: pytest.FixtureRequest, clock: FrozenClock) -> None:
    """Empty tables and a reset clock before each test that uses the database."""
    clock.set(START)
    if "sessionmaker" not in request.fixturenames and "app" not in request.fixturenames:
        return
    region_identities.clear()  # regions are recreated under the same codes below
    maker = request.getfixturevalue("sessionmaker")
    async with maker() as session:
        tables = (
            await session.execute(
                text(
                    "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
                    "WHERE schemaname = ANY(:schemas) AND tablename <> 'alembic_version'"
                ),
                {"schemas": list(SCHEMAS)},
            )
        ).scalars().all()
        if tables:
            await session.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
        await session.commit()


@pytest.fixture(scope="session")
def documented(app: Any) -> DocumentedResponses:
    return DocumentedResponses(app)


@pytest.fixture
async def client(app: Any, documented: DocumentedResponses) -> AsyncIterator[httpx.AsyncClient]:
    """Every response it receives must have a status its operation declares (tests.helpers)."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://chiikipay.test", event_hooks={"response": [documented.check]}
    ) as http:
        yield http


@pytest.fixture
async def session(sessionmaker: Any) -> AsyncIterator[AsyncSession]:
    async with sessionmaker() as s:
        yield s



@pytest.fixture
async def redis_down(app) -> AsyncIterator[None]:
    """Redis unreachable for the length of a test; the working client is put back after."""
    working = app.state.redis
    app.state.redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    try:
        yield
    finally:
        await app.state.redis.aclose()
        app.state.redis = working


# --- identities -------------------------------------------------------------------------------


@dataclass
class Tokens:
    issuer: DevIssuer

    def mint(self, role: Role, subject: str, region: str = "aizu", merchant: uuid.UUID | str | None = None,
             ttl: timedelta | None = None) -> dict[str, str]:
        merchant_id = uuid.UUID(str(merchant)) if merchant else None
        token = self.issuer.mint(subject=subject, role=role, region=region, merchant_id=merchant_id, ttl=ttl)
        return {"Authorization": f"Bearer {token}"}

    def resident(self, subject: str = "resident-hanako", region: str = "aizu") -> dict[str, str]:
        return self.mint(Role.RESIDENT, subject, region)

    def operator(self, region: str = "aizu") -> dict[str, str]:
        return self.mint(Role.OPERATOR, f"operator-{region}", region)

    def auditor(self, region: str = "aizu") -> dict[str, str]:
        return self.mint(Role.AUDITOR, f"auditor-{region}", region)

    def merchant_admin(self, merchant: uuid.UUID | str, region: str = "aizu") -> dict[str, str]:
        return self.mint(Role.MERCHANT_ADMIN, "shop-owner", region, merchant)

    def merchant_staff(self, merchant: uuid.UUID | str, region: str = "aizu") -> dict[str, str]:
        return self.mint(Role.MERCHANT_STAFF, "shop-clerk", region, merchant)


@pytest.fixture
def tokens(app: Any) -> Tokens:
    return Tokens(app.state.dev_issuer)



@pytest.fixture
async def town(sessionmaker: Any, clock: FrozenClock, settings: Settings) -> DemoTown:
    """The demo town of `chiikipay demo`: region aizu, six merchants, three funded residents."""
    async with sessionmaker() as s, s.begin():
        return await seed(s, clock, settings)
