"""Answers given before FastAPI's routing and dependency resolution, for the few requests that
come in floods: a coupon's rush, its first thousand claims within a second, then the rush still
claiming once it has sold out (ten refusals for every claim made). Routing, the dependency
machinery, the session and the exception handlers cost several times what such a claim or refusal
needs (bench/RESULTS.md, 2026-12-02 afternoon and 2026-12-03).

An early answer belongs to one route: the route's module writes it beside the endpoint, from the
same rules (the same gate, the same key rule, the same service function, the same problem), and
the composition root installs it (`EarlyAnswers`, inside the request middleware, so that request
ids, logs, metrics and the body guard apply as to any request). The middleware matches the route
as the router would; the answer returns the response, or None wherever the route's own path
must answer — and that path then answers exactly as if there were no early answer. So an early
answer answers only what its endpoint would answer the same, and lets everything else through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from fastapi.routing import APIRoute, APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

EarlyAnswer = Callable[[Request], Awaitable[Response | None]]


def route_of(router: APIRouter, endpoint: Callable[..., object]) -> APIRoute:
    """The router's route that runs `endpoint`."""
    return next(r for r in router.routes if isinstance(r, APIRoute) and r.endpoint is endpoint)


class EarlyAnswers:
    def __init__(self, app: ASGIApp, *, answers: Sequence[tuple[APIRoute, EarlyAnswer]]) -> None:
        self.app = app
        self.answers = tuple(answers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route, answer in self.answers:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)  # the route and its path parameters, as the router sets them
                    response = await answer(Request(scope, receive))
                    if response is not None:
                        await response(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)
