"""Business errors of paying at the shop."""

from services.wallet.ledger.errors import InsufficientBalance
from shared.errors import Conflict, NotFound, ServiceUnavailable, Unprocessable


class QRMalformed(Unprocessable):
    slug, title = "qr-malformed", "The scanned code is not a chiikipay merchant QR"


class QRChecksumMismatch(Unprocessable):
    slug, title = "qr-checksum-mismatch", "The scanned code fails its checksum (damaged or tampered)"


class QRCurrency(Unprocessable):
    slug, title = "qr-currency", "The scanned code is not for whole yen"


class QRForeign(Unprocessable):
    slug, title = "qr-foreign", "The scanned code belongs to another payment service or region"


class QRMismatch(Unprocessable):
    slug, title = "qr-mismatch", "The scanned code does not match the shop it names (forged or out of date)"


class StoreNotFound(NotFound):
    slug, title = "store-not-found", "No such store"


class StoreNameTaken(Conflict):
    slug, title = "store-name-taken", "The merchant already has a store of that name"


class MerchantInactive(Conflict):
    slug, title = "merchant-inactive", "The merchant is suspended or closed"


class AmountRequired(Unprocessable):
    slug, title = "amount-required", "A static QR needs the amount typed by the resident"


class AmountMismatch(Unprocessable):
    slug, title = "amount-mismatch", "The amount differs from the one in the shop's QR"


class PaymentRequestNotFound(NotFound):
    slug, title = "payment-request-not-found", "No such payment request"


class PaymentRequestExpired(Conflict):
    slug, title = "payment-request-expired", "The payment request has expired"


class PaymentRequestPaid(Conflict):
    slug, title = "payment-request-paid", "The payment request was already paid"


class PaymentRequestCancelled(Conflict):
    slug, title = "payment-request-cancelled", "The payment request was cancelled"


class PaymentNotFound(NotFound):
    slug, title = "payment-not-found", "No such payment"


class RefundExceedsRemaining(Conflict):
    slug, title = "refund-exceeds-remaining", "The refund is larger than what remains of the payment"


class RefundWindowClosed(Conflict):
    slug, title = "refund-window-closed", "The payment can no longer be refunded by the shop"


class SelfTransfer(Unprocessable):
    slug, title = "self-transfer", "A merchant cannot pay itself"


class InvalidFeePlan(Unprocessable):
    slug, title = "invalid-fee-plan", "The fee plan is not acceptable"


class CpmUnavailable(ServiceUnavailable):
    slug, title = "cpm-unavailable", "Customer-presented codes are unavailable (Redis is down); scan the shop's QR instead"


class CpmTokenExpired(Conflict):
    slug, title = "cpm-token-expired", "The resident's code has expired; ask for a fresh one"


class CpmTokenUsed(Conflict):
    slug, title = "cpm-token-used", "The resident's code was already used"


class CardNotFound(NotFound):
    slug, title = "card-not-found", "No such resident card"


class CardLocked(Conflict):
    slug, title = "card-locked", "The card is locked after too many wrong PINs; the resident can unlock it at the counter"


class CardLost(Conflict):
    slug, title = "card-lost", "The card was reported lost or replaced and can no longer pay"


class CardPinWrong(Unprocessable):
    slug, title = "card-pin-wrong", "The PIN is wrong"


class CardDayLimitExceeded(Conflict):
    slug, title = "card-day-limit-exceeded", "The card's daily limit would be exceeded"


class NotEligibleHere(InsufficientBalance):
    slug, title = "balance-not-eligible-here", "Not enough of the balance may be spent at this shop"


class InvalidDiscount(Unprocessable):
    slug, title = "invalid-discount", "The discount is not acceptable for this payment"


class SponsorNotFound(NotFound):
    slug, title = "sponsor-not-found", "No such sponsor"


class SponsorNameTaken(Conflict):
    slug, title = "sponsor-name-taken", "The region already has a sponsor of that name"


class SponsorBudgetExhausted(Conflict):
    slug, title = "sponsor-budget-exhausted", "The sponsor's budget cannot cover the discount"


class InvalidAmount(Unprocessable):
    slug, title = "invalid-amount", "The amount must be a positive number of yen"


class PayoutExceedsBalance(Conflict):
    slug, title = "payout-exceeds-balance", "The payout is larger than the merchant's balance"


class PayoutKeyReused(Conflict):
    slug, title = "payout-key-reused", "The payout key was used for another payout"


class RedemptionExceedsPoints(Conflict):
    slug, title = "redemption-exceeds-points", "The redemption is larger than the merchant's points"


class RedemptionKeyReused(Conflict):
    slug, title = "redemption-key-reused", "The redemption key was used for another redemption"
