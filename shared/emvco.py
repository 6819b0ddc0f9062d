"""EMVCo Merchant-Presented Mode (MPM) QR payloads: building and parsing. Pure Python, no I/O.

A payload is a flat string of TLV data objects: a 2-digit ID, a 2-digit length and the value.
Lengths count *characters* (so 会津若松市 is "05"), while the CRC runs over the UTF-8 *bytes*;
mixing the two up is the classic bug with non-ASCII merchant names. Some values are templates,
i.e. TLV strings themselves (26 merchant account, 62 additional data, 64 language).

What we emit, in this order (EMVCo only fixes `00` first and `63` last; the rest is our choice):

    00 "01"                payload format indicator
    01 "11" | "12"         static (the resident types the amount) | dynamic (one sale, with amount)
    26 {00 GUID, 01 store} the region's reverse-domain GUID and the store's UUID
    52 MCC, 53 "392" (JPY), 54 amount (dynamic only, integer yen), 58 "JP", 59 name, 60 city
    62 {01 bill number, 07 terminal label}    only the ones that are given
    64 {00 "JA", 01 name_ja, 02 city_ja}
    63 CRC-16/CCITT-FALSE over everything before its value, including "6304"

The parser accepts any order between `00` and `63` and ignores data objects it does not use
(other networks' account templates, postal code...), because a payload may come from a printer
or a POS that is not ours. It does not judge the GUID: the caller compares it with its region's.
"""

from __future__ import annotations

import binascii
import re
import unicodedata
import uuid
from dataclasses import dataclass

from shared.text import qr_text

__all__ = [
    "InvalidQR",
    "MerchantQR",
    "QRChecksumError",
    "QRCurrencyError",
    "QRFormatError",
    "build_payload",
    "crc16_ccitt_false",
    "parse_payload",
    "uncut_text",
]

JPY = "392"  # ISO 4217 numeric; yen have no minor unit, so amounts are whole numbers
STATIC, DYNAMIC = "11", "12"

# Maximum lengths in characters (EMVCo MPM tables 3.3, 3.7, 3.8, 4.2). A value over its limit is
# legal TLV but some wallets reject or cut it, so we never emit one and never accept one.
MAX_GUID = 32
MAX_NAME, MAX_CITY = 25, 15  # 59, 60 and their Japanese twins 64/01, 64/02
MAX_LABEL = 25  # 62/01 bill number, 62/07 terminal label
MAX_AMOUNT_DIGITS = 13  # 54

_ANS = re.compile(r"[\x20-\x7e]*")  # EMVCo "ans": printable ASCII
_AMOUNT = re.compile(rf"[1-9][0-9]{{0,{MAX_AMOUNT_DIGITS - 1}}}")  # yen: no decimals, no sign
_CRC_HEX = re.compile(r"[0-9A-F]{4}")


class InvalidQR(ValueError):
    """The payload is not a merchant QR we can pay."""


class QRFormatError(InvalidQR):
    """Bad TLV framing or lengths, a mandatory field missing or malformed, `00` not first or
    `63` not last."""


class QRChecksumError(InvalidQR):
    """The CRC does not match: the payload was damaged or altered."""


class QRCurrencyError(InvalidQR):
    """Not yen (`53` is not 392) or an amount that is not a positive whole number of yen."""


