"""Premium campaigns (プレミアム付き) (/v1)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["premium"])
