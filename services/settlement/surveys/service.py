"""In-app surveys: the operator opens one for a window; each resident of the region may answer it
once, with a rating of 1 to 5 and an optional comment. The ratings are the KPI 満足度 (the mean of
the answers given in a fiscal year, kpi/service.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.settlement.surveys import repository as repo
from services.settlement.surveys.errors import InvalidSurveyWindow, SurveyAlreadyAnswered, SurveyClosed, SurveyNotFound
from services.settlement.surveys.models import Survey, SurveyAnswer
from services.wallet import public as wallet
from shared import audit
from shared.audit import Actor
from shared.clock import Clock, tokyo_midnight
from shared.ids import new_id


async def create_survey(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, title_ja: str, title: str, question_ja: str,
    opens_at: datetime, closes_at: datetime,
) -> Survey:
    if opens_at >= closes_at:
        raise InvalidSurveyWindow("A survey must close after it opens.", opens_at=opens_at.isoformat(),
                                  closes_at=closes_at.isoformat())
    region_id = await wallet.region_id(session, region=region)
    made = await repo.insert_survey(
        session, id=new_id(), region_id=region_id, title_ja=title_ja, title=title, question_ja=question_ja,
        opens_at=opens_at, closes_at=closes_at, created_by=actor.subject, created_at=clock.now(),
    )
    await audit.record(
        session, clock, actor, region_id=region_id, action="survey.create", target_type="survey", target_id=made.id,
        after={"title_ja": title_ja, "opens_at": opens_at.isoformat(), "closes_at": closes_at.isoformat()},
    )
    return made


async def survey(session: AsyncSession, *, region: str, survey_id: uuid.UUID) -> Survey:
    region_id = await wallet.region_id(session, region=region)
    found = await repo.survey(session, survey_id)
    if found is None or found.region_id != region_id:
        raise SurveyNotFound(f"No survey {survey_id} in region {region}.")
    return found


async def surveys(
    session: AsyncSession, clock: Clock, *, region: str, open_only: bool, after_id: uuid.UUID | None, limit: int
) -> list[Survey]:
    region_id = await wallet.region_id(session, region=region)
    return await repo.surveys(session, region_id, open_at=clock.now() if open_only else None, after_id=after_id,
                              limit=limit)


async def answer(
    session: AsyncSession, clock: Clock, *, region: str, subject: str, survey_id: uuid.UUID, rating: int,
    comment: str | None,
) -> SurveyAnswer:
    """The resident's one answer; a second is refused, never an overwrite (a rating counts once)."""
    found = await survey(session, region=region, survey_id=survey_id)
    now = clock.now()
    if not found.opens_at <= now < found.closes_at:
        raise SurveyClosed("The survey is not open for answers now.", opens_at=found.opens_at.isoformat(),
                           closes_at=found.closes_at.isoformat())
    if not await wallet.residents(session, region=region, among=[subject]):
        raise SurveyNotFound(f"No survey {survey_id} for you in region {region}.")
    made = await repo.insert_answer(
        session, survey_id=found.id, subject=subject, region_id=found.region_id, rating=rating, comment=comment,
        answered_at=now,
    )
    if made is None:
        raise SurveyAlreadyAnswered("You have already answered this survey; an answer is not changed.")
    return made


async def my_answer(session: AsyncSession, *, region: str, subject: str, survey_id: uuid.UUID) -> SurveyAnswer | None:
    found = await survey(session, region=region, survey_id=survey_id)
    return await repo.answer_of(session, found.id, subject)


@dataclass(frozen=True)
class Tally:
    answers: int
    rating_sum: int


async def tally(session: AsyncSession, *, region: str, survey_id: uuid.UUID) -> Tally:
    found = await survey(session, region=region, survey_id=survey_id)
    return Tally(*await repo.tally(session, found.id))


async def monthly_ratings(session: AsyncSession, *, region: str, since: date, until: date) -> dict[date, Tally]:
    """Per Tokyo month of answering in [since, until): answers and the sum of their ratings."""
    region_id = await wallet.region_id(session, region=region)
    rows = await repo.monthly_ratings(session, region_id, tokyo_midnight(since), tokyo_midnight(until))
    return {month: Tally(answers, total) for month, answers, total in rows}
