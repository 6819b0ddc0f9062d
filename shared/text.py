"""Free-text request fields: bounded length and no control characters.

PostgreSQL text cannot hold NUL, and tabs, newlines or escape codes in a shop name or a memo end
up on receipts, bank files and terminals; so no request text may contain C0 controls or DEL.

Names that go into a merchant QR code (EMVCo) must also be text the code can carry: romanised
names printable ASCII, Japanese names free of unassigned, private-use or format code points. The
rule is `qr_text`, used both when such a name is stored and when a code is built, so a name
accepted once can always be printed.
"""

import re
import unicodedata
from typing import Annotated, Any

from pydantic import StringConstraints

_PLAIN = r"[^\x00-\x1f\x7f]"
_VISIBLE = r"[^\s\x00-\x1f\x7f]"


def text(max_length: int, *, required: bool = True) -> Any:
    """A text field of at most `max_length` characters; `required` ones hold a visible character."""
    pattern = f"^{_PLAIN}*{_VISIBLE}{_PLAIN}*$" if required else f"^{_PLAIN}*$"
    return Annotated[str, StringConstraints(min_length=1 if required else 0, max_length=max_length, pattern=pattern)]


_ANS = re.compile(r"[\x20-\x7e]*")  # EMVCo "ans": printable ASCII


def qr_text(value: str, what: str, *, ascii_only: bool) -> str:
    """The text as a merchant QR carries it: NFC (so か + ゛ counts as the one character a reader
    sees) and whitespace runs made one space. ValueError if a code cannot carry it."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    value = " ".join(unicodedata.normalize("NFC", value).split())
    if not value:
        raise ValueError(f"{what} must not be empty")
    if ascii_only and not _ANS.fullmatch(value):
        raise ValueError(f"{what} must be printable ASCII (romanised), got {value!r}")
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise ValueError(f"{what} contains control, unassigned or private-use characters")
    return value


# Printable ASCII with something visible: a romanised name a QR shows (EMVCo 59) or a label it
# carries whole (62/07). Stated as a pattern, so the API's schema says it; `qr_text` never refuses
# such a value. Japanese names (64/01) are checked by `qr_text` where they are stored, as the
# schema's pattern language cannot name unassigned or private-use code points.
_ROMANISED = r"^[ -~]*[!-~][ -~]*$"


def romanised(max_length: int) -> Any:
    return Annotated[str, StringConstraints(min_length=1, max_length=max_length, pattern=_ROMANISED)]
