"""The platform service alone (partner checkouts, the outbox): `uvicorn app.platform:app`."""

from app.application import create_app

app = create_app(services=["platform"])
