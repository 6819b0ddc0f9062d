"""Problems of top-ups and of the bank webhook (its signature's are those of every webhook, shared/webhooks.py)."""

from shared.errors import Conflict, Unprocessable


class AmountBelowMinimum(Unprocessable):
    slug, title = "amount-below-minimum", "The amount is below the region's minimum top-up"


class AmountAboveMaximum(Unprocessable):
    slug, title = "amount-above-maximum", "The amount is above the region's maximum top-up"


class AmountNotMultipleOfStep(Unprocessable):
    slug, title = "amount-not-multiple-of-step", "The amount is not a multiple of the region's top-up step"


class WebhookReplayed(Conflict):
    slug, title = "webhook-replayed", "This bank event was already processed"
