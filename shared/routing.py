"""The app's route matching, narrowed by the request path's first two segments.

Starlette tries the routes in order, one regular expression each, until one matches: with 200
routes, a request for one of the last (the coupons', the platform's) pays for every route before
it, about 1 µs each (bench/RESULTS.md, 2026-12-03: 165 µs to reach POST /v1/coupons/payments,
38 µs for POST /v1/payments). A route can only match a path whose first segments equal its own
literal ones (a parameter matches one segment, or, as `{x:path}`, the rest), so only the routes
whose literal prefix agrees with the path's need trying, and in the same order the router would
try them. `RoutesByPrefix` keeps, per known prefix, a Router of just those routes and hands the
request to it: the same first full match, the same partial match (405), the same slash redirect
and 404 as the whole list gives. (A path and its slash-redirect twin have the same first two
segments, or, for `/v1/` and `/v1`, the same first one with an empty second, which no route's
literal prefix holds: both are narrowed to the same routes.)
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route, Router, get_route_path
from starlette.types import Receive, Scope, Send

DEPTH = 2  # segments of literal prefix the routes are grouped by


def literal_prefix(route: BaseRoute) -> tuple[str, ...]:
    """The route's first path segments that are literal (at most DEPTH); () for a route that
    could match any path (a host route, a websocket route of another kind, a parameter first)."""
    if not isinstance(route, (Route, Mount)) or not route.path.startswith("/"):
        return ()
    # (A mount matches its path and everything below it: its own segments are its prefix too.)
    prefix: list[str] = []
    for segment in route.path.strip("/").split("/")[:DEPTH]:
        if "{" in segment or not segment:
            break
        prefix.append(segment)
    return tuple(prefix)


class RoutesByPrefix:
    """Installed as the app router's dispatch (`install`); the router keeps its routes, its
    lifespan and url_path_for."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.whole = router.app  # the router's own dispatch over all its routes
        self._indexed = -1  # how many routes the index was built from
        self._narrowed: dict[tuple[str, ...], Router] = {}

    def _index(self) -> None:
        routes = list(self.router.routes)
        prefixes = [literal_prefix(r) for r in routes]
        self._narrowed = {}
        for key in {(), *prefixes}:  # () too: the routes any path may match
            # The routes that may match a path beginning with `key`: those whose own prefix is a
            # beginning of `key` (a shorter one included), in the router's order.
            chosen = [r for r, p in zip(routes, prefixes, strict=True) if key[: len(p)] == p]
            self._narrowed[key] = Router(chosen, redirect_slashes=self.router.redirect_slashes,
                                         default=self.router.default)
        self._indexed = len(routes)

    def narrowed(self, path: str) -> Router:
        """The Router of the routes that may match `path` (or its slash-redirect twin)."""
        if self._indexed != len(self.router.routes):  # a route added since: index again
            self._index()
        key = tuple(path.split("/")[1:][:DEPTH])
        while key not in self._narrowed:  # the longest known prefix of the path; () is known
            key = key[:-1]
        return self._narrowed[key]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope.setdefault("router", self.router)  # url_for sees every route
            await self.narrowed(get_route_path(scope)).app(scope, receive, send)
            return
        await self.whole(scope, receive, send)  # the lifespan


def install(router: Router) -> None:
    """Make `router` match through RoutesByPrefix; its dispatch must be its own (no router-level
    middleware, which this would bypass)."""
    assert router.middleware_stack == router.app, "the router has middleware of its own"
    router.middleware_stack = RoutesByPrefix(router)
