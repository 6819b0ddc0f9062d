"""The history file (README "Importing history"): one UTF-8 CSV (a BOM is fine), a header line of
column names in any order, then one row per record. `record` says what a row is (merchant,
resident, topup, payment, refund, grant) and `key` is its id on the previous platform (a
merchant's code): unique per record kind, and what makes importing a file again harmless. A
column a row's kind does not use is left empty.

Reading the file only types each cell (integers, instants with their offset, the fields of a
merchant to onboard); the rules across rows (references, refunds, balances, the overlap with the
region's own history) are the wallet's (services/wallet/history/service.py). Every problem is
collected, with its line (the header is line 1) and column, never only the first."""

from __future__ import annotations

import csv
import io
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from services.wallet.public import (
    HistoryBatch,
    MerchantDetails,
    MerchantRow,
    MovementRow,
    Record,
    ResidentRow,
    RowProblem,
)

MAX_ROWS = 1_000_000

MOVEMENT_COLUMNS = ("occurred_at", "resident", "merchant", "yen", "points", "fee_yen", "fee_points", "payment", "memo")
RESIDENT_COLUMNS = ("subject", "closing_yen", "closing_points")
MERCHANT_COLUMNS = ("merchant_id", *MerchantDetails.model_fields)
COLUMNS = ("record", "key", *MOVEMENT_COLUMNS, *RESIDENT_COLUMNS, *MERCHANT_COLUMNS)
AMOUNTS = ("yen", "points", "fee_yen", "fee_points")
_INTEGER = re.compile(r"[0-9]{1,15}")
_KEY = re.compile(r"[\x21-\x7e]{1,100}")  # printable ASCII, no spaces: an id, a code


class Reading:
    """The problems of one file, as they are found."""

    def __init__(self) -> None:
        self.problems: list[RowProblem] = []

    def bad(self, line: int | None, key: str | None, field: str | None, code: str, detail: str) -> None:
        self.problems.append(RowProblem(line, key, field, code, detail))


@dataclass(frozen=True)
class Unread:
    """A row that could not be read, as far as it names other rows (for telling which of the
    other rows' problems follow from its absence)."""

    record: str
    key: str
    resident: str
    merchant: str
    payment: str


