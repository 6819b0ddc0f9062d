"""Every SQL query of surveys."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.settlement.surveys.models import Survey, SurveyAnswer
from shared.db import tokyo_day


async def insert_survey(session: AsyncSession, **values: Any) -> Survey:
    return (await session.execute(insert(Survey).values(**values).returning(Survey))).scalar_one()


async def survey(session: AsyncSession, survey_id: uuid.UUID) -> Survey | None:
    return await session.get(Survey, survey_id)


async def surveys(
    session: AsyncSession, region_id: uuid.UUID, *, open_at: datetime | None, after_id: uuid.UUID | None, limit: int
) -> list[Survey]:
    query = select(Survey).where(Survey.region_id == region_id)
    if open_at is not None:
        query = query.where(Survey.opens_at <= open_at, Survey.closes_at > open_at)
    if after_id is not None:
        query = query.where(Survey.id > after_id)
    return list((await session.execute(query.order_by(Survey.id).limit(limit))).scalars())


async def insert_answer(session: AsyncSession, **values: Any) -> SurveyAnswer | None:
    """The answer, or None when the resident has answered this survey before (the primary key)."""
    statement = pg_insert(SurveyAnswer).values(**values).on_conflict_do_nothing().returning(SurveyAnswer)
    return (await session.execute(statement)).scalar_one_or_none()


async def answer_of(session: AsyncSession, survey_id: uuid.UUID, subject: str) -> SurveyAnswer | None:
    return await session.get(SurveyAnswer, (survey_id, subject))


async def tally(session: AsyncSession, survey_id: uuid.UUID) -> tuple[int, int]:
    """(answers, sum of their ratings)."""
    query = select(func.count(), func.coalesce(func.sum(SurveyAnswer.rating), 0)).where(SurveyAnswer.survey_id == survey_id)
    answers, total = (await session.execute(query)).one()
    return answers, total


async def monthly_ratings(
    session: AsyncSession, region_id: uuid.UUID, since: datetime, until: datetime
) -> list[tuple[date, int, int]]:
    """Per Tokyo month of answering: (month's first day, answers, sum of ratings)."""
    month = func.date_trunc("month", tokyo_day(SurveyAnswer.answered_at)).cast(Date).label("month")
    query = (
        select(month, func.count(), func.sum(SurveyAnswer.rating))
        .where(SurveyAnswer.region_id == region_id, SurveyAnswer.answered_at >= since, SurveyAnswer.answered_at < until)
        .group_by(month).order_by(month)
    )
    return [(row[0], row[1], row[2]) for row in await session.execute(query)]
