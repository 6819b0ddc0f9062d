"""Business errors of coupons. A refusal that comes from the wallet (sponsor-budget-exhausted,
insufficient-balance, a scanned code's problems …) keeps the wallet's own problem type."""

from shared.errors import Conflict, NotFound, Unprocessable


class CouponNotFound(NotFound):
    slug, title = "coupon-not-found", "No such coupon"


class CouponOutOfStock(Conflict):
    slug, title = "coupon-out-of-stock", "The coupon has no stock left"


class CouponNotYetValid(Conflict):
    slug, title = "coupon-not-yet-valid", "The coupon's validity has not begun"


class CouponExpired(Conflict):
    slug, title = "coupon-expired", "The coupon's validity has ended"


class CouponNotInAudience(Conflict):
    slug, title = "coupon-not-in-audience", "The coupon is offered to a segment the resident is not in"


class CouponNotActive(Conflict):
    slug, title = "coupon-not-active", "The coupon is not active (a draft, paused or ended)"


class ClaimNotFound(NotFound):
    slug, title = "claim-not-found", "No such claimed coupon"


class CouponAlreadyUsed(Conflict):
    slug, title = "coupon-already-used", "The claimed coupon was already used"


class CouponLimitReached(Conflict):
    slug, title = "coupon-limit-reached", "The resident already holds as many of this coupon as one may"


class BelowMinimumSpend(Unprocessable):
    slug, title = "below-minimum-spend", "The price is below the coupon's minimum spend"


class CouponNotValidAtStore(Conflict):
    slug, title = "coupon-not-valid-at-store", "The coupon is not valid at this store"


class CouponNotForPayment(Conflict):
    slug, title = "coupon-not-for-payment", "A free item's coupon is redeemed by its code at the shop, without a payment"


class CouponNotEditable(Conflict):
    slug, title = "coupon-not-editable", "The coupon can no longer be changed this way"


class InvalidCoupon(Unprocessable):
    slug, title = "invalid-coupon", "The coupon's fields do not fit together"
