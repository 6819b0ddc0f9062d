"""The wallet service alone: `uvicorn services.wallet.app:app`."""

from shared.application import create_app

app = create_app(services=["wallet"])
