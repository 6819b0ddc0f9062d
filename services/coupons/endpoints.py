"""The coupons API (/v1/coupons). Coupons, bundles and transit tickets arrive with their own issue;
until then the service answers for its own health so that it can be deployed and probed."""

from fastapi import APIRouter

router = APIRouter(prefix="/v1/coupons", tags=["coupons"])


@router.get("/health")
async def health() -> dict[str, str]:
    return {"service": "coupons", "status": "ok"}
