"""What holders read about their money: a wallet's balance lot by lot, the history of a wallet's or
a merchant's accounts, notices, the region's system accounts."""