@dataclass(frozen=True)
class MerchantQR:
    guid: str  # sub-ID 00 of template 26, NOT checked here: the caller compares it with its region
    store_id: str  # canonical lower-case UUID string
    mcc: str
    currency: str  # always "392" once parsed
    country: str
    name: str
    city: str
    name_ja: str
    city_ja: str | None
    terminal: str | None
    amount: int | None  # yen; None on a static QR, where the resident types the amount
    bill_number: str | None
    dynamic: bool


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0 (check 0x29B1).

    That is exactly the standard library's `binascii.crc_hqx` started at 0xFFFF, which runs in
    C: every payment parses a QR, so the bitwise loop in Python was measurable."""
    return binascii.crc_hqx(data, 0xFFFF)


def _crc_hex(text_before_value: str) -> str:
    return f"{crc16_ccitt_false(text_before_value.encode('utf-8')):04X}"


# ---------------------------------------------------------------------------------------------
# Building


def _tlv(tag: str, value: str) -> str:
    if len(value) > 99:  # the length field has two digits
        raise ValueError(f"field {tag} is {len(value)} characters; a TLV value holds at most 99")
    return f"{tag}{len(value):02d}{value}"


def _text(value: str, what: str, *, ascii_only: bool) -> str:
    """Trim and check one free-text value (shared.text.qr_text: the same rule checks a name when
    it is stored)."""
    return qr_text(value, what, ascii_only=ascii_only)


def _shorten(value: str, limit: int) -> str:
    """Cut to `limit` characters, at a word boundary when that keeps most of the text: the name
    on the resident's screen is how they check whom they are paying, so half-words are worse
    than a slightly shorter name."""
    if len(value) <= limit:
        return value
    cut = value[:limit]
    if value[limit] not in " -":  # the cut falls inside a word: back up to its start
        boundary = max(cut.rfind(" "), cut.rfind("-"))
        if boundary >= limit // 2:
            cut = cut[:boundary]
    return cut.rstrip(" -,.&/") or value[:limit]


def uncut_text(value: str, what: str, *, limit: int, ascii_only: bool) -> str:
    """`value` exactly as a payload would carry it (NFC, spaces collapsed), for a name that must
    reach the resident's screen whole: ValueError if it cannot be encoded or would be cut. What
    is stored then is what every code will show (a region's name in the city fields 60 and 64/02)."""
    value = _text(value, what, ascii_only=ascii_only)
    if len(value) > limit:
        raise ValueError(f"{what} is {len(value)} characters; a QR code carries at most {limit}")
    return value


def _label(value: str | None, what: str) -> str | None:
    """Bill numbers and terminal labels identify things, so they are never truncated."""
    if value is None:
        return None
    value = _text(value, what, ascii_only=True)
    if len(value) > MAX_LABEL:
        raise ValueError(f"{what} is {len(value)} characters; EMVCo allows at most {MAX_LABEL}")
    return value


def build_payload(
    *,
    guid: str,
    store_id: str,
    mcc: str,
    name: str,
    city: str,
    name_ja: str,
    city_ja: str | None = None,
    terminal: str | None = None,
    amount: int | None = None,
    bill_number: str | None = None,
) -> str:
    """The payload of a static QR (amount None) or of a dynamic QR for one sale (amount and
    bill_number given). Raises ValueError on an input that cannot be encoded."""
    guid = _text(guid, "guid", ascii_only=True)
    if len(guid) > MAX_GUID or " " in guid:
        raise ValueError(f"guid must be at most {MAX_GUID} characters without spaces, got {guid!r}")
    try:
        store = str(uuid.UUID(store_id))  # canonical form, so one store has one payload
    except (TypeError, ValueError, AttributeError):
        raise ValueError(f"store_id must be a UUID string, got {store_id!r}") from None
    if not (isinstance(mcc, str) and len(mcc) == 4 and mcc.isascii() and mcc.isdigit()):
        raise ValueError(f"mcc must be 4 digits, got {mcc!r}")
    name = _shorten(_text(name, "name", ascii_only=True), MAX_NAME)
    city = _shorten(_text(city, "city", ascii_only=True), MAX_CITY)
    # Japanese has no spaces to cut at: a plain cut, minus a dangling space.
    name_ja = _text(name_ja, "name_ja", ascii_only=False)[:MAX_NAME].rstrip()
    city_ja = None if city_ja is None else _text(city_ja, "city_ja", ascii_only=False)[:MAX_CITY].rstrip()
    terminal = _label(terminal, "terminal")
    bill_number = _label(bill_number, "bill_number")

    if amount is not None:
        # bool is an int subclass: True would silently become 1 yen.
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError(f"amount must be a positive whole number of yen, got {amount!r}")
        if len(str(amount)) > MAX_AMOUNT_DIGITS:
            raise ValueError(f"amount has more than {MAX_AMOUNT_DIGITS} digits")
        # A dynamic QR is single use: without a bill number the payment cannot be matched to
        # the sale, and paying it twice could not be told from paying two sales.
        if bill_number is None:
            raise ValueError("a dynamic QR (with amount) needs a bill_number identifying the sale")
    elif bill_number is not None:
        raise ValueError("bill_number belongs to a dynamic QR: a static QR is reused for every sale")

    additional = "".join(_tlv(t, v) for t, v in (("01", bill_number), ("07", terminal)) if v)
    language = _tlv("00", "JA") + _tlv("01", name_ja) + (_tlv("02", city_ja) if city_ja else "")
    body = "".join(
        [
            _tlv("00", "01"),
            _tlv("01", STATIC if amount is None else DYNAMIC),
            _tlv("26", _tlv("00", guid) + _tlv("01", store)),
            _tlv("52", mcc),
            _tlv("53", JPY),
            _tlv("54", str(amount)) if amount is not None else "",
            _tlv("58", "JP"),
            _tlv("59", name),
            _tlv("60", city),
            _tlv("62", additional) if additional else "",
            _tlv("64", language),
            "6304",  # the CRC's own ID and length are covered by the CRC
        ]
    )
    return body + _crc_hex(body)


# ---------------------------------------------------------------------------------------------
# Parsing


def _split(text: str, where: str) -> dict[str, str]:
    """TLV string -> {id: value}, rejecting bad framing and repeated IDs (a repeated ID would
    let two readers of the same code see different values)."""
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        head = text[pos : pos + 4]
        if len(head) < 4 or not (head.isascii() and head.isdigit()):
            raise QRFormatError(f"{where}: bad ID/length {head!r} at character {pos}")
        tag, length = head[:2], int(head[2:])
        value = text[pos + 4 : pos + 4 + length]
        if len(value) != length:
            raise QRFormatError(f"{where}: field {tag} declares {length} characters, {len(value)} remain")
        if tag in fields:
            raise QRFormatError(f"{where}: field {tag} appears twice")
        fields[tag] = value
        pos += 4 + length
    return fields


def _field(fields: dict[str, str], tag: str, where: str, max_len: int, *, ascii_only: bool = True) -> str:
    value = fields.get(tag)
    if not value:
        raise QRFormatError(f"{where}: mandatory field {tag} is missing or empty")
    if len(value) > max_len:
        raise QRFormatError(f"{where}: field {tag} is {len(value)} characters, at most {max_len} allowed")
    if ascii_only and not _ANS.fullmatch(value):
        raise QRFormatError(f"{where}: field {tag} must be printable ASCII")
    if any(unicodedata.category(ch).startswith("C") for ch in value):  # would garble the screen
        raise QRFormatError(f"{where}: field {tag} contains control characters")
    return value


def _optional(
    fields: dict[str, str], tag: str, where: str, max_len: int, *, ascii_only: bool = True
) -> str | None:
    return _field(fields, tag, where, max_len, ascii_only=ascii_only) if tag in fields else None


def parse_payload(payload: str) -> MerchantQR:
    """Check and decode a scanned payload. Raises a subclass of InvalidQR naming the problem.

    The order of the checks matters: framing first (we cannot find the CRC otherwise), then the
    CRC (so any altered character is reported as such rather than as whatever it broke), then
    the meaning of the fields."""
    if not isinstance(payload, str) or not payload:
        raise QRFormatError("payload must be a non-empty string")
    root = _split(payload, "payload")
    tags = list(root)
    if tags[0] != "00" or root["00"] != "01":
        raise QRFormatError("payload format indicator 00 = '01' must come first")
    if tags[-1] != "63":
        raise QRFormatError("the CRC (63) must be the last field")
    if not _CRC_HEX.fullmatch(root["63"]):
        raise QRFormatError("the CRC (63) must be 4 upper-case hexadecimal digits")
    if _crc_hex(payload[:-4]) != root["63"]:  # 63 is last and 4 long: its value is the tail
        raise QRChecksumError("CRC mismatch: the code is damaged or was altered")

    method = root.get("01")
    if method not in (STATIC, DYNAMIC):
        raise QRFormatError("point of initiation 01 must be '11' (static) or '12' (dynamic)")
    if any(t in root for t in ("55", "56", "57")):
        # A tip or convenience fee would make the amount paid differ from field 54.
        raise QRFormatError("tip and convenience fee fields (55-57) are not supported")

    if "53" not in root:
        raise QRFormatError("payload: mandatory field 53 (currency) is missing")
    if root["53"] != JPY:
        raise QRCurrencyError(f"currency must be {JPY} (JPY), got {root['53']!r}")
    amount = None
    if "54" in root:
        if not _AMOUNT.fullmatch(root["54"]):  # rejects "100.5", "100.", "0", "-5", "0100"
            raise QRCurrencyError(f"amount must be a positive whole number of yen, got {root['54']!r}")
        amount = int(root["54"])

    account = _split(_field(root, "26", "payload", 99, ascii_only=False), "template 26")
    store_id = _field(account, "01", "template 26", 99)
    try:
        store_id = str(uuid.UUID(store_id))
    except ValueError:
        raise QRFormatError(f"template 26: store id {store_id!r} is not a UUID") from None
    mcc = _field(root, "52", "payload", 4)
    if not (len(mcc) == 4 and mcc.isdigit()):
        raise QRFormatError(f"MCC (52) must be 4 digits, got {mcc!r}")

    extra = _split(root.get("62", ""), "template 62")
    language = _split(_field(root, "64", "payload", 99, ascii_only=False), "template 64")
    if language.get("00") != "JA":
        raise QRFormatError("template 64: language preference 00 must be 'JA'")
    bill_number = _optional(extra, "01", "template 62", MAX_LABEL)

    dynamic = method == DYNAMIC
    # Keep the two kinds apart: a static code carrying an amount or a dynamic one without
    # amount and bill number is not something we build, and paying it would be ambiguous.
    if dynamic != (amount is not None) or dynamic != (bill_number is not None):
        raise QRFormatError(
            "a dynamic QR (01 = '12') needs amount 54 and bill number 62/01; a static one neither"
        )

    return MerchantQR(
        guid=_field(account, "00", "template 26", MAX_GUID),
        store_id=store_id,
        mcc=mcc,
        currency=JPY,
        country=_field(root, "58", "payload", 2),
        name=_field(root, "59", "payload", MAX_NAME),
        city=_field(root, "60", "payload", MAX_CITY),
        name_ja=_field(language, "01", "template 64", MAX_NAME, ascii_only=False),
        city_ja=_optional(language, "02", "template 64", MAX_CITY, ascii_only=False),
        terminal=_optional(extra, "07", "template 62", MAX_LABEL),
        amount=amount,
        bill_number=bill_number,
        dynamic=dynamic,
    )
