"""`chiikipay`: run, migrate, seed the demo town, mint dev tokens, verify the ledger, host regions,
and set up bus operators' fare products and validators and merchants' payout accounts, make the
reports, and import a previous platform's history."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from app import wiring
from app.application import SERVICES
from app.demo import AUDITOR, OPERATOR, seed
from services.coupons import service as coupons
from services.coupons.bundles import service as bundles
from services.coupons.bundles.models import BundleAudience, BundleStatus, TicketFunder
from services.coupons.bundles.schemas import BundleCreate, BundleOut
from services.coupons.models import CouponKind, CouponStatus, Funder
from services.coupons.schemas import CouponCreate, CouponOut
from services.coupons.segments import service as segments
from services.coupons.transit import service as transit
from services.coupons.transit.codes import ProductKind, RiderCategory
from services.coupons.transit.schemas import Fares, ProductCreate, ProductOut, ValidatorCreate
from services.platform.outbox import tasks as outbox_tasks
from services.platform.outbox.service import RetryPolicy
from services.platform.sharing import service as sharing
from services.settlement import service as settlement
from services.settlement.basedate import service as basedate
from services.settlement.history import service as history_imports
from services.settlement.kpi import render as kpi_render
from services.settlement.kpi import service as kpi_service
from services.settlement.runs import service as runs
from services.settlement.schemas import PayoutAccountIn
from services.settlement.zengin import AccountType
from services.wallet import onboarding, verify
from services.wallet import public as wallet_public
from services.wallet.directory import repository as directory_repo
from services.wallet.expiry import service as expiry
from services.wallet.expiry.errors import ExpiryAlreadyRun, ExpiryDateBeforeRegion, ExpiryDateInFuture
from services.wallet.ledger import repository as ledger_repo
from services.wallet.schemas import RegionCreate, RegionOut
from shared.audit import Actor
from shared.auth import (
    KEY_ROLES,
    MERCHANT_ROLES,
    PLATFORM_REGION,
    DevIssuer,
    NoDevIssuerKey,
    Role,
    dev_issuer_key_path,
)
from shared.clock import SystemClock, fiscal_year
from shared.config import Settings, get_settings
from shared.db import create_engine, create_sessionmaker
from shared.embedded import embedded_servers
from shared.errors import Problem
from shared.migrate import upgrade_sync
from shared.observability import configure_logging

app = typer.Typer(help="chiikipay: regional digital currency and coupon payments.", no_args_is_help=True)
ledger = typer.Typer(help="The double-entry ledger.", no_args_is_help=True)
app.add_typer(ledger, name="ledger")
jobs = typer.Typer(help="Jobs the server also runs on its own schedule.", no_args_is_help=True)
app.add_typer(jobs, name="jobs")
region_cli = typer.Typer(help="The regions (regional currencies) this platform hosts.", no_args_is_help=True)
app.add_typer(region_cli, name="region")
transit_cli = typer.Typer(help="Bus operators, their fare products and validators (as the operator).",
                          no_args_is_help=True)
app.add_typer(transit_cli, name="transit")
coupons_cli = typer.Typer(help="Coupons, as the region's operator issues and runs them.", no_args_is_help=True)
app.add_typer(coupons_cli, name="coupons")
bundles_cli = typer.Typer(help="Bundles of coupons and a bus ticket, as the region's operator runs them.",
                          no_args_is_help=True)
app.add_typer(bundles_cli, name="bundles")
report_cli = typer.Typer(help="Reports for the authorities (read-only).", no_args_is_help=True)
app.add_typer(report_cli, name="report")
segments_cli = typer.Typer(help="A region's segments for coupon distribution (the operator's view).", no_args_is_help=True)
app.add_typer(segments_cli, name="segments")
settlement_cli = typer.Typer(help="Settlement: merchants' payout accounts (as the operator).", no_args_is_help=True)
app.add_typer(settlement_cli, name="settlement")
accounts_cli = typer.Typer(help="Merchants' payout bank accounts.", no_args_is_help=True)
settlement_cli.add_typer(accounts_cli, name="accounts")
webhooks_cli = typer.Typer(help="The outbox: webhooks to partner services and the data platform.", no_args_is_help=True)
app.add_typer(webhooks_cli, name="webhooks")
data_platform_cli = typer.Typer(help="The city's data platform: what is sent to it.", no_args_is_help=True)
app.add_typer(data_platform_cli, name="data-platform")
console = Console()
T = TypeVar("T")
RegionOption = Annotated[str, typer.Option(help="the region's code")]


def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]], *, read_only: bool = False) -> T:
    """Run `work` in one transaction against the resolved database, committed if it returns; a
    report's (`read_only`) on the reports' engine (DATABASE_READ_URL), which cannot write."""

    async def run() -> T:
        engine = create_engine(settings, read_only=read_only)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@contextlib.contextmanager
def _migrated(settings: Settings) -> Iterator[Settings]:
    """The settings of the migrated database (embedded unless configured) and Redis; a refusal
    raised inside exits 1 with its detail, as the API would answer it."""
    with embedded_servers(settings) as resolved:
        upgrade_sync(resolved.database_url)
        try:
            yield resolved
        except Problem as refused:
            print(f"refused: {refused.detail}", file=sys.stderr)
            raise typer.Exit(1) from None


def _refusable(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]], *, read_only: bool = False) -> T:
    """`work` in one transaction on the migrated database; a refusal exits 1 with its detail."""
    with _migrated(settings) as resolved:
        return _in_transaction(resolved, work, read_only=read_only)


def _refusable_at_once(settings: Settings, *works: Callable[[AsyncSession], Awaitable[T]]) -> list[T]:
    """Each of `works` in a read-only transaction of its own on the reports' engine, all at once;
    a refusal exits 1 with its detail."""

    async def run(resolved: Settings) -> list[T]:
        engine = create_engine(resolved, read_only=True)
        sessions = create_sessionmaker(engine)

        async def one(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
            async with sessions() as session, session.begin():
                return await work(session)

        try:
            return list(await asyncio.gather(*(one(work) for work in works)))
        finally:
            await engine.dispose()

    with _migrated(settings) as resolved:
        return asyncio.run(run(resolved))


def _seed_demo(settings: Settings) -> None:
    town = _in_transaction(settings, lambda session: seed(session, SystemClock(), settings))
    table = Table(title=f"Demo town: region {town.region_code}")
    table.add_column("who")
    table.add_column("id", no_wrap=True, min_width=36)
    table.add_column("balance (yen)", justify="right")
    for name, merchant_id in town.merchants.items():
        table.add_row(f"merchant: {name}", merchant_id, "")
    for subject, (wallet_id, balance) in town.residents.items():
        table.add_row(f"resident: {subject}", wallet_id, f"{balance:,}")
    table.add_row(f"operator: {OPERATOR}", "", "")
    table.add_row(f"auditor: {AUDITOR}", "", "")
    console.print(table)


@app.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    service: Annotated[list[str] | None, typer.Option(help="serve only this service (repeatable)")] = None,
    workers: int = 1,
    demo: Annotated[bool, typer.Option(help="seed the demo town first")] = False,
) -> None:
    """Run the services (all of them in one process by default) on the embedded default unless
    DATABASE_URL and REDIS_URL point elsewhere."""
    import uvicorn

    services = service or list(SERVICES)
    for name in services:
        if name not in SERVICES:
            raise typer.BadParameter(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
    settings = get_settings()
    configure_logging(settings.log_level)
    with embedded_servers(settings) as resolved:
        upgrade_sync(resolved.database_url)
        if demo:
            _seed_demo(resolved)
        # Workers inherit the resolved servers instead of starting their own.
        os.environ["DATABASE_URL"] = resolved.database_url
        os.environ["REDIS_URL"] = resolved.redis_url
        os.environ["CHIIKIPAY_SERVICES"] = ",".join(services)
        console.print(f"chiikipay on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
        # uvicorn re-raises SIGTERM after its graceful shutdown; turned into SystemExit, it unwinds
        # through this `with` so the embedded servers stop too.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        uvicorn.run(
            "app.application:app_from_env", factory=True, host=host, port=port, workers=workers,
            log_config=None, access_log=False,
        )


@app.command()
def migrate() -> None:
    """Bring the database schema to the newest revision."""
    settings = get_settings()
    with embedded_servers(settings) as resolved:
        upgrade_sync(resolved.database_url)
    console.print("database is at the newest revision")


@app.command()
def demo() -> None:
    """Seed the demo town (idempotent)."""
    settings = get_settings()
    with embedded_servers(settings) as resolved:
        upgrade_sync(resolved.database_url)
        _seed_demo(resolved)


@app.command()
def token(
    role: Annotated[Role, typer.Argument(
        help="resident, merchant_staff, merchant_admin, operator, auditor or platform_operator "
        "(terminals and partner systems use API keys)"
    )],
    subject: Annotated[str, typer.Argument(help="the token's subject, e.g. resident-hanako")],
    region: str = "aizu",
    merchant: Annotated[uuid.UUID | None, typer.Option(help="merchant id, for merchant roles")] = None,
    ttl: Annotated[int, typer.Option(help="lifetime in seconds")] = 3600,
    create_key: Annotated[bool, typer.Option(
        "--create-key", help="create the dev issuer's signing key if the data folder has none"
    )] = False,
) -> None:
    """Mint a token from the built-in dev issuer (refused unless it is enabled).

    Only the token goes to stdout (`TOKEN=$(chiikipay token ...)`); which key signed it, to stderr."""
    settings = get_settings()
    if not settings.dev_issuer_enabled:
        typer.echo("the dev issuer is disabled (DEV_ISSUER_ENABLED=false): tokens come from the city's provider", err=True)
        raise typer.Exit(2)
    if role in KEY_ROLES:
        # The server refuses a token carrying these roles (principal_from_claims).
        raise typer.BadParameter(
            f"{role.value} callers authenticate with an API key (X-API-Key), never a token", param_hint="ROLE"
        )
    if role is Role.PLATFORM_OPERATOR:
        region = PLATFORM_REGION  # the platform's token is of no region
    if role in MERCHANT_ROLES and merchant is None:
        raise typer.BadParameter("merchant roles need --merchant <merchant id>")
    key_path = dev_issuer_key_path(settings)
    created = not key_path.exists()
    try:
        issuer = DevIssuer(settings, SystemClock(), create_key=create_key)
    except NoDevIssuerKey:
        typer.echo(
            f"no dev issuer key in the data folder {key_path.parent}: the server creates it on its first start, "
            "so run this where the server runs (or set DATA_DIR to its data folder); "
            "--create-key makes a new key, whose tokens a server started with another key refuses",
            err=True,
        )
        raise typer.Exit(2) from None
    minted = issuer.mint(subject=subject, role=role, region=region, merchant_id=merchant, ttl=timedelta(seconds=ttl))
    typer.echo(f"{'created and signed with' if created else 'signed with'} the dev issuer key {key_path}", err=True)
    print(minted)


@ledger.command("verify")
def ledger_verify(region: Annotated[str | None, typer.Option(help="only this region's code")] = None) -> None:
    """Check ledger invariants 1–4 over the whole ledger, and that every payment's record (refunds,
    fee returned, reward taken back) agrees with its journals; exit 1 listing what breaks them."""

    settings = get_settings()

    async def check(session: AsyncSession) -> tuple[list[ledger_repo.Violation], tuple[int, int]]:
        region_id = None
        if region is not None:
            found = await directory_repo.region_by_code(session, region)
            if found is None:
                raise typer.BadParameter(f"no region {region!r}")
            region_id = found.id
        return await verify.verify_ledger(session, region_id), await ledger_repo.ledger_totals(session, region_id)

    with embedded_servers(settings) as resolved:
        upgrade_sync(resolved.database_url)
        violations, (journals, accounts) = _in_transaction(resolved, check)
    if not violations:
        scope = f"region {region}" if region else "whole ledger"
        console.print(f"ledger verified ({scope}): {journals} journals, {accounts} accounts, invariants 1–4 hold, payments agree with their journals")
        return
    # One plain line per violation: readable in a CI log, greppable, never wrapped.
    print(f"{len(violations)} ledger violation(s):")
    for v in violations:
        rule = f"invariant {v.invariant}" if isinstance(v.invariant, int) else v.invariant
        print(f"{rule}: {v.subject}: {v.detail}")
    raise typer.Exit(1)


@webhooks_cli.command("deliver")
def webhooks_deliver(
    follow: Annotated[bool, typer.Option("--follow", help="keep delivering as events come due (a worker)")] = False,
) -> None:
    """Deliver the outbox's due events, each stream in order, and exit (or, with --follow, keep
    going as the server's own worker does). Safe beside the server's workers: an event is sent
    by one worker at a time; one cut off mid-delivery is sent again."""
    wiring.wire()
    settings = get_settings()
    wiring.configure(settings)

    async def run(resolved: Settings) -> list[outbox_tasks.Attempt]:
        engine = create_engine(resolved)
        sessionmaker = create_sessionmaker(engine)
        clock, policy = SystemClock(), RetryPolicy.of(resolved)
        try:
            async with httpx.AsyncClient() as http:
                made = await outbox_tasks.deliver_all_due(sessionmaker, clock, http, policy)
                while follow:
                    await asyncio.sleep(resolved.platform_every_seconds)
                    for attempt in await outbox_tasks.deliver_all_due(sessionmaker, clock, http, policy):
                        print(f"{attempt.event_id}: {attempt.status.value}" + (f" ({attempt.error})" if attempt.error else ""))
                return made
        finally:
            await engine.dispose()

    with embedded_servers(settings) as resolved:
        upgrade_sync(resolved.database_url)
        made = asyncio.run(run(resolved))
    for attempt in made:
        print(f"{attempt.event_id}: {attempt.status.value}" + (f" ({attempt.error})" if attempt.error else ""))
    delivered = sum(a.status.value == "delivered" for a in made)
    print(f"{delivered} delivered, {len(made) - delivered} not (yet)")


@data_platform_cli.command("aggregate")
def data_platform_aggregate(
    day: Annotated[str | None, typer.Option(help="the Tokyo day (YYYY-MM-DD); default: yesterday")] = None,
) -> None:
    """Write every region's daily payment aggregate to the outbox for the data platform (once a
    region and day: run it daily after midnight, Asia/Tokyo; again, it writes only what is
    missing). `chiikipay webhooks deliver` or the server's worker sends it."""
    try:
        chosen = date.fromisoformat(day) if day is not None else None
    except ValueError:
        raise typer.BadParameter(f"{day!r} is not a date like 2026-12-02", param_hint="--day") from None
    wiring.wire()
    settings = get_settings()
    wiring.configure(settings)
    if settings.data_platform_url is None:
        print("refused: DATA_PLATFORM_URL is not set: there is no data platform to send to", file=sys.stderr)
        raise typer.Exit(1)
    written = _refusable(settings, lambda session: sharing.write_daily_aggregates(session, SystemClock(), day=chosen))
    print(f"aggregates written for {len(written)} region(s)" + (f": {', '.join(written)}" if written else ""))


