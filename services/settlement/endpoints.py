"""The settlement API (/v1/settlement). Settlement runs, statements, payout files and KPI reports
arrive with their own issue; until then the service answers for its own health."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1/settlement", tags=["settlement"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"service": "settlement", "status": "ok"}
