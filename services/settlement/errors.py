"""Settlement problems, each with its HTTP status and stable problem type."""

from shared.errors import NotFound, Unprocessable


class BankCodeUnknown(Unprocessable):
    slug, title = "bank-code-unknown", "No bank has this code (zengin-code data)"


class BranchCodeUnknown(Unprocessable):
    slug, title = "branch-code-unknown", "The bank has no branch of this code (zengin-code data)"


class HolderNameInvalid(Unprocessable):
    slug, title = "holder-name-invalid", "The account holder's name cannot be carried by a bank transfer file"


class RequesterNameInvalid(Unprocessable):
    slug, title = "requester-name-invalid", "The requester's name cannot be carried by a bank transfer file"


class PayoutAccountNotFound(NotFound):
    slug, title = "payout-account-not-found", "The merchant has no payout bank account"


class SourceAccountNotFound(NotFound):
    slug, title = "source-account-not-found", "The region has no source account to send payouts from"


class DayOutOfRange(Unprocessable):
    slug, title = "day-out-of-range", "Settlement has periods for the days of 2000 to 2099 only"
