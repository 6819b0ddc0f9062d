"""The settlement service alone: `uvicorn services.settlement.app:app`."""

from shared.application import create_app

app = create_app(services=["settlement"])
