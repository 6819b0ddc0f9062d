"""Money is an integer number of yen or points; never a float (DESIGN.md invariant 8).

Request bodies take amounts as JSON integers only: "100.5", 100.5, "100" and true are all
rejected by validation before any rule runs.
"""

from enum import StrEnum
from typing import Annotated

from pydantic import Field, Strict

# Upper bound keeps every sum far inside PostgreSQL bigint.
MAX_AMOUNT = 10**12

Amount = Annotated[int, Strict(), Field(gt=0, le=MAX_AMOUNT, description="Integer yen (or points); no decimals.")]


class Unit(StrEnum):
    """A unit of value. 1 coin = 1 point = 1 yen in value, but they are never mixed in a journal."""

    YEN = "yen"  # paid-in money (prepaid): counts toward the unused balance reported at base dates
    POINT = "point"  # free value: premiums and rewards, with their own expiry

