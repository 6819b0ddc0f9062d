"""The wallet service alone: `uvicorn app.wallet:app`."""

from app.application import create_app

app = create_app(services=["wallet"])
