"""The 全銀 総合振込 file (the Japanese banks' fixed-length bulk transfer file) that pays merchants.

The layout is the Zengin standard's, as DOMAIN.md gives it: records of exactly 120 bytes in
Shift_JIS (cp932), each ended by CR LF; one header (`1`), one data record per transfer (`2`), a
trailer (`8`) with the count and the sum of the data records, and an end record (`9`). Numeric
fields (N) are right-aligned and zero-filled, text fields (C) left-aligned and space-filled.

Text is what the banks' systems take: half-width katakana, upper-case letters, digits, the space
and a few signs (`ZENGIN_CHARACTERS`), one byte each in cp932. `to_zengin` turns a name as people
type it (full-width katakana or hiragana, full-width or lower-case ASCII, ー, ・) into that set,
and refuses a name with anything it cannot carry (kanji, emoji) rather than dropping it: a payee
name the bank cannot read returns the transfer, or pays the wrong account holder's check.

`write` checks every field again as it writes: a file that leaves here is well formed or not
written at all (ValueError, a bug in the caller, as every input was validated when it was stored).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

RECORD_BYTES = 120
CRLF = b"\r\n"
TYPE_CODE = "21"  # 総合振込
CODE_DIVISION = "0"  # JIS / Shift_JIS (1 would be EBCDIC)
MAX_AMOUNT = 9_999_999_999  # the data record's 10 digits

_KATAKANA = "ｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜｦﾝﾞﾟ"
_SIGNS = " ().-/,｢｣"
ZENGIN_CHARACTERS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ" + _KATAKANA + _SIGNS)

# Full-width katakana to half-width (voiced ones as the base and ﾞ or ﾟ); small kana are written
# large, as the banks' name matching expects (ｯ is no character of the file).
_PLAIN = dict(zip(
    "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲン",
    "ｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜｦﾝ", strict=True,
))
_SMALL = dict(zip("ァィゥェォッャュョヮヵヶ", "ｱｲｳｴｵﾂﾔﾕﾖﾜｶｹ", strict=True))
_OLD = {"ヰ": "ｲ", "ヱ": "ｴ"}
_VOICED = dict(zip("ガギグゲゴザジズゼゾダヂヅデドバビブベボヴ", "ｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾊﾋﾌﾍﾎｳ", strict=True))
_SEMI_VOICED = dict(zip("パピプペポ", "ﾊﾋﾌﾍﾎ", strict=True))
_MARKS = {"ー": "-", "‐": "-", "−": "-", "–": "-", "—": "-", "・": ".", "、": ",", "。": ".", "「": "｢", "」": "｣"}


class AccountType(StrEnum):
    """預金種目, as the API names it; `code` is the file's digit."""

    ORDINARY = "ordinary"  # 普通
    CURRENT = "current"  # 当座
    SAVINGS = "savings"  # 貯蓄

    @property
    def code(self) -> str:
        return {"ordinary": "1", "current": "2", "savings": "4"}[self.value]

    @property
    def name_ja(self) -> str:
        return {"ordinary": "普通", "current": "当座", "savings": "貯蓄"}[self.value]


class NotZenginText(ValueError):
    """A name has characters the file cannot carry; `characters` are those, in order of appearance."""

    def __init__(self, value: str, characters: list[str]) -> None:
        super().__init__(f"{value!r} has characters a bank transfer name cannot carry: {''.join(characters)!r}")
        self.characters = characters


