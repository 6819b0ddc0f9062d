"""The wallet's business errors, each with its HTTP status and stable problem type."""

from shared.errors import Conflict, NotFound, Problem, Unauthenticated, Unprocessable


class RegionNotFound(NotFound):
    slug, title = "region-not-found", "No such region"


class RegionCodeTaken(Conflict):
    slug, title = "region-code-taken", "A region with this code is already hosted here"


class InvalidRegionName(Unprocessable):
    slug, title = "invalid-region-name", "The region's name cannot be carried by its QR codes"


class NameNotPrintable(Unprocessable):
    slug, title = "name-not-printable", "A name the shop's QR code shows holds characters a code cannot carry"


class WalletNotFound(NotFound):
    slug, title = "wallet-not-found", "No such wallet"


class MerchantNotFound(NotFound):
    slug, title = "merchant-not-found", "No such merchant"


class ApiKeyNotFound(NotFound):
    slug, title = "api-key-not-found", "No such API key"


class AccountInactive(Conflict):
    slug, title = "account-inactive", "The account is suspended or closed"


class MerchantNameTaken(Conflict):
    slug, title = "merchant-name-taken", "A merchant with this name already exists in the region"


class InvalidRegistrationNumber(Unprocessable):
    slug, title = "invalid-registration-number", "Not a valid qualified-invoice registration number"


class AmountBelowMinimum(Unprocessable):
    slug, title = "amount-below-minimum", "The amount is below the region's minimum top-up"


class AmountAboveMaximum(Unprocessable):
    slug, title = "amount-above-maximum", "The amount is above the region's maximum top-up"


class AmountNotMultipleOfStep(Unprocessable):
    slug, title = "amount-not-multiple-of-step", "The amount is not a multiple of the region's top-up step"


class InvalidRegionSettings(Unprocessable):
    slug, title = "invalid-region-settings", "The region settings are inconsistent"


class BalanceCapExceeded(Conflict):
    slug, title = "balance-cap-exceeded", "The top-up would push the balance above the cap"


class InsufficientBalance(Problem):
    status, slug, title = 402, "insufficient-balance", "The balance is too low"


class WebhookSignatureInvalid(Unauthenticated):
    slug, title = "webhook-signature-invalid", "The webhook signature does not verify"


class WebhookTimestampStale(Unauthenticated):
    slug, title = "webhook-timestamp-stale", "The webhook timestamp is too old or in the future"


class WebhookReplayed(Conflict):
    slug, title = "webhook-replayed", "This bank event was already processed"


class ExpiryAlreadyRun(Conflict):
    slug, title = "expiry-already-run", "Expiry has already run for this date"


class ExpiryDateInFuture(Unprocessable):
    slug, title = "expiry-date-in-future", "Expiry cannot run for a day that has not started"


class ExpiryDateBeforeRegion(Unprocessable):
    slug, title = "expiry-date-before-region", "Expiry cannot run for a day before the region existed"
