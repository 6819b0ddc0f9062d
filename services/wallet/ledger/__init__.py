"""The ledger, the wallet's bottom layer: accounts, immutable journals and their entries, value
lots, posting (`service.post_journal`, the one way value moves in Python) and the ledger's own
invariants (`repository.find_violations`). It knows nothing of who holds an account or why value
moves."""
