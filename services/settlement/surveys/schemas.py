"""Bodies of surveys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field

from shared.clock import Instant
from shared.schemas import Schema
from shared.text import text

Title = text(100)
Question = text(300)
Comment = text(1000, required=False)


class SurveyCreate(Schema):
    title_ja: Title
    title: Title
    question_ja: Question
    opens_at: Instant
    closes_at: Instant


class SurveyOut(Schema):
    id: uuid.UUID
    title_ja: str
    title: str
    question_ja: str
    opens_at: datetime
    closes_at: datetime


class SurveyTallyOut(SurveyOut):
    answers: int
    mean_rating: str | None  # two places; None without answers


class AnswerIn(Schema):
    rating: Annotated[int, Field(ge=1, le=5)]
    comment: text(1000, required=False) = None  # type: ignore[valid-type]


class AnswerOut(Schema):
    survey_id: uuid.UUID
    rating: int
    comment: str | None
    answered_at: datetime