def read(content: bytes) -> tuple[HistoryBatch, list[RowProblem], list[Unread]]:
    """The file's rows that could be read, typed; every problem reading them; the rows that could
    not be read."""
    reading = Reading()
    unread: list[Unread] = []
    try:
        body = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        reading.bad(None, None, None, "not-utf8", f"The file is not UTF-8 (byte {exc.start}).")
        return HistoryBatch(), reading.problems, unread
    reader = csv.reader(io.StringIO(body, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            reading.bad(None, None, None, "empty-file", "The file is empty: the first line names the columns.")
            return HistoryBatch(), reading.problems, unread
        order = {name.strip(): i for i, name in enumerate(header)}
        unknown = [name for name in order if name not in COLUMNS]
        missing = [name for name in ("record", "key") if name not in order]
        if unknown or missing or len(order) != len(header):
            reading.bad(1, None, None, "bad-header", (
                f"Unknown column(s): {', '.join(unknown) or 'none'}; missing: {', '.join(missing) or 'none'}"
                f"{'; a column is named twice' if len(order) != len(header) else ''}. Columns: {', '.join(COLUMNS)}."
            ))
            return HistoryBatch(), reading.problems, unread
        merchants, residents, movements = [], [], []
        count = 0
        for fields in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in fields):
                continue  # a blank line
            count += 1
            if count > MAX_ROWS:
                reading.bad(line, None, None, "too-many-rows", f"A file holds up to {MAX_ROWS} rows.")
                break
            if len(fields) != len(header):
                reading.bad(line, None, None, "bad-row", f"{len(fields)} cells; the header has {len(header)}.")
                unread.append(Unread("", "", "", "", ""))
                continue
            row = {name: fields[i].strip() for name, i in order.items()}
            parsed = _row(reading, line, row)
            if parsed is None:
                unread.append(Unread(*(row.get(name, "") for name in ("record", "key", "resident", "merchant", "payment"))))
            if isinstance(parsed, MerchantRow):
                merchants.append(parsed)
            elif isinstance(parsed, ResidentRow):
                residents.append(parsed)
            elif isinstance(parsed, MovementRow):
                movements.append(parsed)
    except csv.Error as exc:
        reading.bad(reader.line_num, None, None, "bad-csv", f"The file is not valid CSV: {exc}.")
    if count == 0 and not reading.problems:
        reading.bad(None, None, None, "empty-file", "The file has a header but no rows.")
    return HistoryBatch(merchants, residents, movements), reading.problems, unread


def _row(reading: Reading, line: int, row: dict[str, str]) -> MerchantRow | ResidentRow | MovementRow | None:
    before = len(reading.problems)
    key = row.get("key", "")
    try:
        record = Record(row["record"])
    except ValueError:
        reading.bad(line, key or None, "record", "unknown-record",
                    f"{row['record']!r} is not one of {', '.join(r.value for r in Record)}.")
        return None
    if not _KEY.fullmatch(key):
        reading.bad(line, key or None, "key", "bad-key", "The key is the previous platform's id: 1–100 printable "
                    "ASCII characters, no spaces.")
    used = {
        Record.MERCHANT: MERCHANT_COLUMNS, Record.RESIDENT: RESIDENT_COLUMNS,
    }.get(record, MOVEMENT_COLUMNS)
    for name, value in row.items():
        if value and name not in ("record", "key", *used):
            reading.bad(line, key, name, "not-applicable", f"A {record} row leaves {name} empty.")

    def integer(name: str, required: bool = False) -> int:
        value = row.get(name, "")
        if not value:
            if required:
                reading.bad(line, key, name, "required", f"A {record} row gives {name}.")
            return 0
        if not _INTEGER.fullmatch(value):
            reading.bad(line, key, name, "not-an-integer", f"{value!r} is not a whole number of 0 or more.")
            return 0
        return int(value)

    if record == Record.MERCHANT:
        parsed: Any = _merchant(reading, line, key, row)
    elif record == Record.RESIDENT:
        subject = row.get("subject", "")
        if not subject or len(subject) > 255:
            reading.bad(line, key, "subject", "required", "A resident row gives the resident's subject here.")
        parsed = ResidentRow(line, key, subject, integer("closing_yen", True), integer("closing_points", True))
    else:
        occurred_at = _instant(reading, line, key, row.get("occurred_at", ""))
        memo = row.get("memo") or None
        if memo is not None and len(memo) > 200:
            reading.bad(line, key, "memo", "too-long", "A memo has up to 200 characters.")
        parsed = MovementRow(
            line, record, key, occurred_at or datetime.min, row.get("resident") or None, row.get("merchant") or None,
            *(integer(name) for name in AMOUNTS), row.get("payment") or None, memo,
        )
    return parsed if len(reading.problems) == before else None


def _instant(reading: Reading, line: int, key: str, value: str) -> datetime | None:
    if not value:
        reading.bad(line, key, "occurred_at", "required", "When it happened, e.g. 2025-03-31T23:59:59+09:00.")
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        reading.bad(line, key, "occurred_at", "not-an-instant", f"{value!r} is not an ISO 8601 instant.")
        return None
    if at.tzinfo is None or at.utcoffset() is None:
        reading.bad(line, key, "occurred_at", "no-offset",
                    f"{value!r} has no UTC offset: give it (+09:00 for Japan time) so the instant is certain.")
        return None
    return at


def _merchant(reading: Reading, line: int, key: str, row: dict[str, str]) -> MerchantRow | None:
    """By `merchant_id`, by `name` alone (a merchant here of that name), or every field to onboard one."""
    given: dict[str, Any] = {name: row[name] for name in MerchantDetails.model_fields if row.get(name)}
    if _INTEGER.fullmatch(given.get("account_type", "")):
        given["account_type"] = int(given["account_type"])
    if row.get("merchant_id"):
        if given:
            reading.bad(line, key, "merchant_id", "not-applicable",
                        "With merchant_id, the merchant's fields are those it has here: leave them empty.")
            return None
        try:
            return MerchantRow(line, key, merchant_id=uuid.UUID(row["merchant_id"]))
        except ValueError:
            reading.bad(line, key, "merchant_id", "not-a-uuid", f"{row['merchant_id']!r} is not a merchant id.")
            return None
    if set(given) == {"name"}:
        return MerchantRow(line, key, name=given["name"])
    try:
        details = MerchantDetails.model_validate(given)
    except ValidationError as exc:
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else None
            reading.bad(line, key, name, "invalid-field", error["msg"])
        return None
    return MerchantRow(line, key, details=details.model_dump(mode="json"))
