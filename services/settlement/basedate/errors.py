"""Problems of the base-date report, each with its HTTP status and stable problem type."""

from shared.errors import Unprocessable


class InvalidBaseDate(Unprocessable):
    slug, title = "invalid-base-date", "A base date is 31 March or 30 September"


class BaseDateNotPassed(Unprocessable):
    slug, title = "base-date-not-passed", "The base date has not ended yet"
