"""Problems of expiry runs."""

from shared.errors import Conflict, Unprocessable


class ExpiryAlreadyRun(Conflict):
    slug, title = "expiry-already-run", "Expiry has already run for this date"


class ExpiryDateInFuture(Unprocessable):
    slug, title = "expiry-date-in-future", "Expiry cannot run for a day that has not started"


class ExpiryDateBeforeRegion(Unprocessable):
    slug, title = "expiry-date-before-region", "Expiry cannot run for a day before the region existed"
