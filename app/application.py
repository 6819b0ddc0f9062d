"""Builds the FastAPI app for one service or for all of them in one process (the embedded
default), with what every service shares: lifespan resources, auth, errors, health, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Sequence

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from redis.asyncio import Redis
from sqlalchemy import text

from app import wiring
from services.coupons.bundles.endpoints import counts_router
from services.coupons.bundles.endpoints import router as bundles_router
from services.coupons.endpoints import EARLY_ANSWERS as coupon_early_answers
from services.coupons.endpoints import router as coupons_router
from services.coupons.segments.endpoints import router as segments_router
from services.coupons.transit.endpoints import router as transit_router
from services.platform import jobs as platform_jobs
from services.platform.checkouts.endpoints import router as checkouts_router
from services.platform.outbox.endpoints import router as outbox_router
from services.platform.outbox.service import RetryPolicy
from services.platform.partners.endpoints import router as partners_router
from services.platform.sharing.endpoints import router as sharing_router
from services.settlement.basedate.endpoints import router as basedate_router
from services.settlement.endpoints import router as settlement_router
from services.settlement.history import tasks as history_imports
from services.settlement.history.endpoints import router as history_import_router
from services.settlement.kpi.endpoints import router as kpi_router
from services.settlement.runs.endpoints import router as runs_router
from services.settlement.surveys.endpoints import router as surveys_router
from services.wallet.campaigns.endpoints import router as campaigns_router
from services.wallet.endpoints import router as wallet_router
from services.wallet.grants import tasks as grant_uploads
from services.wallet.grants.endpoints import router as grants_router
from services.wallet.jobs import scheduler
from services.wallet.payments.endpoints import router as payments_router
from services.wallet.premium.endpoints import router as premium_router
from shared import openapi, routing
from shared.auth import DevIssuer, TokenVerifier
from shared.clock import Clock, SystemClock
from shared.config import Settings, get_settings
from shared.db import create_engine, create_sessionmaker
from shared.early import EarlyAnswer, EarlyAnswers
from shared.embedded import embedded_servers
from shared.errors import ServiceUnavailable, install_error_handlers, problem_response
from shared.migrate import upgrade
from shared.observability import Metrics, RequestMiddleware, configure_logging

log = logging.getLogger(__name__)

DOCS_ASSETS = "/docs/assets"  # Swagger UI's and ReDoc's files


# Each service's routers, in the order the OpenAPI document lists their paths.
ROUTERS: dict[str, list[APIRouter]] = {
    "wallet": [wallet_router, payments_router, campaigns_router, grants_router, premium_router],
    "coupons": [coupons_router, counts_router, bundles_router, segments_router, transit_router],
    "settlement": [settlement_router, runs_router, basedate_router, kpi_router, surveys_router, history_import_router],
    "platform": [partners_router, checkouts_router, outbox_router, sharing_router],
}
SERVICES = tuple(ROUTERS)
# Each service's answers given before routing and dependencies (shared/early.py).
EARLY: dict[str, list[tuple[APIRoute, EarlyAnswer]]] = {"coupons": coupon_early_answers}


def _routers(service: str) -> list[APIRouter]:
    if service not in ROUTERS:
        raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    return ROUTERS[service]


def create_app(
    settings: Settings | None = None, *, services: Sequence[str] = SERVICES, clock: Clock | None = None
) -> FastAPI:
    settings = settings or get_settings()
    wiring.wire()
    wiring.configure(settings)
    clock = clock or SystemClock()
    metrics = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A lone `uvicorn app.wallet:app` with no URLs starts the embedded servers itself;
        # `chiikipay serve` resolves them before starting workers and passes the URLs down.
        with embedded_servers(settings) as resolved:
            if settings.embedded:
                await upgrade(resolved.database_url)
            engine = create_engine(resolved)
            redis = Redis.from_url(resolved.redis_url, socket_timeout=2, socket_connect_timeout=2)
            dev_issuer = DevIssuer(resolved, clock) if resolved.dev_issuer_enabled else None
            app.state.settings = resolved
            app.state.clock = clock
            app.state.engine = engine
            app.state.sessionmaker = create_sessionmaker(engine)
            read_engine = create_engine(resolved, read_only=True)
            app.state.read_engine = read_engine
            app.state.read_sessionmaker = create_sessionmaker(read_engine)
            app.state.redis = redis
            app.state.dev_issuer = dev_issuer
            app.state.token_verifier = TokenVerifier(resolved, clock, dev_issuer)
            app.state.api_key_resolver = wiring.resolve_api_key
            app.state.claims_observer = wiring.record_city_id_claims
            jobs_task = None
            if "wallet" in services and resolved.jobs_scheduler:
                jobs_task = asyncio.create_task(
                    scheduler(app.state.sessionmaker, clock, resolved.jobs_every_seconds), name="wallet jobs"
                )
            platform_task = None
            if "platform" in services and resolved.jobs_scheduler:
                platform_task = asyncio.create_task(
                    platform_jobs.scheduler(app.state.sessionmaker, clock, RetryPolicy.of(resolved),
                                            resolved.platform_every_seconds),
                    name="platform jobs",
                )
            if "wallet" in services:
                await grant_uploads.resume_unfinished(app.state)
            if "settlement" in services:
                await history_imports.resume_unfinished(app.state)
            # What start-up made (modules, routes, compiled queries, the pool) lives as long as the
            # process: out of the collector's sight, a full collection no longer walks it and
            # stalls every request in flight (tens of ms each time; bench/RESULTS.md).
            gc.collect()
            gc.freeze()
            try:
                yield
            finally:
                if "wallet" in services:
                    # A grant upload still running is all-or-nothing: give it time to finish;
                    # one cut off rolls back and is resumed at the next start.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(grant_uploads.drain(), resolved.shutdown_grace_seconds)
                if "settlement" in services:
                    with contextlib.suppress(TimeoutError):  # a history import, likewise
                        await asyncio.wait_for(history_imports.drain(), resolved.shutdown_grace_seconds)
                for task in (jobs_task, platform_task):
                    if task is not None:
                        # A delivery cut off here rolls back and stays pending: sent again later.
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                await redis.aclose()
                await engine.dispose()
                await read_engine.dispose()

    name = "chiikipay" if len(services) > 1 else f"chiikipay {services[0]}"
    # /docs (Swagger UI) and /redoc load their scripts, styles and icon from the app itself
    # (the files fastapi-offline ships), not from a CDN: they work offline and behind a firewall.
    app = FastAPIOffline(
        title=name,
        version="0.1.0",
        description="Regional digital currency and coupon payments. Errors are RFC 9457 problem+json.",
        lifespan=lifespan,
        static_url=DOCS_ASSETS,
        # No badge from the public validator service: Swagger UI would send it the document.
        swagger_ui_parameters={"validatorUrl": None},
    )
    install_error_handlers(app)
    # Inside the request middleware (added before it, so nearer the app): an early answer gets a
    # request id, a log line, metrics and the body guard like any other.
    app.add_middleware(EarlyAnswers, answers=[a for s in services for a in EARLY.get(s, [])])
    app.add_middleware(RequestMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    # The routers' routes become the app's own rather than being included: FastAPI (≥ 0.137)
    # matches an included router lazily, walking every earlier router's routes, then the
    # matching router's again, on each request (≈ 290 µs to reach a premium purchase, ≈ 130 µs
    # in the flat list; bench/RESULTS.md 2026-12-01).
    for router in (_operations_router(metrics, services), *(r for s in services for r in _routers(s))):
        app.router.routes.extend(router.routes)
    # And a request tries only the routes its path's first segments allow, in the same order
    # (shared/routing.py: 200 routes, the last ones ≈ 165 µs away in the flat list).
    routing.install(app.router)
    openapi.install(app)
    return app


def _operations_router(metrics: Metrics, services: Sequence[str]) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, object]:
        """The process is up."""
        return {"status": "ok", "services": list(services)}

    @router.get("/readyz", responses={503: {"content": {"application/problem+json": {}}}})
    async def readyz(request: Request) -> Response:
        """PostgreSQL and Redis answer."""
        checks: dict[str, str] = {}
        try:
            async with request.app.state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # readiness reports the failure instead of raising it
            log.warning("database not ready", extra={"error": type(exc).__name__})
            checks["database"] = "unavailable"
        try:
            await request.app.state.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:  # as above
            log.warning("redis not ready", extra={"error": type(exc).__name__})
            checks["redis"] = "unavailable"
        if all(v == "ok" for v in checks.values()):
            return JSONResponse({"status": "ready", **checks})
        return problem_response(ServiceUnavailable("Not ready.", checks=checks), request)

    @router.get("/metrics", response_class=Response)
    async def metrics_endpoint() -> Response:
        """Prometheus metrics."""
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return router


def app_from_env() -> FastAPI:
    """The uvicorn factory `chiikipay serve` runs in each worker."""
    services = [s for s in os.environ.get("CHIIKIPAY_SERVICES", ",".join(SERVICES)).split(",") if s]
    settings = Settings()  # fresh: `serve` set DATABASE_URL and REDIS_URL after any cached read
    configure_logging(settings.log_level)
    return create_app(settings, services=services)
