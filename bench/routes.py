"""Route matching in-process (shared/routing.py): for a few paths, the time to find the route
by Starlette's walk over the app's whole route list against the walk over the routes the path's
first two segments leave, in the same run. No server, no database: the app is only built.

    .venv/bin/python bench/routes.py
"""

from __future__ import annotations

import platform
import time

from starlette.routing import Match

from app.application import create_app
from shared.config import Settings

PATHS = [
    ("POST", "/v1/payments"),
    ("POST", "/v1/coupons/payments"),
    ("POST", "/v1/coupons/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/claims"),
    ("POST", "/v1/me/checkouts/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/approve"),
]
CALLS, ROUNDS = 5_000, 7


def first_full(routes, scope):
    for route in routes:
        if route.matches(scope)[0] is Match.FULL:
            return route
    return None


def best_microseconds(work) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(CALLS):
            work()
        times.append((time.perf_counter() - start) / CALLS * 1e6)
    return min(times)


def main() -> None:
    app = create_app(Settings(_env_file=None))
    dispatch = app.router.middleware_stack
    routes = app.router.routes
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, {len(routes)} routes")
    for method, path in PATHS:
        scope = {"type": "http", "path": path, "root_path": "", "method": method, "headers": []}
        narrowed = dispatch.narrowed(path).routes
        found = first_full(routes, scope)
        assert found is not None and found is first_full(narrowed, scope), path
        whole = best_microseconds(lambda: first_full(routes, scope))
        few = best_microseconds(lambda: first_full(dispatch.narrowed(path).routes, scope))
        print(f"{method} {path}: whole list {whole:.1f} µs, narrowed {few:.1f} µs "
              f"({len(narrowed)} of {len(routes)} routes tried at most)")


if __name__ == "__main__":
    main()
