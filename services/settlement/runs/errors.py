"""Problems of settlement runs, each with its HTTP status and stable problem type."""

from shared.errors import Conflict, NotFound, Unprocessable


class PeriodInvalid(Unprocessable):
    slug, title = "period-invalid", "Not a settlement period: YYYY-MM, YYYY-MM-H1, YYYY-MM-H2 or YYYY-MM-DD"


class PeriodNotEnded(Conflict):
    slug, title = "period-not-ended", "The period has not ended (with its grace period): it cannot be settled yet"


class RunInProgress(Conflict):
    slug, title = "settlement-run-in-progress", "Another settlement run of this region is in progress"


class RunNotFound(NotFound):
    slug, title = "settlement-run-not-found", "No settlement run of this period"


class StatementNotFound(NotFound):
    slug, title = "statement-not-found", "The run has no statement of this merchant"


class RunFileNotFound(NotFound):
    slug, title = "run-file-not-found", "The run has no such file"
