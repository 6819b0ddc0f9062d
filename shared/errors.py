"""Errors as RFC 9457 problem details (`application/problem+json`).

Every business error is a `Problem` subclass carrying its HTTP status and a stable `type`
(`urn:chiikipay:problem:<slug>`) that clients switch on. 500 is kept for bugs only.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:chiikipay:problem:"


class Problem(Exception):
    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    @property
    def type(self) -> str:
        return TYPE_PREFIX + self.slug

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequest(Problem):
    status, slug, title = 400, "bad-request", "Bad request"


class MalformedJSON(Problem):
    status, slug, title = 400, "malformed-json", "The request body is not valid JSON"


class DuplicateJsonKey(Problem):
    status, slug, title = 400, "duplicate-json-key", "The JSON body names a key more than once"


class IdempotencyKeyMissing(Problem):
    status, slug, title = 400, "idempotency-key-missing", "Idempotency-Key header is required"


class Unauthenticated(Problem):
    status, slug, title = 401, "unauthenticated", "Authentication required"


class InvalidToken(Problem):
    status, slug, title = 401, "invalid-token", "The bearer token is not valid"


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Not allowed for this role"


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "The request body is too large"


class Unprocessable(Problem):
    status, slug, title = 422, "unprocessable", "The request cannot be processed"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "service-unavailable", "A backing service is unavailable"


def problem_response(
    problem: Problem, request: Request | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    instance = request.url.path if request is not None else None
    return JSONResponse(
        problem.body(instance), status_code=problem.status, media_type=PROBLEM_JSON,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _allowed_methods(request: Request) -> str:
    """Every method any route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.scope["path"]):
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        if any(e["type"] == "json_invalid" for e in errors):
            return problem_response(MalformedJSON(errors=errors), request)
        if any(e["loc"] == ["header", "Idempotency-Key"] and e["type"] == "missing" for e in errors):
            return problem_response(
                IdempotencyKeyMissing("Every state-changing request needs an Idempotency-Key header."), request
            )
        problem = Unprocessable("The request failed validation.", errors=errors)
        problem.slug, problem.title = "validation-error", "Invalid request"
        return problem_response(problem, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        problem = Problem(str(exc.detail))
        problem.status = exc.status_code
        problem.slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        problem.title = str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return problem_response(problem, request, headers=headers)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        problem = Problem("An internal error occurred; nothing was committed.")
        problem.status, problem.slug, problem.title = 500, "internal-error", "Internal error"
        return problem_response(problem, request)
