"""The directory: who takes part — regions, residents and their wallets, merchants, merchant
classes, API keys of their terminals, and the notices residents are sent. Built on the ledger (a
wallet or a merchant is its accounts); used by everything above."""
