import asyncio

from alembic import context
from alembic_utils.pg_function import PGFunction
from alembic_utils.replaceable_entity import register_entities
from sqlalchemy.ext.asyncio import create_async_engine

from migrations import targets
from shared.models import Base

targets.import_models()
# Autogenerate compares these with the database and proposes what differs; only functions are
# compared (grants, policies, triggers, views stay as the migrations wrote them).
register_entities(targets.functions(), entity_types=[PGFunction])


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_schemas=True,
        version_table_schema="platform",
        include_name=targets.include_name,
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
