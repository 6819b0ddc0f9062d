"""Money is an integer number of yen or points; never a float (DESIGN.md invariant 8).

Request bodies take amounts as JSON integers, exactly as written. Both JSON parsers the API uses
(the standard library's for request bodies, pydantic's for webhooks) give an int only for a number
written without a fraction or an exponent and a float for any other, so a float here means the
client wrote `3000.0`, `1e3` or `999.99999999999999999`: refused, however it rounds (the last one
is the float 1000.0). Strings (`"100"`) and booleans are refused too, before any rule runs. The
bound keeps every value exact and every sum inside bigint.
"""

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

MAX_AMOUNT = 10**12


# What the refusal of `3000.0` says. JSON Schema cannot express it (to it, 3000.0 is the integer
# 3000), so schema-driven clients and fuzzers may send such numbers: they are told this.
INEXACT = "a whole number is required, written without a fraction or exponent (1000, not 1000.0)"


def _whole_number(value: Any) -> Any:
    if isinstance(value, bool) or isinstance(value, str):
        raise ValueError("an amount is a JSON integer, not a string or boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, (float, Decimal)):
        raise ValueError(INEXACT)
    raise ValueError("an amount is a JSON integer")


# The bounds come before the validator so that they stay plain JSON Schema bounds in OpenAPI.
Amount = Annotated[
    int,
    Field(gt=0, le=MAX_AMOUNT, description="Whole yen (or points), written as an integer: 1000, never 1000.0 or 1e3."),
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
    """A unit of value. 1 coin = 1 point = 1 yen in value, but a journal balances each unit on its
    own: only a point redemption (ポイント換金) holds both, points retired and as many yen paid."""

    YEN = "yen"  # paid-in money (prepaid): counts toward the unused balance reported at base dates
    POINT = "point"  # free value: premiums and rewards, with their own expiry
