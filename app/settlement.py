"""The settlement service alone: `uvicorn app.settlement:app`."""

from app.application import create_app

app = create_app(services=["settlement"])
