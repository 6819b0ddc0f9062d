"""Tables of history imports (migration 0019, schema `settlement`): the jobs, their files and the
problems of a refused one. What an import writes is the wallet's (services/wallet/history)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from shared.models import Base

SCHEMA = "settlement"


class ImportStatus(StrEnum):
    CHECKING = "checking"  # accepted; every row is being checked, nothing written yet
    WRITING = "writing"  # every row passed; the history is being written in one transaction
    DONE = "done"  # committed: every row written, or skipped as imported before
    REJECTED = "rejected"  # bad rows or an overlap (all listed): nothing written
    FAILED = "failed"  # an unexpected error: nothing written; importing the file again is safe


IN_PROGRESS = frozenset({ImportStatus.CHECKING, ImportStatus.WRITING})


class HistoryImport(Base):
    __tablename__ = "history_imports"
    __table_args__ = (Index("ix_history_imports_region", "region_id", "id"), {"schema": SCHEMA})

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    region_id: Mapped[uuid.UUID]  # the wallet's region (its id, as public.region_id gives it)
    region_code: Mapped[str]
    status: Mapped[str]
    filename: Mapped[str | None]
    content_sha256: Mapped[str]
    size_bytes: Mapped[int]
    total_rows: Mapped[int] = mapped_column(Integer)
    checked_rows: Mapped[int] = mapped_column(Integer)
    written_rows: Mapped[int] = mapped_column(Integer)
    # Once done: rows written and skipped per record kind, openings posted and what they carried.
    counts: Mapped[dict[str, Any] | None]
    error_count: Mapped[int] = mapped_column(Integer)
    problem_type: Mapped[str | None]  # a rejected import's problem (history-refused, history-overlaps …)
    detail: Mapped[str | None]
    created_by: Mapped[str]
    created_role: Mapped[str]
    request_id: Mapped[str | None]
    attempts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class HistoryImportFile(Base):
    __tablename__ = "history_import_files"
    __table_args__ = {"schema": SCHEMA}

    import_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.history_imports.id"), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)


class HistoryImportError(Base):
    __tablename__ = "history_import_errors"
    __table_args__ = (Index("ix_history_import_errors_import", "import_id", "id"), {"schema": SCHEMA})

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    import_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(f"{SCHEMA}.history_imports.id"))
    line: Mapped[int | None] = mapped_column(Integer)  # of the file (the header is line 1); None: the whole file
    row_key: Mapped[str | None]
    field: Mapped[str | None]
    code: Mapped[str]
    detail: Mapped[str]
