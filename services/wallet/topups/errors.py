"""Problems of top-ups and of the bank webhook."""

from shared.errors import Conflict, Unauthenticated, Unprocessable


class AmountBelowMinimum(Unprocessable):
    slug, title = "amount-below-minimum", "The amount is below the region's minimum top-up"


class AmountAboveMaximum(Unprocessable):
    slug, title = "amount-above-maximum", "The amount is above the region's maximum top-up"


class AmountNotMultipleOfStep(Unprocessable):
    slug, title = "amount-not-multiple-of-step", "The amount is not a multiple of the region's top-up step"


class WebhookSignatureInvalid(Unauthenticated):
    slug, title = "webhook-signature-invalid", "The webhook signature does not verify"


class WebhookTimestampStale(Unauthenticated):
    slug, title = "webhook-timestamp-stale", "The webhook timestamp is too old or in the future"


class WebhookReplayed(Conflict):
    slug, title = "webhook-replayed", "This bank event was already processed"
