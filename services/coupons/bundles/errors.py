"""Problems of bundles, each with its HTTP status and stable problem type. A part's own refusal
(a coupon out of stock, a sponsor's budget short …) is named inside bundle-part-refused."""

from shared.errors import Conflict, NotFound, Unprocessable


class BundleNotFound(NotFound):
    slug, title = "bundle-not-found", "No such bundle"


class InvalidBundle(Unprocessable):
    slug, title = "invalid-bundle", "The bundle's fields do not fit together"


class BundleNotEditable(Conflict):
    slug, title = "bundle-not-editable", "The bundle cannot move to that state from its own"


class BundlePartNotReady(Conflict):
    slug, title = "bundle-part-not-ready", "A part of the bundle is not on offer (a coupon not active, a fare product retired)"


class BundleNotAvailable(Conflict):
    slug, title = "bundle-not-available", "The bundle is not being offered (not distributed yet, or ended)"


class BundleNotStarted(Conflict):
    slug, title = "bundle-not-started", "The bundle cannot be claimed before its start"


class BundleExpired(Conflict):
    slug, title = "bundle-expired", "The bundle's claiming period is over"


class BundleNotInAudience(Conflict):
    slug, title = "bundle-not-in-audience", "The bundle is offered to a segment the resident is not in"


class BundleAlreadyClaimed(Conflict):
    slug, title = "bundle-already-claimed", "The resident has claimed this bundle already"


class BundlePartRefused(Conflict):
    slug, title = "bundle-part-refused", "A part of the bundle cannot be claimed; nothing was claimed"


class InvalidRideWindow(Unprocessable):
    slug, title = "invalid-ride-window", "N and M are whole days from 1 to 366"


class InvalidCountPeriod(Unprocessable):
    slug, title = "invalid-count-period", "Counts are given for 1 to 400 days"
