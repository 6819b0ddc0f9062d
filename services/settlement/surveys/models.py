"""Tables of the in-app surveys (schema `settlement`, migration 0019) whose 1–5 ratings give
the KPI 満足度: a survey the operator opens for a window, and one answer per resident.

Residents are named by their token subject and regions by the wallet's id, without foreign keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, SmallInteger
from sqlalchemy.orm import Mapped, mapped_column

from shared.models import Base

SCHEMA = "settlement"


class Survey(Base):
    __tablename__ = "surveys"
    __table_args__ = (
        CheckConstraint("opens_at < closes_at", "window"),
        Index("ix_surveys_region_id_opens_at", "region_id", "opens_at"),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    title_ja: Mapped[str]
    title: Mapped[str]
    question_ja: Mapped[str]
    opens_at: Mapped[datetime]
    closes_at: Mapped[datetime]
    created_by: Mapped[str]
    created_at: Mapped[datetime]


class SurveyAnswer(Base):
    """A resident's one answer to a survey: a rating of 1 to 5 and an optional comment."""

    __tablename__ = "survey_answers"
    __table_args__ = (
        CheckConstraint("rating BETWEEN 1 AND 5", "rating"),
        CheckConstraint("comment IS NULL OR char_length(comment) <= 1000", "comment"),
        Index("ix_survey_answers_region_id_answered_at", "region_id", "answered_at"),
        {"schema": SCHEMA},
    )

    survey_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.surveys.id"), primary_key=True)
    subject: Mapped[str] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]
    rating: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None]
    answered_at: Mapped[datetime]
