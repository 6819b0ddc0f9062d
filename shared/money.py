"""Money is an integer number of yen or points; never a float (DESIGN.md invariant 8).

Request bodies take amounts as JSON integers. JSON Schema counts a number with a zero fraction
(`3000.0`) as an integer too, so it is taken as exactly that integer; anything with a fraction
(`100.5`), a string (`"100"`, `"100.5"`) or a boolean is refused by validation before any rule
runs. The bound keeps every value exact (far below 2**53) and every sum inside bigint.
"""

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

MAX_AMOUNT = 10**12


def _whole_number(value: Any) -> Any:
    if isinstance(value, bool) or isinstance(value, str):
        raise ValueError("an amount is a JSON integer, not a string or boolean")
    if isinstance(value, int):
        return value
    if hasattr(value, "is_integer"):  # a JSON number parsed with a fraction part
        if value.is_integer() and abs(value) <= MAX_AMOUNT:
            return int(value)
        raise ValueError("a whole number is required; decimals are not allowed")
    raise ValueError("an amount is a JSON integer")


# The bounds come before the validator so that they stay plain JSON Schema bounds in OpenAPI.
Amount = Annotated[
    int,
    Field(gt=0, le=MAX_AMOUNT, description="Whole yen (or points); no decimals."),
    BeforeValidator(_whole_number),
]

BasisPoints = Annotated[
    int,
    Field(ge=0, le=10_000, description="A rate in basis points: 200 = 2 %."),
    BeforeValidator(_whole_number),
]


def whole_number(**bounds: Any) -> Any:
    """A JSON integer within `bounds` (ge, le, gt …): counts, days, months; refuses 1.5, "1", true."""
    return Annotated[int, Field(**bounds), BeforeValidator(_whole_number)]


class Unit(StrEnum):
    """A unit of value. 1 coin = 1 point = 1 yen in value, but they are never mixed in a journal."""

    YEN = "yen"  # paid-in money (prepaid): counts toward the unused balance reported at base dates
    POINT = "point"  # free value: premiums and rewards, with their own expiry
