"""The coupons service alone: `uvicorn services.coupons.app:app`."""

from shared.application import create_app

app = create_app(services=["coupons"])