@jobs.command("expire")
def jobs_expire(
    as_of: Annotated[str, typer.Option("--as-of", help="the day (YYYY-MM-DD, Asia/Tokyo) whose midnight lots expire by")],
    region: Annotated[str | None, typer.Option(help="only this region's code (default: every region)")] = None,
) -> None:
    """Expire the lots due by the start of --as-of and send the 30/7-day notices. A run cut off
    half-way is resumed by running the same date again; a finished date is refused (exit 1)."""

    try:
        day = date.fromisoformat(as_of)
    except ValueError:
        raise typer.BadParameter(f"{as_of!r} is not a date like 2027-06-01", param_hint="--as-of") from None
    settings = get_settings()

    async def run(resolved: Settings) -> int:
        engine = create_engine(resolved)
        sessionmaker = create_sessionmaker(engine)
        failed = 0
        try:
            async with sessionmaker() as session:
                regions = await directory_repo.regions(session)
            if region is not None:
                regions = [r for r in regions if r.code == region]
                if not regions:
                    raise typer.BadParameter(f"no region {region!r}", param_hint="--region")
            for found in regions:
                try:
                    done = await expiry.run_job(sessionmaker, SystemClock(), found, day, "cli")
                except (ExpiryAlreadyRun, ExpiryDateBeforeRegion, ExpiryDateInFuture) as refused:
                    print(f"{found.code}: refused: {refused.detail}")
                    failed += 1
                    continue
                print(
                    f"{found.code}: expiry as of {done.as_of}: {done.lots_expired} lots, "
                    f"{done.yen_expired} yen and {done.points_expired} points expired; {done.notices} notices"
                )
        finally:
            await engine.dispose()
        return failed

    with embedded_servers(settings) as resolved:
        upgrade_sync(resolved.database_url)
        failed = asyncio.run(run(resolved))
    if failed:
        raise typer.Exit(1)