def to_zengin(value: str) -> str:
    """The name in the file's character set: NFKC (full-width ASCII and half-width kana made
    ordinary), hiragana as katakana, katakana half-width, letters upper-case, runs of spaces one.
    NotZenginText if anything is left outside the set."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFKC", value):
        if "ぁ" <= ch <= "ゖ":  # hiragana → katakana
            ch = chr(ord(ch) + 0x60)
        if ch in _VOICED:
            out += [_VOICED[ch], "ﾞ"]
        elif ch in _SEMI_VOICED:
            out += [_SEMI_VOICED[ch], "ﾟ"]
        elif ch in _PLAIN or ch in _SMALL or ch in _OLD:
            out.append(_PLAIN.get(ch) or _SMALL.get(ch) or _OLD[ch])
        elif ch in _MARKS:
            out.append(_MARKS[ch])
        elif ch.isspace():
            out.append(" ")
        elif "a" <= ch <= "z":
            out.append(ch.upper())
        else:
            out.append(ch)
    converted = " ".join("".join(out).split())
    refused = list(dict.fromkeys(ch for ch in converted if ch not in ZENGIN_CHARACTERS))
    if refused:
        raise NotZenginText(value, refused)
    return converted


def fit_name(value: str, width: int) -> str:
    """A bank's or branch's name (the zengin-code data's katakana) in the file's set, cut to
    `width`: the banks route by code, the name is only shown, so a long one is shortened."""
    return to_zengin(value)[:width].rstrip()


@dataclass(frozen=True)
class Account:
    """A bank account as the file names it: codes, names in the file's set, type, number."""

    bank_code: str  # 4 digits
    bank_name: str  # ≤ 15
    branch_code: str  # 3 digits
    branch_name: str  # ≤ 15
    account_type: AccountType
    account_number: str  # 7 digits


@dataclass(frozen=True)
class Requester:
    """振込依頼人: who sends the money (the consortium), its 委託者コード and name at its bank."""

    code: str  # 10 digits, given by the bank
    name: str  # ≤ 40
    account: Account


@dataclass(frozen=True)
class Transfer:
    """One payee and the yen it is sent. The customer codes (顧客コード, digits) come back on the
    bank's result file, so a returned transfer can be traced to its payout."""

    account: Account
    payee_name: str  # ≤ 30
    amount: int
    customer_code_1: str = ""
    customer_code_2: str = ""


def _n(value: int | str, width: int, what: str, *, blank_allowed: bool = False) -> str:
    text = str(value)
    if blank_allowed and text == "":
        return " " * width
    if not text.isascii() or not text.isdigit() or len(text) > width:
        raise ValueError(f"{what} must be at most {width} digits, got {value!r}")
    return text.rjust(width, "0")


def _c(value: str, width: int, what: str) -> str:
    if len(value) > width:
        raise ValueError(f"{what} is longer than {width} characters: {value!r}")
    if outside := [ch for ch in value if ch not in ZENGIN_CHARACTERS]:
        raise ValueError(f"{what} has characters outside the file's set: {''.join(outside)!r}")
    return value.ljust(width, " ")


def _exact(value: str, width: int, what: str) -> str:
    if len(value) != width or not value.isascii() or not value.isdigit():
        raise ValueError(f"{what} must be exactly {width} digits, got {value!r}")
    return value


def _record(fields: list[str]) -> bytes:
    record = "".join(fields).encode("cp932")
    assert len(record) == RECORD_BYTES, f"a record of {len(record)} bytes"
    return record + CRLF


def header(requester: Requester, transfer_date: date) -> bytes:
    a = requester.account
    return _record([
        "1", TYPE_CODE, CODE_DIVISION,
        _exact(requester.code, 10, "the requester code"),
        _c(requester.name, 40, "the requester name"),
        f"{transfer_date:%m%d}",
        _exact(a.bank_code, 4, "the requester's bank code"), _c(a.bank_name, 15, "the requester's bank name"),
        _exact(a.branch_code, 3, "the requester's branch code"), _c(a.branch_name, 15, "the requester's branch name"),
        AccountType(a.account_type).code, _exact(a.account_number, 7, "the requester's account number"),
        " " * 17,
    ])


def data(transfer: Transfer) -> bytes:
    a = transfer.account
    if not 0 < transfer.amount <= MAX_AMOUNT:
        raise ValueError(f"a transfer's amount must be 1 to {MAX_AMOUNT} yen, got {transfer.amount}")
    return _record([
        "2",
        _exact(a.bank_code, 4, "the payee's bank code"), _c(a.bank_name, 15, "the payee's bank name"),
        _exact(a.branch_code, 3, "the payee's branch code"), _c(a.branch_name, 15, "the payee's branch name"),
        " " * 4,  # 手形交換所番号: unused
        AccountType(a.account_type).code, _exact(a.account_number, 7, "the payee's account number"),
        _c(transfer.payee_name, 30, "the payee name"),
        _n(transfer.amount, 10, "the amount"),
        "0",  # 新規コード: neither first nor changed (the bank keeps no payee master for us)
        _n(transfer.customer_code_1, 10, "customer code 1", blank_allowed=True),
        _n(transfer.customer_code_2, 10, "customer code 2", blank_allowed=True),
        " ",  # 振込指定区分: the bank's default (telegraphic)
        " ",  # 識別表示: customer codes, not EDI information
        " " * 7,
    ])


def trailer(count: int, total: int) -> bytes:
    return _record(["8", _n(count, 6, "the record count"), _n(total, 12, "the total amount"), " " * 101])


def end() -> bytes:
    return _record(["9", " " * 119])


def write(requester: Requester, transfer_date: date, transfers: Sequence[Transfer]) -> bytes:
    """The whole file, transfers in the order given (a caller that sorts them gets the same bytes
    for the same transfers, every time). ValueError for a file with no transfer or a field that
    does not fit."""
    if not transfers:
        raise ValueError("a transfer file needs at least one transfer")
    records = [header(requester, transfer_date), *(data(t) for t in transfers)]
    records += [trailer(len(transfers), sum(t.amount for t in transfers)), end()]
    return b"".join(records)
