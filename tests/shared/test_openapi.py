"""The OpenAPI document serves a generated client (issue 11, item 13): it generates without a
warning, every operation is in the client and its errors parse as `Problem`; it passes Redocly's
lint; each operation declares the security its role gate really accepts."""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.application import create_app
from shared.config import Settings
from tests.helpers import assert_problem, idem, snapshot

REPO = Path(__file__).resolve().parents[2]
CLIENT_SETTINGS = REPO / "clients" / "openapi-python-client.yaml"
REDOCLY = "@redocly/cli@2.77.0"  # also in .ci/run
METHODS = ("get", "put", "post", "delete", "patch")
BEARER, API_KEY = "HTTPBearer", "APIKeyHeader"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(Settings(_env_file=None)).openapi()


def operations(document: dict[str, Any]):
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


# --- the generated Python client --------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(document, tmp_path_factory) -> tuple[Path, str]:
    """openapi-python-client run as a city's app developer would (README: Generated clients), with
    its post-generation hooks (ruff) on the PATH; its output, for the test to read."""
    folder = tmp_path_factory.mktemp("client")
    (folder / "openapi.json").write_text(json.dumps(document))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    generator = shutil.which("openapi-python-client", path=env["PATH"])
    assert generator, "openapi-python-client comes with the test extra"
    run = subprocess.run(
        [generator, "generate", "--path", "openapi.json", "--output-path", "generated", "--config",
         str(CLIENT_SETTINGS)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return folder / "generated", run.stdout + run.stderr


def test_the_python_client_generates_without_a_warning(generated):
    _, output = generated
    # The whole output is the one line naming the folder: any warning, skipped endpoint or
    # skipped post-hook would add lines.
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Generating ") and lines[0].endswith("generated"), output


def test_every_operation_is_in_the_generated_client(generated, document):
    folder, _ = generated
    package = "chiikipay_client"
    sys.path.insert(0, str(folder))
    try:
        missing = []
        for path, method, operation in operations(document):
            tag = re.sub(r"\W+", "_", operation["tags"][0]).lower()
            module_name = f"{package}.api.{tag}.{operation['operationId']}"
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError:
                missing.append(f"{method.upper()} {path}")
                continue
            assert hasattr(module, "asyncio_detailed"), module_name
        assert missing == []
        # The body of the bank webhook (once a dangling reference) is a model of the client.
        webhook = importlib.import_module(f"{package}.api.top_up.bank_topup")
        assert "BankTopupEvent" in str(webhook.asyncio_detailed.__annotations__["body"])
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
            del sys.modules[name]


async def test_a_generated_client_reads_a_refusal_as_a_problem_and_an_image_as_bytes(generated, app, town, tokens):
    """A 402 (once undeclared: strict clients raised on it) arrives as the typed Problem, with its
    type to switch on; a store's QR arrives as the PNG's bytes (once dropped from the client)."""
    folder, _ = generated
    package = "chiikipay_client"
    sys.path.insert(0, str(folder))
    try:
        client_module = importlib.import_module(f"{package}.client")
        pay = importlib.import_module(f"{package}.api.payments.pay")
        store_qr_png = importlib.import_module(f"{package}.api.payments.store_qr_png")
        list_stores = importlib.import_module(f"{package}.api.payments.list_stores")
        models = importlib.import_module(f"{package}.models")

        def as_(headers: dict[str, str]):
            return client_module.AuthenticatedClient(
                base_url="http://chiikipay.test", token=headers["Authorization"].removeprefix("Bearer "),
                httpx_args={"transport": httpx.ASGITransport(app=app)},
            )

        teahouse = town.merchants["Tsurugajo Teahouse"]
        async with as_(tokens.operator()) as operator:
            stores = (await list_stores.asyncio_detailed(uuid.UUID(teahouse), client=operator)).parsed
        async with as_(tokens.merchant_staff(teahouse)) as staff:
            png = (await store_qr_png.asyncio_detailed(stores[0].id, client=staff)).parsed
        assert png.payload.read().startswith(b"\x89PNG\r\n\x1a\n")

        qr = (await httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://chiikipay.test").get(
            f"/v1/stores/{stores[0].id}/qr", headers=tokens.merchant_staff(teahouse))).json()["payload"]
        async with as_(tokens.resident()) as resident:
            answer = await pay.asyncio_detailed(
                client=resident, body=models.PaymentCreate(qr=qr, amount=30_001), idempotency_key=str(uuid.uuid4())
            )
        assert answer.status_code == 402
        assert isinstance(answer.parsed, models.Problem)
        assert answer.parsed.type_ == "urn:chiikipay:problem:insufficient-balance"
        assert answer.parsed.additional_properties["required"] == 30_001
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
            del sys.modules[name]


# --- lint -------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("npx") is None, reason="Redocly's linter runs on Node.js (npx), not installed here")
def test_the_document_passes_redocly_lint(document, tmp_path):
    """Redocly's recommended rules: no error. Its one remaining warning is by design: health,
    readiness and metrics take no input and answer no 4xx."""
    (tmp_path / "openapi.json").write_text(json.dumps(document))
    run = subprocess.run(
        ["npx", "--yes", REDOCLY, "lint", "openapi.json", "--format=json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"},
    )
    report = json.loads(run.stdout)
    problems = [(p["severity"], p["ruleId"], p["location"][0]["pointer"]) for p in report["problems"]]
    assert [p for p in problems if p[0] == "error"] == [], run.stdout
    assert run.returncode == 0, run.stderr
    unexpected = [p for p in problems if p[1] != "operation-4xx-response"]
    assert unexpected == []
    # That warning is only where no 4xx can be answered: the ungated operational endpoints.
    for _, _, pointer in problems:
        path, method = pointer.split("/")[2].replace("~1", "/"), pointer.split("/")[3]
        operation = document["paths"][path][method]
        assert operation["security"] == [] and "requestBody" not in operation and not operation.get("parameters")


def test_every_reference_resolves(document):
    """A dangling $ref (the bank webhook's `BankTopupEvent`) breaks openapi-typescript outright."""
    refs = re.findall(r'"\$ref": "#/([^"]+)"', json.dumps(document))
    for ref in refs:
        node: Any = document
        for part in ref.split("/"):
            assert isinstance(node, dict) and part in node, ref
            node = node[part]


# --- what every operation shares ----------------------------------------------------------------


def test_every_problem_response_is_a_problem(document):
    problem_responses = 0
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            content = response.get("content", {})
            if status.startswith(("4", "5")):
                assert list(content) == ["application/problem+json"], (method, path, status)
            if "application/problem+json" in content:
                problem_responses += 1
                assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert problem_responses > 600
    assert {"type", "title", "status", "detail"} <= set(document["components"]["schemas"]["Problem"]["required"])
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_every_body_has_a_schema_and_one_media_type_per_image(document):
    for path, method, operation in operations(document):
        for response in operation["responses"].values():
            for media_type, content in response.get("content", {}).items():
                assert "schema" in content, (method, path, media_type)
        for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
            assert "schema" in content, (method, path, media_type)
    media = {path: list(document["paths"][path]["get"]["responses"]["200"]["content"])
             for path in ("/v1/stores/{store_id}/qr.png", "/v1/stores/{store_id}/qr.svg", "/v1/stores/{store_id}/stand.pdf")}
    assert media == {"/v1/stores/{store_id}/qr.png": ["image/png"], "/v1/stores/{store_id}/qr.svg": ["image/svg+xml"],
                     "/v1/stores/{store_id}/stand.pdf": ["application/pdf"]}


def test_response_headers_are_declared(document):
    for path, method, operation in operations(document):
        keyed = any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", ()) if p["in"] == "header")
        for status, response in operation["responses"].items():
            assert "X-Request-Id" in response["headers"], (method, path, status)
            assert ("Idempotent-Replayed" in response["headers"]) == (keyed and status.startswith("2")), (path, status)
    upload = document["paths"]["/v1/campaigns/{campaign_id}/grant-uploads"]["post"]["responses"]["202"]
    assert "Location" in upload["headers"]


def test_statuses_the_money_paths_answer_are_declared(document):
    declared = {(method, path): set(operation["responses"]) for path, method, operation in operations(document)}
    for path in ("/v1/payments", "/v1/cpm-payments", "/v1/card-payments", "/v1/payments/{payment_id}/refunds",
                 "/v1/merchants/{merchant_id}/transfers", "/v1/wallets/{wallet_id}/cashouts"):
        assert "402" in declared[("post", path)], path
    for method, path in (("post", "/v1/wallet/cpm-tokens"), ("post", "/v1/cpm-payments"),
                         ("get", "/v1/merchants/{merchant_id}/events")):
        assert "503" in declared[(method, path)], path


def test_operation_ids_are_short_and_unique(document):
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))
    for operation_id in ids:
        assert re.fullmatch(r"[a-z][a-z0-9_]{2,39}", operation_id), operation_id
    by_path = {(m, p): o["operationId"] for p, m, o in operations(document)}
    assert by_path[("post", "/v1/payments")] == "pay"
    assert by_path[("get", "/v1/coupons/health")] == "coupons_health"


