"""Japanese banks and branches by their codes (金融機関コード 4 digits, 支店コード 3), from the
`zengin-code` package's data (the Zengin-Code project's, updated as banks merge and branches
close). A payout account is refused when its bank or branch is not in it, and a run holds back a
merchant whose stored account names one that has since disappeared."""

from __future__ import annotations

from dataclasses import dataclass

from zengin_code import Bank


@dataclass(frozen=True)
class Branch:
    bank_code: str
    bank_name: str  # as the bank calls itself (みずほ)
    bank_kana: str  # its reading in full-width katakana (ミズホ), for the transfer file
    branch_code: str
    branch_name: str
    branch_kana: str


def bank_known(bank_code: str) -> bool:
    return bank_code in Bank.all


def branch(bank_code: str, branch_code: str) -> Branch | None:
    """The branch, None if the bank or its branch is unknown."""
    bank = Bank.all.get(bank_code)
    found = bank.branches.get(branch_code) if bank is not None else None
    if found is None:
        return None
    return Branch(bank.code, bank.name, bank.kana, found.code, found.name, found.kana)
