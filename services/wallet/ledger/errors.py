"""Problems of posting: an account that is not active, too little to pay, a cap passed."""

from shared.errors import Conflict, Problem


class AccountInactive(Conflict):
    slug, title = "account-inactive", "The account is suspended or closed"


class BalanceCapExceeded(Conflict):
    slug, title = "balance-cap-exceeded", "The top-up would push the balance above the cap"


class InsufficientBalance(Problem):
    status, slug, title = 402, "insufficient-balance", "The balance is too low"
