import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

import importlib
import pkgutil

import services
from shared.models import Base

# Every `models` module under services/ registers its tables with Base.metadata, wherever it lives.
for module in pkgutil.walk_packages(services.__path__, "services."):
    if module.name.rsplit(".", 1)[-1] == "models":
        importlib.import_module(module.name)

SCHEMAS = ("platform", "wallet", "coupons", "settlement")


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_schemas=True,
        version_table_schema="platform",
        include_name=lambda name, type_, parent: type_ != "schema" or name in SCHEMAS,
    )
    with context.begin_transaction():
        context.run_migrations()


async def main() -> None:
    engine = create_async_engine(context.config.get_main_option("sqlalchemy.url"))
    async with engine.connect() as connection:
        # The version table lives in `platform`, so that schema must exist before Alembic looks.
        await connection.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS platform")
        await connection.commit()
        await connection.run_sync(run)
        await connection.commit()
    await engine.dispose()


asyncio.run(main())
