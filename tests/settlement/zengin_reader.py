"""An independent reader of 全銀 総合振込 files, written for the tests from DOMAIN.md's layout and
the Zengin standard, sharing nothing with services/settlement/zengin.py: its own field table, its
own character set (as cp932 bytes, not Python characters), its own checks. It reads a file back
and says what is wrong with it; a test that writes with one and reads with the other can fail
when the writer is wrong, which a round trip through the writer's own code could not.
"""

from __future__ import annotations

from dataclasses import dataclass

# The bytes a record may hold: space, ( ) , - . /, digits, A-Z, ｢ ｣ (0xA2, 0xA3), ｦ (0xA6),
# ｱ-ﾝ (0xB1-0xDD), ﾞ ﾟ (0xDE, 0xDF). Small kana (0xA7-0xAF), ｰ (0xB0), lower case, kanji: none.
ALLOWED = frozenset(
    [0x20, 0x28, 0x29, 0x2C, 0x2D, 0x2E, 0x2F, 0xA2, 0xA3, 0xA6, 0xDE, 0xDF]
    + list(range(0x30, 0x3A)) + list(range(0x41, 0x5B)) + list(range(0xB1, 0xDE))
)

# (name, width, kind): N digits (zero-filled), C text (space-filled), B blank.
HEADER = [("kind", 1, "N"), ("type_code", 2, "N"), ("code_division", 1, "N"), ("requester_code", 10, "N"),
          ("requester_name", 40, "C"), ("transfer_date", 4, "N"), ("bank_code", 4, "N"), ("bank_name", 15, "C"),
          ("branch_code", 3, "N"), ("branch_name", 15, "C"), ("account_type", 1, "N"), ("account_number", 7, "N"),
          ("dummy", 17, "B")]
DATA = [("kind", 1, "N"), ("bank_code", 4, "N"), ("bank_name", 15, "C"), ("branch_code", 3, "N"),
        ("branch_name", 15, "C"), ("clearing_house", 4, "N?"), ("account_type", 1, "N"), ("account_number", 7, "N"),
        ("payee_name", 30, "C"), ("amount", 10, "N"), ("new_code", 1, "N"), ("customer_code_1", 10, "N?"),
        ("customer_code_2", 10, "N?"), ("transfer_flag", 1, "C"), ("identification", 1, "C"), ("dummy", 7, "B")]
TRAILER = [("kind", 1, "N"), ("count", 6, "N"), ("total", 12, "N"), ("dummy", 101, "B")]
END = [("kind", 1, "N"), ("dummy", 119, "B")]
LAYOUTS = {"1": HEADER, "2": DATA, "8": TRAILER, "9": END}


class Malformed(AssertionError):
    pass


@dataclass
class TransferFile:
    header: dict[str, str]
    data: list[dict[str, str]]
    trailer: dict[str, str]


def _fields(record: bytes, layout: list[tuple[str, int, str]], number: int) -> dict[str, str]:
    assert sum(width for _, width, _ in layout) == 120, "the table itself"
    out, at = {}, 0
    for name, width, kind in layout:
        raw = record[at:at + width]
        at += width
        text = raw.decode("cp932")
        if kind == "N" and not (raw.isdigit() and len(raw) == width):
            raise Malformed(f"record {number}: {name} is not {width} digits: {raw!r}")
        if kind == "N?" and not (raw.isdigit() or raw == b" " * width):
            raise Malformed(f"record {number}: {name} is neither digits nor blank: {raw!r}")
        if kind == "B" and raw != b" " * width:
            raise Malformed(f"record {number}: {name} is not blank: {raw!r}")
        if kind == "C" and text.startswith(" ") and text.strip():
            raise Malformed(f"record {number}: {name} is not left-aligned: {raw!r}")
        out[name] = text.rstrip() if kind == "C" else text
    return out


def read(content: bytes) -> TransferFile:
    if not content.endswith(b"\r\n"):
        raise Malformed("the file does not end with CR LF")
    records = content[:-2].split(b"\r\n")
    for number, record in enumerate(records, 1):
        if len(record) != 120:
            raise Malformed(f"record {number} is {len(record)} bytes, not 120")
        if b"\r" in record or b"\n" in record:
            raise Malformed(f"record {number} holds a line break")
        if outside := sorted({b for b in record if b not in ALLOWED}):
            raise Malformed(f"record {number} has bytes outside the character set: {[hex(b) for b in outside]}")
    kinds = "".join(chr(r[0]) for r in records)
    if len(kinds) < 4 or kinds[0] != "1" or kinds[-2:] != "89" or set(kinds[1:-2]) != {"2"}:
        raise Malformed(f"records are not header, data…, trailer, end: {kinds!r}")
    parsed = [_fields(r, LAYOUTS[k], n) for n, (r, k) in enumerate(zip(records, kinds, strict=True), 1)]
    header, data, trailer = parsed[0], parsed[1:-2], parsed[-2]
    if header["type_code"] != "21" or header["code_division"] != "0":
        raise Malformed(f"not a Shift_JIS 総合振込 header: {header['type_code']} / {header['code_division']}")
    month, day = int(header["transfer_date"][:2]), int(header["transfer_date"][2:])
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise Malformed(f"transfer date {header['transfer_date']} is no MMDD")
    for rec in [header, *data]:
        if rec["account_type"] not in ("1", "2", "4", "9"):
            raise Malformed(f"account type {rec['account_type']} is none of 普通 1, 当座 2, 貯蓄 4, その他 9")
    if int(trailer["count"]) != len(data):
        raise Malformed(f"the trailer counts {int(trailer['count'])} records; the file has {len(data)}")
    if int(trailer["total"]) != sum(int(d["amount"]) for d in data):
        raise Malformed(f"the trailer's total {int(trailer['total'])} is not the sum of the amounts")
    return TransferFile(header, data, trailer)
