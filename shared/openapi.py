"""The OpenAPI document, complete enough for a generated client (DESIGN.md: API).

FastAPI's own document leaves out what every chiikipay operation shares, and says it in one place
here instead of on each endpoint: the problem+json body of every error (`Problem`), the response
headers (`X-Request-Id` on every response, `Idempotent-Replayed` on a replayed state change), the
security each operation really accepts (read off its `require(...)` gate: terminal and partner
roles come with an API key, people with a bearer token, ungated routes with neither), schemas for
bodies that are not JSON, short operationIds, and the servers, licence and tags. Endpoints declare
only what is theirs: a status only they answer (402, 503, 415) or the media type they send.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from shared.auth import KEY_ROLES, Role, api_key_scheme, bearer_scheme, current_principal, gate_roles
from shared.errors import PROBLEM_JSON, TYPE_PREFIX

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
REQUEST_ID_HEADER = "X-Request-Id"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# The embedded default that `chiikipay serve` starts; a deployment serves the same paths elsewhere.
SERVERS = [{"url": "http://127.0.0.1:8000", "description": "`chiikipay serve` on this machine (the embedded default)"}]
# No licence has been granted for chiikipay: the document says so rather than leave it unstated.
LICENSE = {"name": "Proprietary (no licence granted)", "identifier": "LicenseRef-Proprietary"}
TAG_DESCRIPTIONS = {
    "operations": "Liveness, readiness and metrics for the platform that runs the service.",
    "region": "The regional currency's settings (top-up limits, balance cap, expiry).",
    "wallet": "Residents' wallets: balance lot by lot, history, notices; operators find and suspend them.",
    "top-up": "Value in and out: counter top-ups and cash-outs, and the bank's signed top-up webhook.",
    "ledger": "The region's system accounts and their balances.",
    "merchants": "Merchant onboarding, balances and POS API keys.",
    "audit": "The audit trail of who did what.",
    "expiry": "Runs that expire lots past their validity.",
    "payments": "Paying at the shop: store QR codes, payments, refunds, cards, payment requests, fee plans, transfers.",
    "campaigns": "Reward and grant campaigns, their budgets and merchant classes.",
    "grants": "Points granted by a campaign: one by one, or by CSV upload; partner keys.",
    "premium": "Premium (プレミアム付き) coupon sales: offers, purchases, lottery applications and draws.",
    "coupons": "Coupons, bundles and transit tickets.",
    "transit": "Bus operators' fare products, residents' e-tickets and their rotating codes, validators' scans.",
    "segments": "Residents' profiles and consents for offers; the operator's segments, audience counts and announcements.",
    "settlement": "Merchants' settlement cycles and payout bank accounts, the source account, payout settings, periods; the base-date report.",
    "settlement runs": "Settlement runs per period: merchants paid, statements (CSV, PDF), the operator summary, held-back merchants, the 全銀 transfer file.",
    "kpi": "The city's KPI report per fiscal year (JSON, CSV, XLSX, PNG), its baseline cashless rates and targets.",
    "surveys": "In-app surveys: one 1–5 rating per resident and survey, the KPI 満足度.",
    "platform": "Partner services' online checkouts (with their API key), the resident's approval in the app, "
                "and the outbox of signed webhooks (the operator's view).",
    "data sharing": "A resident's choice whether their payment results go to the city's data platform.",
}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "An RFC 9457 problem detail. Switch on `type`; some problems carry extra members "
    "(`errors` for validation, `balance` and `required` for 402, …).",
    "properties": {
        "type": {"type": "string", "description": f"Stable, machine-readable: `{TYPE_PREFIX}<slug>`."},
        "title": {"type": "string", "description": "Short summary of the problem type."},
        "status": {"type": "integer", "description": "The HTTP status code."},
        "detail": {"type": "string", "description": "What happened in this occurrence."},
        "instance": {"type": "string", "description": "The request path."},
        "errors": {
            "type": "array",
            "description": "Validation problems: each failing field.",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
                "required": ["loc", "msg", "type"],
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
    "additionalProperties": True,
    "examples": [
        {
            "type": f"{TYPE_PREFIX}insufficient-balance",
            "title": "The balance is too low",
            "status": 402,
            "detail": "The balance is 300; 880 is needed.",
            "instance": "/v1/payments",
            "balance": 300,
            "required": 880,
        }
    ],
}
HEADERS: dict[str, Any] = {
    REQUEST_ID_HEADER: {
        "description": "This request's id, as sent by the client (up to 64 printable characters) or made "
        "by the server; it names the request in the logs and in the audit trail.",
        "required": True,
        "schema": {"type": "string", "maxLength": 64},
        "example": "4f9c2a7e0b1d4c3e8a6f5b2d1c0e9f8a",
    },
    REPLAY_HEADER: {
        "description": "`true` when this is the stored response to an earlier request with the same "
        "Idempotency-Key and body: nothing was done again.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}


# Models of bodies an endpoint reads itself (to check a signature over the raw bytes first), which
# FastAPI therefore does not see; `raw_json_body` registers them for the document's components.
_RAW_BODY_MODELS: dict[str, type[BaseModel]] = {}


def raw_json_body(model: type[BaseModel], description: str | None = None) -> dict[str, Any]:
    """`openapi_extra` for an endpoint that parses `model` from the raw body itself."""
    _RAW_BODY_MODELS[model.__name__] = model
    body: dict[str, Any] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
    }
    if description:
        body["description"] = description
    return {"requestBody": body}


def install(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json (and to `app.openapi()`), built once."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes,
        servers=SERVERS, license_info=LICENSE,
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    _add_raw_body_models(document, schemas)
    components["headers"] = {**components.get("headers", {}), **HEADERS}
    routes = {(route.path_format, method.lower()): route for route in _routes(app) for method in route.methods}
    operation_ids = _operation_ids(routes)
    for path, method, operation in _operations(document):
        route = routes[(path, method)]
        operation["operationId"] = operation_ids[(path, method)]
        operation["security"] = _security(route.dependant)
        idempotent = any(p.get("in") == "header" and p.get("name") == IDEMPOTENCY_HEADER
                         for p in operation.get("parameters", ()))
        for parameter in operation.get("parameters", ()):
            if parameter.get("in") == "header" and parameter.get("name") == IDEMPOTENCY_HEADER:
                parameter.setdefault("example", "8d3e5c1a-6b7f-4e2d-9a0c-3f1b2e4d5c6a")
        for status, response in operation["responses"].items():
            _complete_response(status, response, replayable=idempotent)
        body = operation.get("requestBody", {})
        for media_type, content in body.get("content", {}).items():
            content.setdefault("schema", _schema_for(media_type))
    _drop_unused_validation_schemas(document)
    document["tags"] = _tags(document)
    return document


# --- the parts --------------------------------------------------------------------------------


def _routes(app: FastAPI) -> Iterator[APIRoute]:
    for route in app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            yield route


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def _operation_ids(routes: dict[tuple[str, str], APIRoute]) -> dict[tuple[str, str], str]:
    """The endpoint function's name (what a generated client calls it); an explicit
    `operation_id` wins. Names that two operations share are qualified by the first tag
    (`coupons_health`, `settlement_health`), so a new homonym never silently shadows another."""
    def short(route: APIRoute, method: str) -> str:
        if route.operation_id:
            return route.operation_id
        return route.name if len(route.methods) == 1 else f"{route.name}_{method}"

    names = {key: short(route, key[1]) for key, route in routes.items()}
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    for key, name in names.items():
        route = routes[key]
        if counts[name] > 1 and not route.operation_id:
            tag = str(route.tags[0]) if route.tags else key[0].strip("/").split("/")[-1]
            names[key] = re.sub(r"\W+", "_", tag).strip("_").lower() + "_" + name
    seen: dict[str, tuple[str, str]] = {}
    for key, name in names.items():
        if name in seen:
            raise ValueError(f"operationId {name!r} is shared by {seen[name]} and {key}: set operation_id= on one")
        seen[name] = key
    return names


def _security(dependant: Dependant) -> list[dict[str, list[str]]]:
    """What the operation accepts, from its role gates: the roles every gate admits (a caller must
    pass them all). A role only an API key carries needs the key; any other role, a bearer token."""
    calls = list(_calls(dependant))
    if current_principal not in calls:
        return []
    roles = frozenset(Role)
    for call in calls:
        gated = gate_roles(call)
        if gated is not None:
            roles &= gated
    schemes = []
    if roles - KEY_ROLES:
        schemes.append({bearer_scheme.scheme_name: []})
    if roles & KEY_ROLES:
        schemes.append({api_key_scheme.scheme_name: []})
    return schemes


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _complete_response(status: str, response: dict[str, Any], *, replayable: bool) -> None:
    content = response.get("content", {})
    for media_type, entry in list(content.items()):
        schema = entry.get("schema", {})
        if schema.get("$ref") == "#/components/schemas/HTTPValidationError":
            # FastAPI's default 422; the app answers it as problem+json (shared/errors.py).
            del content[media_type]
            content[PROBLEM_JSON] = {"schema": PROBLEM_REF}
            response["description"] = "invalid request"
        elif media_type == PROBLEM_JSON:
            entry["schema"] = PROBLEM_REF
        else:
            entry.setdefault("schema", _schema_for(media_type))
    headers = response.setdefault("headers", {})
    headers.setdefault(REQUEST_ID_HEADER, {"$ref": f"#/components/headers/{REQUEST_ID_HEADER}"})
    if replayable and status.startswith("2"):
        headers.setdefault(REPLAY_HEADER, {"$ref": f"#/components/headers/{REPLAY_HEADER}"})


def _schema_for(media_type: str) -> dict[str, Any]:
    """A schema for a body that carries none: text as a string, anything else as bytes."""
    if media_type.startswith("text/") or media_type.endswith("+xml"):
        return {"type": "string"}
    return {"type": "string", "format": "binary"}


def _add_raw_body_models(document: dict[str, Any], schemas: dict[str, Any]) -> None:
    text = repr(document["paths"])
    for name, model in _RAW_BODY_MODELS.items():
        if f"#/components/schemas/{name}" not in text:
            continue  # its endpoint is not served by this app
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for nested, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(nested, definition)
        assert schemas.get(name, schema) == schema, f"two different schemas named {name}"
        schemas[name] = schema


def _drop_unused_validation_schemas(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    text = repr(document["paths"])
    if "#/components/schemas/HTTPValidationError" not in text:
        schemas.pop("HTTPValidationError", None)
        if "#/components/schemas/ValidationError" not in text + repr(schemas):
            schemas.pop("ValidationError", None)


def _tags(document: dict[str, Any]) -> list[dict[str, str]]:
    """Every tag the operations use, in order of first use, with its description."""
    used: list[str] = []
    for _, _, operation in _operations(document):
        for tag in operation.get("tags", ()):
            if tag not in used:
                used.append(tag)
    return [{"name": tag, "description": TAG_DESCRIPTIONS[tag]} if tag in TAG_DESCRIPTIONS else {"name": tag}
            for tag in used]


# The problems (RFC 9457) any endpoint may answer with, for its `responses=`.
PROBLEMS = {
    status: {"description": description, "content": {"application/problem+json": {}}}
    for status, description in {
        400: "bad request (malformed JSON, missing Idempotency-Key, bad cursor)",
        401: "not authenticated",
        403: "role not allowed",
        404: "not found, or not visible to the caller",
        409: "conflicts with the current state",
        413: "request body too large",
        422: "invalid request",
    }.items()
}
INSUFFICIENT_BALANCE = {
    402: {"description": "the paying account holds too little (insufficient-balance)",
          "content": {"application/problem+json": {}}}
}
