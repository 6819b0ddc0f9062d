"""The coupons service alone: `uvicorn app.coupons:app`."""

from app.application import create_app

app = create_app(services=["coupons"])
