"""The demo town's bus company as a bus operator (transit's fixture), for bundles with a ticket."""

from tests.coupons.transit.conftest import bus  # noqa: F401  (a fixture)
