"""What every service's request and response bodies are built from."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from shared.text import text


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, extra="forbid")


# Not stripped: what the schema documents is exactly what is checked.
Text100 = text(100)
Memo = text(200, required=False)
ClassCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,31}$")]  # a merchant class
