"""In-app surveys (/v1/surveys): the operator opens one; a resident answers each open survey
once with a rating of 1 to 5; operators and auditors read the tally. The ratings are the KPI 満足度."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter

from services.settlement.surveys import service
from services.settlement.surveys.errors import AnswerNotFound
from services.settlement.surveys.models import Survey, SurveyAnswer
from services.settlement.surveys.schemas import AnswerIn, AnswerOut, SurveyCreate, SurveyOut, SurveyTallyOut
from shared.audit import Actor
from shared.auth import Principal, Role, require
from shared.db import SessionDep
from shared.deps import ClockDep
from shared.idempotency import IdempotencyDep
from shared.openapi import PROBLEMS
from shared.pagination import CursorParam, LimitParam, Page, decode_cursor, page_of

router = APIRouter(prefix="/v1/surveys", tags=["surveys"])

Resident = Annotated[Principal, require(Role.RESIDENT)]
Operator = Annotated[Principal, require(Role.OPERATOR)]
Reader = Annotated[Principal, require(Role.RESIDENT, Role.OPERATOR, Role.AUDITOR)]
Overseer = Annotated[Principal, require(Role.OPERATOR, Role.AUDITOR)]


def survey_out(found: Survey) -> SurveyOut:
    return SurveyOut.model_validate(found)


def answer_out(found: SurveyAnswer) -> AnswerOut:
    return AnswerOut.model_validate(found)


@router.post("", status_code=201, response_model=SurveyOut, responses=PROBLEMS)
async def create_survey(body: SurveyCreate, principal: Operator, session: SessionDep, clock: ClockDep,
                        idem: IdempotencyDep):
    """A survey open to the region's residents from `opens_at` until `closes_at` (operator; audited)."""
    if replay := await idem.replay():
        return replay
    made = await service.create_survey(
        session, clock, region=principal.region_code, actor=Actor.of(principal), title_ja=body.title_ja,
        title=body.title, question_ja=body.question_ja, opens_at=body.opens_at, closes_at=body.closes_at,
    )
    return await idem.respond(201, survey_out(made))


@router.get("", response_model=Page[SurveyOut], responses=PROBLEMS)
async def list_surveys(
    principal: Reader, session: SessionDep, clock: ClockDep, cursor: CursorParam = None, limit: LimitParam = 50
) -> Page[SurveyOut]:
    """A resident sees the surveys open now; operators and auditors every survey of the region."""
    found = await service.surveys(
        session, clock, region=principal.region_code, open_only=principal.role == Role.RESIDENT,
        after_id=decode_cursor(cursor), limit=limit + 1,
    )
    return page_of([survey_out(s) for s in found], [s.id for s in found], limit)


@router.get("/{survey_id}", response_model=SurveyTallyOut, responses=PROBLEMS)
async def get_survey(survey_id: uuid.UUID, principal: Overseer, session: SessionDep) -> SurveyTallyOut:
    """The survey and its tally: answers and mean rating (operator, auditor; comments are not shown)."""
    found = await service.survey(session, region=principal.region_code, survey_id=survey_id)
    tally = await service.tally(session, region=principal.region_code, survey_id=survey_id)
    mean = f"{tally.rating_sum / tally.answers:.2f}" if tally.answers else None
    return SurveyTallyOut(**survey_out(found).model_dump(), answers=tally.answers, mean_rating=mean)


@router.post("/{survey_id}/answers", status_code=201, response_model=AnswerOut, responses=PROBLEMS)
async def answer_survey(
    survey_id: uuid.UUID, body: AnswerIn, principal: Resident, session: SessionDep, clock: ClockDep,
    idem: IdempotencyDep,
):
    """My answer to an open survey: once (survey-already-answered), never changed."""
    if replay := await idem.replay():
        return replay
    made = await service.answer(
        session, clock, region=principal.region_code, subject=principal.subject, survey_id=survey_id,
        rating=body.rating, comment=body.comment,
    )
    return await idem.respond(201, answer_out(made))


@router.get("/{survey_id}/answers/me", response_model=AnswerOut, responses=PROBLEMS)
async def my_answer(survey_id: uuid.UUID, principal: Resident, session: SessionDep) -> AnswerOut:
    found = await service.my_answer(session, region=principal.region_code, subject=principal.subject,
                                    survey_id=survey_id)
    if found is None:
        raise AnswerNotFound("You have not answered this survey.")
    return answer_out(found)
