"""In-process schemathesis over the OpenAPI of each service: no 5xx, responses as documented.

Schemathesis drives the app from its own thread and event loop, so it gets an app of its own
(same settings, same database) rather than the one the async tests share.
"""

from __future__ import annotations

import re
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.application import create_app
from services.platform.partners import service as partners
from shared.audit import Actor
from shared.auth import PLATFORM_REGION, DevIssuer, Role
from shared.clock import UNSTORABLE, SystemClock
from shared.config import Settings
from shared.money import INEXACT


class _SchemaApp:
    """The schema's app, pointed at the test database once the settings fixture exists.
    Schemathesis binds it to every operation at collection, and some checks send requests of
    their own through it (e.g. again without credentials): an app on the default settings would
    start embedded servers in the checkout's ./.chiikipay."""

    app = None

    async def __call__(self, scope, receive, send):
        assert self.app is not None, "fuzzed_app sets the app before the first request"
        await self.app(scope, receive, send)


schema_app = _SchemaApp()


@pytest.fixture(scope="session")
def fuzzed_app(settings):
    schema_app.app = create_app(settings)
    return schema_app




@pytest.fixture
def callers(settings, town):
    issuer = DevIssuer(settings, SystemClock())
    teahouse = town.merchants["Tsurugajo Teahouse"]

    def bearer(role: Role, subject: str, merchant=None) -> dict[str, str]:
        token = issuer.mint(subject=subject, role=role, region="aizu", merchant_id=merchant)
        return {"Authorization": f"Bearer {token}"}

    return [
        bearer(Role.OPERATOR, "operator-aizu"),
        bearer(Role.RESIDENT, "resident-hanako"),
        bearer(Role.MERCHANT_ADMIN, "owner", teahouse),
        bearer(Role.AUDITOR, "auditor-aizu"),
    ]


@pytest.fixture
def platform_caller(settings):
    """The platform operator, sent only to its own operations (every other one refuses it, as
    tests/wallet/test_regions.py checks), so that the fuzz reaches the handlers behind them."""
    token = DevIssuer(settings, SystemClock()).mint(subject="platform-ops", role=Role.PLATFORM_OPERATOR, region=PLATFORM_REGION)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def partner_caller(sessionmaker, clock, town):
    """A partner service's API key, sent only to the partner's checkout operations (every other
    one refuses it), so that the fuzz reaches the handlers behind them."""
    async with sessionmaker() as session, session.begin():
        _, key, _ = await partners.register(
            session, clock, Actor("operator-aizu", Role.OPERATOR.value), region="aizu", name="fuzzed partner",
            merchant_id=uuid.UUID(town.merchants["Tsurugajo Teahouse"]), callback_urls=["https://partner.example/"],
        )
    return {"X-API-Key": key}


# The OpenAPI document needs no running app; the requests go to `fuzzed_app`, started by
# schemathesis on first use against the test database.
schema = schemathesis.openapi.from_dict(create_app(Settings(_env_file=None)).openapi())
schema.app = schema_app
# Each request is sent with each role's credentials (`callers`), which replace whatever
# Authorization or X-API-Key schemathesis would generate: its own (or a request "missing" them)
# would be overwritten, and its negative cases would then be valid requests.
schema.config.generation.update(with_security_parameters=False)


@schema.parametrize()
@hypothesis_settings(
    max_examples=25, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_errors_and_documented_responses(case, callers, platform_caller, partner_caller, fuzzed_app):
    """Each generated request is sent once per role, so that role gates and the handlers behind
    them are both reached."""
    own = [platform_caller] if case.path == "/v1/regions" else []
    if case.path.startswith("/v1/platform/checkouts"):
        own.append(partner_caller)
    for headers in [*callers, *own]:
        # A fresh valid key per call: schemathesis would otherwise reuse one generated key for
        # different bodies, which the API rightly refuses (422 idempotency-key-reused). Its
        # deliberately invalid keys (missing, too long, not printable ASCII) are sent as generated.
        generated = (case.headers or {}).get("Idempotency-Key")
        if generated and re.fullmatch(r"[!-~]{1,255}", generated):
            headers = {**headers, "Idempotency-Key": str(uuid.uuid4())}
        response = case.call(headers=headers, app=fuzzed_app)
        # Business rules answer 422 with their own problem type (amount-below-minimum …), which
        # schemathesis' positive-data check would count as a rejection. Checked instead: data the
        # schema calls valid never fails validation.
        case.validate_response(response, excluded_checks=[positive_data_acceptance])
        if case.meta is not None and not case.meta.generation.mode.is_negative and response.status_code == 422:
            problem = response.json()
            # The rules JSON Schema cannot state: to it 1.0 is an integer, to the API a money
            # field's 1.0 is inexact (shared.money); to it any date-time is one, to the API not the
            # first or the last moment of the years 1 to 9999 (shared.clock, Instant).
            errors = problem.get("errors") or [{"msg": ""}]
            if all(INEXACT in error["msg"] or UNSTORABLE in error["msg"] for error in errors):
                continue
            assert problem["type"] != "urn:chiikipay:problem:validation-error", response.text