def _platform_operator_here() -> Actor:
    """Who the audit trail names for a region created at this machine's shell: its user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container's bare uid)
        user = f"uid-{os.getuid()}"
    return Actor(subject=f"cli:{user}", role=Role.PLATFORM_OPERATOR.value, request_id="cli")


@region_cli.command("create")
def region_create(
    code: Annotated[str, typer.Argument(help="lower-case slug, e.g. aizu (fixed for good)")],
    name: Annotated[str, typer.Option(help="romanised, at most 15 characters: the QR codes' city")],
    name_ja: Annotated[str, typer.Option("--name-ja", help="Japanese, at most 15 characters")],
    balance_cap: Annotated[int | None, typer.Option(help="largest wallet balance, yen")] = None,
    topup_min: Annotated[int | None, typer.Option(help="smallest top-up, yen")] = None,
    topup_max: Annotated[int | None, typer.Option(help="largest top-up, yen")] = None,
    topup_step: Annotated[int | None, typer.Option(help="top-ups go in steps of, yen")] = None,
    refund_window_days: Annotated[int | None, typer.Option(help="days after a payment's day it may be refunded")] = None,
    coin_expiry_months: Annotated[int | None, typer.Option(help="top-ups expire after N months (default: never)")] = None,
    payment_request_minutes: Annotated[int | None, typer.Option(help="lifetime of a dynamic QR")] = None,
) -> None:
    """Host a new region, checked as POST /v1/regions checks it (audited); settings left out take
    the platform's defaults. Exit 2 for invalid input, 1 if refused (a taken code)."""
    given = dict(
        code=code, name=name, name_ja=name_ja, balance_cap=balance_cap, topup_min=topup_min, topup_max=topup_max,
        topup_step=topup_step, refund_window_days=refund_window_days, coin_expiry_months=coin_expiry_months,
        payment_request_minutes=payment_request_minutes,
    )
    try:
        body = RegionCreate(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        for error in exc.errors():
            print(f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}", file=sys.stderr)
        raise typer.Exit(2) from None
    settings = get_settings()

    async def create(session: AsyncSession) -> RegionOut:
        region = await onboarding.onboard_region(
            session, SystemClock(), _platform_operator_here(), settings, **body.model_dump(exclude_unset=True)
        )
        return RegionOut.model_validate(region)

    created = _refusable(settings, create)
    print(created.model_dump_json(indent=2))


@region_cli.command("list")
def region_list() -> None:
    """Every region hosted here, by code, with its settings."""
    settings = get_settings()

    async def listed(session: AsyncSession) -> list[RegionOut]:
        return [RegionOut.model_validate(r) for r in await directory_repo.regions(session)]

    with embedded_servers(settings) as resolved:
        upgrade_sync(resolved.database_url)
        regions = _in_transaction(resolved, listed)
    # One plain line per region: readable in a log, greppable, never wrapped.
    print(f"{len(regions)} region(s)")
    for r in regions:
        expiry = f"{r.coin_expiry_months} months" if r.coin_expiry_months else "never"
        print(
            f"{r.code}  {r.name}  {r.name_ja}  balance cap {r.balance_cap:,}  top-up {r.topup_min:,}-{r.topup_max:,}"
            f" step {r.topup_step:,}  refunds +{r.refund_window_days} days  coin expiry {expiry}"
            f"  dynamic QR {r.payment_request_minutes} min"
        )



# --- transit ------------------------------------------------------------------------------------

BusOperator = Annotated[uuid.UUID, typer.Argument(help="the bus operator's merchant id")]


def _as_operator(work: Callable[[AsyncSession, Actor], Awaitable[T]]) -> T:
    """Run `work` as the region's operator at this machine's shell (the audit trail names its
    user) in one transaction; a refusal exits 1 with its detail."""
    operator = replace(_platform_operator_here(), role=Role.OPERATOR.value)
    return _refusable(get_settings(), lambda session: work(session, operator))


def _valid(model: type[T], **given: object) -> T:
    """The body as the API would check it; exit 2 naming each invalid field."""
    try:
        return model(**{k: v for k, v in given.items() if v is not None})  # type: ignore[call-arg]
    except ValidationError as exc:
        for error in exc.errors():
            print(f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}", file=sys.stderr)
        raise typer.Exit(2) from None


@transit_cli.command("operator")
def transit_operator(merchant: BusOperator, region: RegionOption = "aizu") -> None:
    """Mark a merchant (a bus company, the on-demand bus) as a bus operator (audited). Exit 1 if refused."""
    found = _as_operator(lambda s, actor: transit.mark_operator(
        s, SystemClock(), region=region, actor=actor, merchant_id=merchant))
    print(f"{found.merchant.id}  {found.merchant.name}  {found.merchant.name_ja}  is a bus operator")


@transit_cli.command("products")
def transit_products(
    region: RegionOption = "aizu",
    merchant: Annotated[uuid.UUID | None, typer.Option(help="only this bus operator's")] = None,
) -> None:
    """The region's fare products, newest first: one line each, with the fare per rider category."""
    found = _as_operator(lambda s, _: transit.list_products(
        s, region=region, merchant_id=merchant, status=None, after_id=None, limit=1_000))
    print(f"{len(found)} fare product(s)")
    for view in found:
        p = view.product
        rides = f" {p.rides} rides" if p.rides else ""
        fares = "  ".join(f"{category} {amount:,}" for category, amount in sorted(view.fares.items()))
        print(f"{p.id}  {p.name}  {p.name_ja}  {p.kind}{rides}  first use within {p.valid_days} days  {fares}"
              f"  {p.status}")


@transit_cli.command("product-add")
def transit_product_add(
    merchant: BusOperator,
    name: Annotated[str, typer.Option(help="romanised")],
    name_ja: Annotated[str, typer.Option("--name-ja")],
    kind: Annotated[ProductKind, typer.Option(help="single_ride, day_pass (24 h from the first ride), multi_ride")],
    adult: Annotated[int | None, typer.Option(help="adult fare, yen")] = None,
    child: Annotated[int | None, typer.Option(help="child fare, yen")] = None,
    elderly: Annotated[int | None, typer.Option(help="elderly fare, yen")] = None,
    rides: Annotated[int | None, typer.Option(help="a multi_ride ticket's number of rides")] = None,
    valid_days: Annotated[int | None, typer.Option(help="first use within this many days of purchase (90)")] = None,
    region: RegionOption = "aizu",
) -> None:
    """Define a fare product, checked as POST /v1/transit/products checks it (audited). Exit 2 for
    invalid input, 1 if refused."""
    fares = _valid(Fares, adult=adult, child=child, elderly=elderly)
    body = _valid(ProductCreate, merchant_id=merchant, name=name, name_ja=name_ja, kind=kind, rides=rides,
                  valid_days=valid_days, fares=fares)
    async def create(session: AsyncSession, actor: Actor) -> transit.ProductView:
        owner = await transit.operator_of(session, region=region, merchant_id=merchant)
        return await transit.create_product(session, SystemClock(), actor=actor, owner=owner, details=body.model_dump())

    found = _as_operator(create)
    out = ProductOut(
        id=found.product.id, merchant_id=found.merchant_id, name=found.product.name, name_ja=found.product.name_ja,
        kind=found.product.kind, rides=found.product.rides, valid_days=found.product.valid_days, fares=found.fares,
        status=found.product.status, created_at=found.product.created_at, retired_at=found.product.retired_at,
    )
    print(out.model_dump_json(indent=2))


@transit_cli.command("validators")
def transit_validators(merchant: BusOperator, region: RegionOption = "aizu") -> None:
    """A bus operator's validator devices, newest first."""
    async def listed(session: AsyncSession, _: Actor) -> list[transit.Validator]:
        return await transit.list_validators(
            session, owner=await transit.operator_of(session, region=region, merchant_id=merchant))

    found = _as_operator(listed)
    print(f"{len(found)} validator(s)")
    for v in found:
        state = f"revoked {v.revoked_at.isoformat()}" if v.revoked_at else "active"
        print(f"{v.id}  {v.name}  created {v.created_at.isoformat()} by {v.created_by}  {state}")


@transit_cli.command("validator-add")
def transit_validator_add(
    merchant: BusOperator,
    name: Annotated[str, typer.Option(help="the device's name, e.g. the bus's number")],
    region: RegionOption = "aizu",
) -> None:
    """A validator device's API key for one bus operator (audited). stdout is the secret alone,
    shown this once (KEY=$(chiikipay transit validator-add …)); stderr names the validator."""
    body = _valid(ValidatorCreate, merchant_id=merchant, name=name)
    async def create(session: AsyncSession, actor: Actor) -> tuple[transit.Validator, str]:
        owner = await transit.operator_of(session, region=region, merchant_id=merchant)
        return await transit.create_validator(session, SystemClock(), region=region, actor=actor, owner=owner,
                                              name=body.name)

    made, secret = _as_operator(create)
    typer.echo(f"validator {made.id} ({made.name}) of bus operator {merchant}", err=True)
    print(secret)
@segments_cli.command("list")
def segments_list(region: Annotated[str, typer.Option(help="the region's code")] = "aizu") -> None:
    """The region's live segments, newest first: id, version in force, name, filter kinds."""
    settings = get_settings()

    async def listed(session: AsyncSession) -> list[segments.SegmentView]:
        found: list[segments.SegmentView] = []
        while page := await segments.list_segments(
            session, region=region, after_id=found[-1].segment.id if found else None, limit=200
        ):
            found += page
        return found

    found = _refusable(settings, listed)
    print(f"{len(found)} segment(s)")
    for view in found:
        kinds = ", ".join(f.kind for f in view.filters)
        print(f"{view.segment.id}  v{view.version}  {view.segment.name}  [{kinds}]")


@segments_cli.command("audience")
def segments_audience(
    segment_id: Annotated[uuid.UUID, typer.Argument(help="the segment's id (`chiikipay segments list`)")],
    region: Annotated[str, typer.Option(help="the region's code")] = "aizu",
) -> None:
    """How many residents the segment matches now: the count, as the API shows it, never who."""
    settings = get_settings()

    async def counted(session: AsyncSession) -> segments.AudienceCount:
        return await segments.audience(session, SystemClock(), region=region, segment_id=segment_id)

    found = _refusable(settings, counted)
    print(f"{found.residents} resident(s) in segment {found.segment_id} v{found.version} at {found.at.isoformat()}")


# --- coupons ---------------------------------------------------------------------------------


@coupons_cli.command("list")
def coupons_list(
    region: RegionOption = "aizu",
    status: Annotated[CouponStatus | None, typer.Option(help="only coupons in this state")] = None,
    merchant: Annotated[uuid.UUID | None, typer.Option(help="only this merchant's")] = None,
) -> None:
    """The region's coupons, newest first, one line each."""

    async def listed(session: AsyncSession, _: Actor) -> list[CouponOut]:
        found = await coupons.coupons(session, scope=coupons.Scope(region, merchant), status=status, after_id=None,
                                      limit=10_000)
        return [CouponOut.of(c, await coupons.stock_left(session, c)) for c in found]

    found = _as_operator(listed)
    print(f"{len(found)} coupon(s)")
    for c in found:
        issuer = c.merchant_id or "region-wide"
        print(f"{c.id}  {c.status}  {c.kind} {c.value if c.value is not None else '-'}  {c.name}  {issuer}"
              f"  stock {c.stock_left}/{c.stock}  {c.valid_from:%Y-%m-%d %H:%M}..{c.valid_until:%Y-%m-%d %H:%M}")


@coupons_cli.command("create")
def coupons_create(
    name: Annotated[str, typer.Option(help="what residents see")],
    kind: Annotated[CouponKind, typer.Option()],
    valid_from: Annotated[str, typer.Option(help="ISO 8601 with its offset, e.g. 2026-04-01T00:00:00+09:00")],
    valid_until: Annotated[str, typer.Option(help="exclusive, as --valid-from")],
    stock: Annotated[int, typer.Option(help="how many may be claimed in all")],
    terms: Annotated[str, typer.Option()],
    region: RegionOption = "aizu",
    merchant: Annotated[uuid.UUID | None, typer.Option(help="the issuing merchant; none: region-wide")] = None,
    value: Annotated[int | None, typer.Option(help="yen off, basis points, or the fixed price")] = None,
    max_discount: Annotated[int | None, typer.Option(help="percent_off: the most yen it takes off")] = None,
    min_spend: Annotated[int, typer.Option(help="smallest price it applies to, yen")] = 0,
    per_resident_limit: Annotated[int, typer.Option()] = 1,
    store: Annotated[list[uuid.UUID] | None, typer.Option(help="a store where it is valid (repeatable)")] = None,
    image_url: Annotated[str | None, typer.Option()] = None,
    funded_by: Annotated[Funder, typer.Option()] = Funder.SHOP,
    sponsor: Annotated[uuid.UUID | None, typer.Option(help="funded_by sponsor: the sponsor's id")] = None,
) -> None:
    """Issue a draft coupon as the region's operator, checked as POST /v1/coupons checks it
    (audited). Exit 2 for invalid input, 1 if refused."""
    given = dict(
        merchant_id=merchant, name=name, kind=kind, value=value, max_discount=max_discount, min_spend=min_spend,
        store_ids=store or None, valid_from=valid_from, valid_until=valid_until, stock=stock,
        per_resident_limit=per_resident_limit, terms=terms, image_url=image_url, funded_by=funded_by,
        sponsor_id=sponsor,
    )
    try:
        body = CouponCreate(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        for error in exc.errors():
            print(f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}", file=sys.stderr)
        raise typer.Exit(2) from None

    async def create(session: AsyncSession, operator: Actor) -> CouponOut:
        coupon = await coupons.create_coupon(session, SystemClock(), scope=coupons.Scope(region, None),
                                             actor=operator, fields=body.model_dump())
        return CouponOut.of(coupon, await coupons.stock_left(session, coupon))

    print(_as_operator(create).model_dump_json(indent=2))


def _move_coupon(coupon_id: uuid.UUID, region: str, to: CouponStatus) -> None:
    async def move(session: AsyncSession, operator: Actor) -> CouponOut:
        coupon = await coupons.move(session, SystemClock(), scope=coupons.Scope(region, None), actor=operator,
                                    coupon_id=coupon_id, to=to)
        return CouponOut.of(coupon, await coupons.stock_left(session, coupon))

    moved = _as_operator(move)
    print(f"{moved.id}  {moved.status}")


@coupons_cli.command("activate")
def coupons_activate(coupon_id: uuid.UUID, region: RegionOption = "aizu") -> None:
    """Offer a coupon to residents (a draft, or a paused one again)."""
    _move_coupon(coupon_id, region, CouponStatus.ACTIVE)


@coupons_cli.command("pause")
def coupons_pause(coupon_id: uuid.UUID, region: RegionOption = "aizu") -> None:
    """Stop claims and redemptions for a while."""
    _move_coupon(coupon_id, region, CouponStatus.PAUSED)


@coupons_cli.command("end")
def coupons_end(coupon_id: uuid.UUID, region: RegionOption = "aizu") -> None:
    """End a coupon for good."""
    _move_coupon(coupon_id, region, CouponStatus.ENDED)


# --- bundles ---------------------------------------------------------------------------------


def _bundle_line(b: BundleOut) -> str:
    ticket = f"  ticket {b.ticket.product_id} {b.ticket.rider_category} ({b.ticket.funded_by})" if b.ticket else ""
    audience = f"segment {b.segment_id}" if b.segment_id else "all residents"
    return (f"{b.id}  {b.status}  {b.name}  {len(b.coupon_ids)} coupon(s){ticket}  {audience}"
            f"  {b.starts_at:%Y-%m-%d %H:%M}..{b.ends_at:%Y-%m-%d %H:%M}")


@bundles_cli.command("list")
def bundles_list(
    region: RegionOption = "aizu",
    status: Annotated[BundleStatus | None, typer.Option(help="only bundles in this state")] = None,
) -> None:
    """The region's bundles, newest first, one line each."""
    found = _as_operator(lambda s, _: bundles.bundles(s, region=region, status=status, after_id=None, limit=10_000))
    print(f"{len(found)} bundle(s)")
    for view in found:
        print(_bundle_line(BundleOut.of(view)))


@bundles_cli.command("create")
def bundles_create(
    name: Annotated[str, typer.Option(help="what residents see")],
    terms: Annotated[str, typer.Option()],
    coupon: Annotated[list[uuid.UUID], typer.Option(help="a coupon of the bundle (repeatable)")],
    starts_at: Annotated[str, typer.Option(help="claimable from, ISO 8601 with its offset")],
    ends_at: Annotated[str, typer.Option(help="claimable until (exclusive), as --starts-at")],
    region: RegionOption = "aizu",
    segment: Annotated[uuid.UUID | None, typer.Option(help="the audience segment; none: all residents")] = None,
    product: Annotated[uuid.UUID | None, typer.Option(help="a fare product whose ticket the bundle grants")] = None,
    rider_category: Annotated[RiderCategory, typer.Option(help="--product: the ticket's rider category")] = RiderCategory.ADULT,
    ticket_funded_by: Annotated[TicketFunder, typer.Option(help="--product: who pays the bus operator")] = TicketFunder.OPERATOR,
    sponsor: Annotated[uuid.UUID | None, typer.Option(help="--ticket-funded-by sponsor: the sponsor")] = None,
) -> None:
    """Make a draft bundle as the region's operator, checked as POST /v1/bundles checks it
    (audited). Exit 2 for invalid input, 1 if refused."""
    ticket = None
    if product is not None:
        ticket = {"product_id": product, "rider_category": rider_category, "funded_by": ticket_funded_by,
                  "sponsor_id": sponsor}
    body = _valid(BundleCreate, name=name, terms=terms, coupon_ids=coupon, ticket=ticket, segment_id=segment,
                  audience=BundleAudience.SEGMENT if segment else BundleAudience.ALL, starts_at=starts_at,
                  ends_at=ends_at)
    bundle_ticket = None
    if body.ticket is not None:
        t = body.ticket
        bundle_ticket = bundles.Ticket(t.product_id, t.rider_category, t.funded_by, t.sponsor_id)

    async def create(session: AsyncSession, operator: Actor) -> BundleOut:
        return BundleOut.of(await bundles.create_bundle(
            session, SystemClock(), region=region, actor=operator, name=body.name, terms=body.terms,
            coupon_ids=body.coupon_ids, ticket=bundle_ticket, audience=body.audience, segment_id=body.segment_id,
            starts_at=body.starts_at, ends_at=body.ends_at,
        ))

    print(_as_operator(create).model_dump_json(indent=2))


@bundles_cli.command("distribute")
def bundles_distribute(bundle_id: uuid.UUID, region: RegionOption = "aizu") -> None:
    """Send a draft bundle to its audience now: one notice per resident in it (refused for an empty one)."""
    sent = BundleOut.of(_as_operator(lambda s, actor: bundles.distribute(
        s, SystemClock(), region=region, actor=actor, bundle_id=bundle_id)))
    print(f"{sent.id}  {sent.status}  {sent.recipients} notice(s)")


@bundles_cli.command("end")
def bundles_end(bundle_id: uuid.UUID, region: RegionOption = "aizu") -> None:
    """End a bundle for good: no more claims."""
    ended = BundleOut.of(_as_operator(lambda s, actor: bundles.end(
        s, SystemClock(), region=region, actor=actor, bundle_id=bundle_id)))
    print(f"{ended.id}  {ended.status}")



# --- the KPI report ------------------------------------------------------------------------------


@app.command()
def kpi(
    fiscal_year: Annotated[int, typer.Option(help="年度: 2025 is 2025-04-01 … 2026-03-31")],
    format: Annotated[str, typer.Option(help="json, csv, xlsx or png")] = "json",
    out: Annotated[Path | None, typer.Option(help="write here (default: standard output)")] = None,
    lang: Annotated[kpi_render.Lang, typer.Option(help="labels")] = kpi_render.Lang.JA,
    encoding: Annotated[str, typer.Option(help="CSV only: utf-8 (with a BOM) or cp932")] = "utf-8",
    region: RegionOption = "aizu",
) -> None:
    """The city's KPI report of a fiscal year (read-only), as the API's GET /v1/settlement/kpi/{year}."""

    async def made(session: AsyncSession) -> bytes:
        fmt = kpi_render.parse_format(format)
        found = await kpi_service.report(session, SystemClock(), region=region, fiscal_year=fiscal_year)
        return kpi_render.render(found, fmt, lang, encoding)

    body = _refusable(get_settings(), made, read_only=True)
    if out is None:
        sys.stdout.buffer.write(body)
    else:
        out.write_bytes(body)
        print(f"wrote {out} ({len(body):,} bytes)", file=sys.stderr)


@report_cli.command("outstanding")
def report_outstanding(
    base_date: Annotated[str, typer.Option(help="YYYY-MM-DD: 31 March or 30 September, ended")],
    region: Annotated[str | None, typer.Option(help="only this region's code (default: every region)")] = None,
) -> None:
    """The base-date report (基準日): per region, the unused paid-in balance at the end of the
    base date (points excluded), what it was summed from, and the security deposit it requires."""

    try:
        day = date.fromisoformat(base_date)
    except ValueError:
        raise typer.BadParameter(f"{base_date!r} is not a date like 2026-09-30", param_hint="--base-date") from None

    async def made(session: AsyncSession) -> list[basedate.BaseDateReport]:
        codes = [region] if region else await wallet_public.region_codes(session)
        return [await basedate.report(session, SystemClock(), region=code, base_date=day) for code in codes]

    for found in _refusable(get_settings(), made, read_only=True):
        print(f"{found.region}  base date {found.base_date.isoformat()}  unused {found.unused.amount:,} yen"
              f" in {found.unused.wallets:,} wallets  deposit required {found.deposit_required:,} yen"
              f" (half of the unused balance above {found.threshold:,})")
        for movement in found.unused.movements:
            print(f"  {movement.kind:<10} {movement.journals:>9,} journals  {movement.amount:>+15,} yen")
# --- settlement -----------------------------------------------------------------------------------


@accounts_cli.command("list")
def settlement_accounts_list(region: RegionOption = "aizu") -> None:
    """Every merchant of the region, oldest first, with the payout account a run would pay it to,
    or why a run would hold it back."""
    async def listed(session: AsyncSession, _: Actor) -> tuple[list, settlement.Payees]:
        merchants = await wallet_public.onboarded_bank_accounts(session, region=region)
        return merchants, await settlement.accounts_for(
            session, region=region, merchant_ids=[m.merchant_id for m in merchants])

    merchants, payees = _as_operator(listed)
    print(f"{len(payees.payable)} payable, {len(payees.held_back)} held back")
    for m in merchants:
        if (payee := payees.payable.get(m.merchant_id)) is not None:
            a = payee.account
            shown = f"{a.bank_code}-{a.branch_code} {a.account_type.name_ja} {a.account_number}  {payee.holder_name}"
        else:
            shown = f"held back: {payees.held_back[m.merchant_id]}"
        print(f"{m.merchant_id}  {m.name_ja}  {shown}")


@accounts_cli.command("set")
def settlement_accounts_set(
    merchant: Annotated[uuid.UUID, typer.Argument(help="the merchant's id")],
    bank: Annotated[str, typer.Option(help="金融機関コード, 4 digits")],
    branch: Annotated[str, typer.Option(help="支店コード, 3 digits")],
    number: Annotated[str, typer.Option(help="口座番号, 7 digits")],
    holder: Annotated[str, typer.Option(help="口座名義, katakana (stored half-width)")],
    account_type: Annotated[AccountType, typer.Option("--type", help="ordinary 普通, current 当座, savings 貯蓄")] =
    AccountType.ORDINARY,
    region: RegionOption = "aizu",
) -> None:
    """Set a merchant's payout account, checked as PUT /v1/settlement/merchants/{id}/payout-account
    checks it (audited). Exit 2 for invalid input, 1 if refused (an unknown bank or branch code, a
    holder name a transfer file cannot carry)."""
    body = _valid(PayoutAccountIn, bank_code=bank, branch_code=branch, account_type=account_type,
                  account_number=number, holder_name=holder)
    found = _as_operator(lambda s, actor: settlement.set_payout_account(
        s, SystemClock(), region=region, actor=actor, merchant_id=merchant, holder_name=body.holder_name,
        details=settlement.BankDetails(body.bank_code, body.branch_code, body.account_type, body.account_number),
    ))
    a, b = found.account, found.branch
    print(f"{a.merchant_id}  {a.bank_code} {b.bank_name if b else '?'}  {a.branch_code} {b.branch_name if b else '?'}"
          f"  {AccountType(a.account_type).name_ja} {a.account_number}  {a.holder_name}")


@accounts_cli.command("import-onboarded")
def settlement_accounts_import_onboarded(region: RegionOption = "aizu") -> None:
    """Give every merchant without a payout account the bank account it gave at onboarding, each
    checked as `set` checks it (audited); those refused are listed and keep none (a run holds
    them back until one is set)."""
    done = _as_operator(lambda s, actor: settlement.import_onboarded(s, SystemClock(), region=region, actor=actor))
    print(f"{len(done.copied)} copied, {len(done.kept)} kept as they were, {len(done.refused)} refused")
    for merchant_id, problem in done.refused.items():
        print(f"{merchant_id}  refused: {problem.slug}: {problem.detail}")


@app.command()
def settle(
    period: Annotated[str, typer.Option(help="YYYY-MM monthly, YYYY-MM-H1 / -H2 twice monthly, YYYY-MM-DD on demand")],
    out: Annotated[Path, typer.Option(help="the folder the files are written to (made if missing)")],
    kpi: Annotated[str, typer.Option(help="the KPI report's format (json, csv, xlsx, png), or none")] = "xlsx",
    region: RegionOption = "aizu",
) -> None:
    """Settle a period as the region's operator (POST /v1/settlement/runs) and write its files to
    OUT: summary.csv, held-back.csv, zengin.txt (when a merchant is paid) and statement-<merchant
    id>.csv and .pdf; and, unless --kpi none, the KPI report of the period's fiscal year as it
    stands now, kpi-<year>.<format> (not part of the closed run: it changes as the year goes on).
    A period already run is not run again: its files are written as they were, byte for byte.
    Exit 1 if refused (not ended, another run in progress, no source account)."""
    kpi_format = None if kpi == "none" else _valid_format(kpi)
    with Progress(
        TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bar:
        phases = {name: bar.add_task(name, total=None) for name in ("lines", "payouts", "files", "kpi")}

        async def progress(phase: str, done: int, total: int) -> None:
            bar.update(phases[phase], completed=done, total=total)

        made = _as_operator(lambda session, operator: runs.run(
            session, SystemClock(), region=region, actor=operator, label=period, progress=progress))

        async def write_files(session: AsyncSession) -> int:
            written = 0
            async for name, body in runs.files(session, made.run, progress):
                path = out / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(body)
                written += 1
            return written

        async def write_kpi(session: AsyncSession) -> int:
            if kpi_format is None:
                return 0
            year = fiscal_year(made.run.period_start)
            found = await kpi_service.report(session, SystemClock(), region=region, fiscal_year=year)
            out.mkdir(parents=True, exist_ok=True)
            (out / f"kpi-{year}.{kpi_format.value}").write_bytes(kpi_render.render(found, kpi_format))
            await progress("kpi", 1, 1)
            return 1

        # Each on a read session of its own, at once: the statements are mostly this process's
        # work, the KPI report the database's, so the two share the machine's cores.
        written = sum(_refusable_at_once(get_settings(), write_files, write_kpi))
    r = made.run
    print(f"{r.label}: {'settled' if made.created else 'settled before, files written again'}; "
          f"{r.merchants} statements, {r.paid} paid ¥{r.payout_total:,} on {r.pay_date:%Y-%m-%d}, "
          f"{r.held_back} held back; {written} files in {out}")


def _valid_format(value: str) -> kpi_render.Format:
    try:
        return kpi_render.parse_format(value)
    except Problem as refused:
        raise typer.BadParameter(refused.detail, param_hint="--kpi") from None


# --- importing history ---------------------------------------------------------------------------------

import_cli = typer.Typer(help="Carry a previous platform's history over (移行).", no_args_is_help=True)
app.add_typer(import_cli, name="import")


@import_cli.command("history")
def import_history_file(
    file: Annotated[Path, typer.Argument(help="the history CSV (README: Importing history)", exists=True,
                                         dir_okay=False, readable=True)],
    region: RegionOption = "aizu",
) -> None:
    """Import the file as the region's operator, all or nothing: every bad row listed and exit 1,
    or the rows imported and skipped (those imported before) counted. Importing again adds nothing."""
    content = file.read_bytes()
    with Progress(
        TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bar:
        phases = {name: bar.add_task(name, total=None) for name in ("reading", "checking", "writing")}

        async def progress(phase: str, done: int, total: int) -> None:
            bar.update(phases[phase], completed=done, total=total)

        async def work(session: AsyncSession, operator: Actor) -> history_imports.Outcome:
            return await history_imports.import_file(
                session, SystemClock(), operator, region=region, content=content, batch_id=uuid.uuid4(),
                progress=progress,
            )

        try:
            outcome = _as_operator(work)
        except history_imports.Rejected as rejected:
            bar.stop()
            print(f"refused: {rejected.problem.detail}", file=sys.stderr)
            table = Table(title=f"{len(rejected.problems)} problem(s); nothing was imported")
            for column in ("line", "key", "field", "code", "detail"):
                table.add_column(column)
            for p in rejected.problems:
                table.add_row(str(p.line or ""), p.key or "", p.field or "", p.code, p.detail)
            Console(stderr=True, width=200).print(table)
            raise typer.Exit(1) from None
    table = Table(title=f"History imported into {region} ({outcome.rows} rows)")
    for column in ("record", "imported", "skipped"):
        table.add_column(column, justify="right" if column != "record" else "left")
    for record in ("merchant", "resident", "topup", "payment", "refund", "grant"):
        table.add_row(record, str(outcome.imported.written.get(record, 0)), str(outcome.imported.skipped.get(record, 0)))
    console.print(table)
    console.print(f"opening journals: {outcome.imported.openings} "
                  f"(¥{outcome.imported.opened_yen:,}, {outcome.imported.opened_points:,} points)")


if __name__ == "__main__":
    app()
