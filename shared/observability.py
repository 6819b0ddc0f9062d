"""Logs, request ids, metrics, and the body-size guard, as one pure ASGI middleware (cheaper on
the hot path than Starlette's BaseHTTPMiddleware).

Logs are JSON lines. They carry the method, the route template (never the query string) and the
request id; never a token, a secret or a resident's personal data.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import DuplicateJsonKey, PayloadTooLarge, Problem, problem_response

# Routes that take a file upload: (method, pattern of the path's end). Requests to them may carry
# a body up to `settings.max_upload_bytes`; every other request keeps `max_body_bytes`.
_large_body_routes: list[tuple[str, re.Pattern[str]]] = []


def allow_large_body(method: str, path_pattern: str) -> None:
    """Let one route (a file upload) take bodies up to `settings.max_upload_bytes`. Looked up only
    when a body is over the small limit, so the small requests of the hot path pay nothing."""
    _large_body_routes.append((method.upper(), re.compile(path_pattern + "$")))


def _upload_limit(scope: Scope) -> int | None:
    """The larger limit if the request goes to a large-body route, else None."""
    path = scope.get("path", "")
    if any(method == scope.get("method") and pattern.search(path) for method, pattern in _large_body_routes):
        settings = getattr(getattr(scope.get("app"), "state", None), "settings", None)
        return getattr(settings, "max_upload_bytes", None)
    return None


request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
access_log = logging.getLogger("chiikipay.access")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("{asctime}{levelname}{name}{message}", style="{", rename_fields={"levelname": "level"}))
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log prints query strings; ours prints route templates instead.
    logging.getLogger("uvicorn.access").disabled = True


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "chiikipay_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "chiikipay_http_request_seconds", "HTTP request latency", ["method", "route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RequestMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            guarded = await self._guard_body(scope, receive)
            if isinstance(guarded, int):
                problem = PayloadTooLarge(f"The body may be at most {guarded} bytes.")
                await problem_response(problem)(scope, receive, send_with_id)
            elif isinstance(guarded, Problem):
                await problem_response(guarded)(scope, receive, send_with_id)
            else:
                await self.app(scope, guarded, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(elapsed)
            access_log.info(
                "request",
                extra={"method": scope["method"], "route": route, "status": status,
                       "ms": round(elapsed * 1000, 2), "request_id": request_id},
            )
            request_id_var.reset(token)

    async def _guard_body(self, scope: Scope, receive: Receive) -> Receive | int | Problem:
        """The receive to hand the app, or the limit a body is over (then nothing is read further),
        or the problem with a JSON body that names a key twice.

        A body within the small limit is read here whole (JSON commands). A larger one is let
        through only to a file-upload route, and then not read here: the endpoint reads it after
        it has authenticated and authorised the caller, through a receive that stops at the
        upload limit. So an unauthenticated client cannot make the server hold large bodies."""
        limit = self.max_body_bytes
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            upload = _upload_limit(scope)
            if upload is None or int(declared) > upload:
                return upload or limit
            return _bounded(receive, [], 0, upload)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _replay(b"".join(chunks), receive)
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            more = message.get("more_body", False)
            if size > limit:
                upload = _upload_limit(scope)
                if upload is None or size > upload:
                    return upload or limit
                return _bounded(receive, chunks, size, upload, done=not more)
            if not more:
                body = b"".join(chunks)
                return _ambiguous_json(scope, body) or _replay(body, receive)


def _ambiguous_json(scope: Scope, body: bytes) -> Problem | None:
    """A JSON body naming a key twice is refused: parsers disagree on which value counts (ours
    take the last), so a signature, a log or a reviewer could see another request than the one
    that runs. Malformed JSON is left to the endpoint's own answer."""
    if not body or b'"' not in body:
        return None
    media_type = dict(scope.get("headers", [])).get(b"content-type", b"application/json").split(b";")[0].strip()
    if media_type != b"application/json" and not media_type.endswith(b"+json"):
        return None
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                repeated.append(key)
            seen.add(key)
        return dict(items)

    try:
        json.loads(body, object_pairs_hook=pairs)
    except ValueError:
        return None
    if repeated:
        return DuplicateJsonKey(f"The body names {', '.join(sorted(set(repeated)))} more than once.",
                                keys=sorted(set(repeated)))
    return None


def _bounded(receive: Receive, read: list[bytes], size: int, limit: int, *, done: bool = False) -> Receive:
    """What was read so far, then the rest of the body as the app asks for it, refused with 413
    (raised into the endpoint reading it) once it passes `limit`."""
    pending = b"".join(read)
    handed = not read
    finished = done

    async def bounded() -> Message:
        nonlocal handed, size
        if not handed:
            handed = True
            return {"type": "http.request", "body": pending, "more_body": not finished}
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise PayloadTooLarge(f"The body may be at most {limit} bytes.")
        return message

    return bounded


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hand the app the body already read, then pass through (e.g. http.disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
