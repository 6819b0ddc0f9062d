"""Free-text request fields: bounded length and no control characters.

PostgreSQL text cannot hold NUL, and tabs, newlines or escape codes in a shop name or a memo end
up on receipts, bank files and terminals; so no request text may contain C0 controls or DEL.
"""

from typing import Annotated, Any

from pydantic import StringConstraints

_PLAIN = r"[^\x00-\x1f\x7f]"
_VISIBLE = r"[^\s\x00-\x1f\x7f]"


def text(max_length: int, *, required: bool = True) -> Any:
    """A text field of at most `max_length` characters; `required` ones hold a visible character."""
    pattern = f"^{_PLAIN}*{_VISIBLE}{_PLAIN}*$" if required else f"^{_PLAIN}*$"
    return Annotated[str, StringConstraints(min_length=1 if required else 0, max_length=max_length, pattern=pattern)]
