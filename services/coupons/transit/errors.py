"""Transit problems, each with its HTTP status and stable problem type. The refusals of a code
(forged, stale, other operator, expired) are raised by the offline verifier (codes.py) as well,
so a validator device and the server refuse a code with the same type."""

from shared.errors import Conflict, Forbidden, NotFound, Unprocessable


class TransitOperatorNotFound(NotFound):
    slug, title = "transit-operator-not-found", "This merchant is not a bus operator"


class TransitOperatorExists(Conflict):
    slug, title = "transit-operator-exists", "This merchant is already a bus operator"


class OperatorHasNoStore(Conflict):
    slug, title = "operator-has-no-store", "The bus operator has no store to take the fare at"


class FareProductNotFound(NotFound):
    slug, title = "fare-product-not-found", "No such fare product"


class InvalidFareProduct(Unprocessable):
    slug, title = "invalid-fare-product", "A multi-ride product needs its number of rides (and only it), and a fare"


class FareProductNameTaken(Conflict):
    slug, title = "fare-product-name-taken", "The bus operator already has a fare product of that name"


class FareProductRetired(Conflict):
    slug, title = "fare-product-retired", "The fare product is retired and no longer sold"


class RiderCategoryNotOffered(Unprocessable):
    slug, title = "rider-category-not-offered", "The fare product has no fare for this rider category"


class TicketNotFound(NotFound):
    slug, title = "ticket-not-found", "No such ticket"


class TicketExpired(Conflict):
    slug, title = "ticket-expired", "The ticket is expired"


class TicketUsedUp(Conflict):
    slug, title = "ticket-used-up", "The ticket has no rides left"


class TicketReused(Conflict):
    slug, title = "ticket-reused", "The single-ride ticket was already used"


class TicketCodeForged(Unprocessable):
    slug, title = "ticket-code-forged", "The ticket code is not one the region signed"


class TicketCodeStale(Unprocessable):
    slug, title = "ticket-code-stale", "The ticket code is not of the current 30-second step (a screenshot?)"


class TicketOtherOperator(Forbidden):
    slug, title = "ticket-other-operator", "The ticket is for another bus operator"


class ScanIdReused(Unprocessable):
    slug, title = "scan-id-reused", "This scan id was already used for a different scan"


class ScanInFuture(Unprocessable):
    slug, title = "scan-in-future", "The offline scan is dated after the server's clock"


class ValidatorNotFound(NotFound):
    slug, title = "validator-not-found", "No such validator"
