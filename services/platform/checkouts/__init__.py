"""Online checkouts: a partner service's order, paid by a resident in the app as an ordinary
wallet payment to the partner's merchant."""