def test_servers_licence_and_described_tags(document):
    assert document["servers"] and document["info"]["license"]["name"]
    used = {tag for _, _, operation in operations(document) for tag in operation["tags"]}
    assert {tag["name"] for tag in document["tags"]} == used
    assert all(tag.get("description") for tag in document["tags"])


# --- security per operation -------------------------------------------------------------------


def test_security_follows_the_role_gate(document):
    security = {(m, p): o["security"] for p, m, o in operations(document)}
    assert security[("get", "/v1/terminal")] == [{API_KEY: []}]  # terminals only
    assert security[("post", "/v1/payments")] == [{BEARER: []}]  # residents only
    assert security[("post", "/v1/campaigns/{campaign_id}/grants")] == [{BEARER: []}, {API_KEY: []}]  # operator, partner
    assert security[("get", "/v1/merchants/{merchant_id}")] == [{BEARER: []}, {API_KEY: []}]
    for unauthenticated in (("post", "/v1/webhooks/bank/topups"), ("get", "/healthz"), ("get", "/readyz")):
        assert security[unauthenticated] == []


def _request_for(path: str, method: str, operation: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
    kwargs: dict[str, Any] = {}
    if "requestBody" in operation:
        kwargs["content"] = b"{}"
        kwargs["headers"] = {"Content-Type": next(iter(operation["requestBody"]["content"]))}
    return url, kwargs


async def test_each_operation_refuses_the_credential_it_does_not_declare(client, tokens, town, sessionmaker, document):
    """Sent to every operation: an API key (a terminal's and a partner's) where only bearer tokens
    are declared, and every person's token where only API keys are; each is refused 403 by the
    role gate, before anything else is read, and nothing changes."""
    teahouse = town.merchants["Tsurugajo Teahouse"]
    pos = await client.post(f"/v1/merchants/{teahouse}/api-keys", json={"name": "register"},
                            headers=idem(tokens.merchant_admin(teahouse)))
    campaign = await client.post("/v1/campaigns", json={"kind": "grant", "name": "Volunteer points",
                                                        "name_ja": "ボランティアポイント"}, headers=idem(tokens.operator()))
    assert campaign.status_code == 201, campaign.text
    partner = await client.post(f"/v1/campaigns/{campaign.json()['id']}/partner-keys", json={"name": "NPO"},
                                headers=idem(tokens.operator()))
    keys = [{"X-API-Key": pos.json()["secret"]}, {"X-API-Key": partner.json()["secret"]}]
    people = [tokens.resident(), tokens.operator(), tokens.auditor(), tokens.merchant_admin(teahouse),
              tokens.merchant_staff(teahouse)]
    before = await snapshot(sessionmaker)
    checked = {"bearer only": 0, "key only": 0}
    for path, method, operation in operations(document):
        schemes = [name for requirement in operation["security"] for name in requirement]
        if schemes == [BEARER]:
            refused, kind = keys, "bearer only"
        elif schemes == [API_KEY]:
            refused, kind = people, "key only"
        else:
            continue
        url, kwargs = _request_for(path, method, operation)
        for credential in refused:
            headers = {**kwargs.get("headers", {}), **idem(credential)}
            response = await client.request(method.upper(), url, **{**kwargs, "headers": headers})
            assert_problem(response, 403, "forbidden")
        checked[kind] += 1
    assert checked["bearer only"] > 40 and checked["key only"] >= 1
    assert await snapshot(sessionmaker) == before
