"""Problems of the KPI report, each with its HTTP status and stable problem type."""

from shared.errors import NotFound, Unprocessable


class UnknownKpi(NotFound):
    slug, title = "kpi-not-found", "No such KPI"


class UnknownFormat(Unprocessable):
    slug, title = "unknown-format", "The report is not made in this format"


class FiscalYearNotBegun(Unprocessable):
    slug, title = "fiscal-year-not-begun", "The fiscal year has not begun"
