"""shared/routing.py: the routes a path's first segments leave are enough to decide every request
exactly as Starlette's walk over the app's whole route list decides it."""

from __future__ import annotations

import re

from starlette.routing import BaseRoute, Match, Mount, Route

from shared.routing import RoutesByPrefix, literal_prefix

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
SAMPLE_ID = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


def _filled(path: str) -> str:
    """A concrete path the route's template matches."""
    def sample(m: re.Match[str]) -> str:
        return {":int": "7", ":path": "a/b"}.get(m.group(2) or "", SAMPLE_ID)
    return re.sub(r"{([a-zA-Z_][a-zA-Z0-9_]*)(:[a-zA-Z_]+)?}", sample, path)


def _paths(routes: list[BaseRoute]) -> set[str]:
    paths = {"/", "/x", "/x/", "/v1", "/v1/", "/healthz/", "/nope/x/y", "/v1/nope/x", "/v1/coupons/payments/", "/docs/assets/swagger-ui.css",
             "//v1/x", "/v1//x"}
    for route in routes:
        if isinstance(route, (Route, Mount)):
            path = _filled(route.path)
            paths |= {path, path + "/", path + "/extra", path.rstrip("/").rsplit("/", 1)[0] + "/other"}
    return paths


def _decision(routes: list[BaseRoute], path: str, method: str) -> tuple[str, object, dict]:
    """What the router does with the request: the route of the first full match, else of the
    first partial one (405), else a redirect to the slash twin if a route matches it, else 404."""
    scope = {"type": "http", "path": path, "root_path": "", "method": method, "headers": []}
    partial = None
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            return "full", route, child.get("path_params", {})
        if match is Match.PARTIAL and partial is None:
            partial = (route, child.get("path_params", {}))
    if partial is not None:
        return "partial", *partial
    if path != "/":
        twin = dict(scope, path=path.rstrip("/") if path.endswith("/") else path + "/")
        if any(route.matches(twin)[0] is not Match.NONE for route in routes):
            return "redirect", None, {}
    return "not found", None, {}


def test_the_narrowed_routes_decide_every_request_as_the_whole_list(app):
    """The app as the tests serve it (every service's routes)."""
    dispatch = app.router.middleware_stack
    assert isinstance(dispatch, RoutesByPrefix)
    routes = list(app.router.routes)
    paths = sorted(_paths(routes))
    assert len(paths) > len(routes)  # every route's own path, its twins and neighbours, and odd ones
    for path in paths:
        narrowed = dispatch.narrowed(path)
        assert len(narrowed.routes) < len(routes)
        for method in METHODS:
            assert _decision(narrowed.routes, path, method) == _decision(routes, path, method), (path, method)


def test_a_deep_route_is_tried_among_few(app):
    narrowed = app.router.middleware_stack.narrowed("/v1/coupons/payments")
    assert len(narrowed.routes) < len(app.router.routes) // 4
    assert [r.path for r in narrowed.routes if getattr(r, "path", "").startswith("/v1/coupons/payments")]


def test_literal_prefix_stops_at_a_parameter():
    async def endpoint(request):  # never called
        raise AssertionError

    assert literal_prefix(Route("/v1/coupons/{coupon_id}/claims", endpoint)) == ("v1", "coupons")
    assert literal_prefix(Route("/v1/{region}/x", endpoint)) == ("v1",)
    assert literal_prefix(Route("/{anything:path}", endpoint)) == ()
    assert literal_prefix(Mount("/docs/assets", routes=[])) == ("docs", "assets")


async def test_405_404_and_the_slash_redirect_answer_as_before(app, client):
    wrong_method = await client.delete("/v1/coupons/payments/preview")
    unknown = await client.get("/v1/coupons/nothing/here/at/all")
    twin = await client.get("/v1/settlement/runs/", follow_redirects=False)
    assert wrong_method.status_code == 405 == _expected_status(app, "/v1/coupons/payments/preview", "DELETE")
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("application/problem+json")
    assert twin.status_code == 307 and twin.headers["location"].endswith("/v1/settlement/runs")


def _expected_status(app, path: str, method: str) -> int:
    kind = _decision(list(app.router.routes), path, method)[0]
    return {"partial": 405, "not found": 404, "redirect": 307}[kind]
