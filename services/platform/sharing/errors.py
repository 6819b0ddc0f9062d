"""Problems of data sharing, each with its HTTP status and stable problem type."""

from shared.errors import Unprocessable


class DayNotEnded(Unprocessable):
    slug, title = "day-not-ended", "The day has not ended: its aggregate would be incomplete"
