"""Problems of checkouts, each with its HTTP status and stable problem type: a checkout that is
no longer open says why."""

from shared.errors import Conflict, NotFound


class CheckoutNotFound(NotFound):
    slug, title = "checkout-not-found", "No such checkout"


class CheckoutExpired(Conflict):
    slug, title = "checkout-expired", "The checkout expired before it was paid"


class CheckoutAlreadyPaid(Conflict):
    slug, title = "checkout-already-paid", "The checkout is already paid"


class CheckoutCancelled(Conflict):
    slug, title = "checkout-cancelled", "The partner cancelled the checkout"


class CheckoutDeclined(Conflict):
    slug, title = "checkout-declined", "The resident declined the checkout"


class CheckoutNotPaid(Conflict):
    slug, title = "checkout-not-paid", "The checkout is not paid: there is nothing to refund"
