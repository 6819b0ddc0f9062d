"""Every SQL query of the KPI report's settings."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.settlement.kpi.models import BaselineRate, KpiTarget


async def put_baseline(session: AsyncSession, **values: Any) -> BaselineRate:
    statement = pg_insert(BaselineRate).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[BaselineRate.region_id, BaselineRate.effective_from],
        set_={"rate_bp": statement.excluded.rate_bp, "source": statement.excluded.source,
              "set_by": statement.excluded.set_by, "set_at": statement.excluded.set_at},
    ).returning(BaselineRate)
    return (await session.execute(statement)).scalar_one()


async def baseline(session: AsyncSession, region_id: uuid.UUID, effective_from: date) -> BaselineRate | None:
    return await session.get(BaselineRate, (region_id, effective_from))


async def baselines(session: AsyncSession, region_id: uuid.UUID, *, until: date | None = None) -> list[BaselineRate]:
    """The region's rates in order of their effective day, those in force before `until` if given."""
    query = select(BaselineRate).where(BaselineRate.region_id == region_id)
    if until is not None:
        query = query.where(BaselineRate.effective_from < until)
    return list((await session.execute(query.order_by(BaselineRate.effective_from))).scalars())


async def put_target(session: AsyncSession, **values: Any) -> KpiTarget:
    statement = pg_insert(KpiTarget).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[KpiTarget.region_id, KpiTarget.fiscal_year, KpiTarget.kpi],
        set_={"target": statement.excluded.target, "reason": statement.excluded.reason,
              "set_by": statement.excluded.set_by, "set_at": statement.excluded.set_at},
    ).returning(KpiTarget)
    return (await session.execute(statement)).scalar_one()


async def target(session: AsyncSession, region_id: uuid.UUID, fiscal_year: int, kpi: str) -> KpiTarget | None:
    return await session.get(KpiTarget, (region_id, fiscal_year, kpi))


async def targets(session: AsyncSession, region_id: uuid.UUID, fiscal_year: int) -> list[KpiTarget]:
    query = select(KpiTarget).where(KpiTarget.region_id == region_id, KpiTarget.fiscal_year == fiscal_year)
    return list((await session.execute(query.order_by(KpiTarget.kpi))).scalars())
