"""Premium-campaign problems, each with its HTTP status and stable problem type."""

from shared.errors import Conflict, NotFound, Problem, Unprocessable


class OfferNotFound(NotFound):
    slug, title = "premium-offer-not-found", "The campaign has no premium offer"


class OfferExists(Conflict):
    slug, title = "premium-offer-exists", "The campaign already has a premium offer"


class InvalidOffer(Unprocessable):
    slug, title = "invalid-premium-offer", "The premium offer's settings do not fit together"


class WrongSaleMode(Conflict):
    slug, title = "premium-wrong-sale-mode", "The offer is not sold this way"


class SaleNotOpen(Conflict):
    slug, title = "premium-sale-not-open", "The sale (or application period) has not opened yet"


class SaleClosed(Conflict):
    slug, title = "premium-sale-closed", "The sale (or application period) is closed"


class PersonLimitExceeded(Conflict):
    slug, title = "premium-person-limit-exceeded", "More sets than one person may have"


class HouseholdLimitExceeded(Conflict):
    slug, title = "premium-household-limit-exceeded", "More sets than one household may have"


class SoldOut(Conflict):
    slug, title = "premium-sold-out", "Not enough sets are left"


class BudgetExhausted(Problem):
    status, slug, title = 402, "budget-exhausted", "The campaign budget cannot cover the premium of these sets"


class AlreadyApplied(Conflict):
    slug, title = "premium-already-applied", "The resident has already applied for this campaign"


class ApplicationNotFound(NotFound):
    slug, title = "premium-application-not-found", "No such application"


class NotDrawnYet(Conflict):
    slug, title = "premium-not-drawn", "The lottery has not been drawn yet"


class AlreadyDrawn(Conflict):
    slug, title = "premium-already-drawn", "The lottery has already been drawn"


class DrawTooEarly(Conflict):
    slug, title = "premium-draw-too-early", "The application period has not closed yet"


class NotAWinner(Conflict):
    slug, title = "premium-not-won", "The application did not win sets to pay for"


class AlreadyPaid(Conflict):
    slug, title = "premium-already-paid", "The won sets are already paid"


class WinReleased(Conflict):
    slug, title = "premium-win-released", "The payment deadline passed; the won sets were released"


class DeadlineNotPassed(Conflict):
    slug, title = "premium-deadline-not-passed", "Unpaid wins can be released only after the payment deadline"


class PurchaseNotFound(NotFound):
    slug, title = "premium-purchase-not-found", "No such premium purchase"
