"""The `chiikipay` command: demo, token, ledger verify, and serve on the embedded default."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import jwt
import psutil
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from typer.testing import CliRunner

from app.cli import app as cli
from services.coupons.segments import service as segments
from services.coupons.segments.filters import FILTERS
from shared.audit import Actor
from shared.clock import SystemClock
from shared.config import get_settings

runner = CliRunner()


@pytest.fixture
def cli_env(settings, sessionmaker, monkeypatch):
    """The CLI pointed at the test database and Redis (`sessionmaker` empties the tables first)."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def test_demo_is_idempotent_and_the_ledger_verifies(cli_env):
    first = runner.invoke(cli, ["demo"])
    assert first.exit_code == 0, first.output
    assert "resident-hanako" in first.output and "Aizu Bus" in first.output
    again = runner.invoke(cli, ["demo"])
    assert again.exit_code == 0, again.output

    verified = runner.invoke(cli, ["ledger", "verify"])
    assert verified.exit_code == 0, verified.output
    # Three opening top-ups (one per resident), even after seeding twice.
    assert "3 journals" in verified.output
    assert runner.invoke(cli, ["ledger", "verify", "--region", "aizu"]).exit_code == 0


def test_ledger_verify_exits_non_zero_naming_the_broken_account(cli_env):
    assert runner.invoke(cli, ["demo"]).exit_code == 0

    async def tamper() -> str:
        engine = create_async_engine(cli_env.database_url)
        async with engine.begin() as conn:
            account = (await conn.exec_driver_sql(
                "UPDATE wallet.accounts SET balance = balance + 1 WHERE resident_id IS NOT NULL "
                "AND id = (SELECT id FROM wallet.accounts WHERE resident_id IS NOT NULL ORDER BY id LIMIT 1) RETURNING id"
            )).scalar_one()
        await engine.dispose()
        return str(account)

    account = asyncio.run(tamper())
    result = runner.invoke(cli, ["ledger", "verify"], terminal_width=200)
    assert result.exit_code == 1
    assert account in result.output and "violation" in result.output


def test_token_is_accepted_by_the_dev_issuer_key_and_refused_when_disabled(cli_env, app, monkeypatch):
    minted = runner.invoke(cli, ["token", "operator", "operator-aizu", "--region", "aizu"])
    assert minted.exit_code == 0, minted.output
    # stdout is the token alone (TOKEN=$(chiikipay token ...)); stderr names the key that signed it.
    claims = jwt.decode(minted.stdout.strip(), app.state.dev_issuer.public_key, algorithms=["RS256"], audience="chiikipay")
    assert (claims["sub"], claims["role"], claims["region"]) == ("operator-aizu", "operator", "aizu")
    assert f"signed with the dev issuer key {(cli_env.data_dir / 'dev-issuer-key.pem').resolve()}" in minted.stderr

    assert runner.invoke(cli, ["token", "merchant_admin", "owner"]).exit_code != 0  # needs --merchant

    monkeypatch.setenv("DEV_ISSUER_ENABLED", "false")
    get_settings.cache_clear()
    refused = runner.invoke(cli, ["token", "operator", "operator-aizu"])
    assert refused.exit_code == 2 and "disabled" in refused.stderr and refused.stdout == ""


def _said(text: str) -> str:
    """An error as read: the words of typer's boxed message, without the box and its wrapping."""
    return " ".join(text.translate(str.maketrans("", "", "│╭╮╰╯─")).split())


@pytest.fixture
def token_env(tmp_path, monkeypatch):
    """`chiikipay token` in a data folder of its own (the command needs no database)."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.setenv("DEV_ISSUER_ENABLED", "true")
    get_settings.cache_clear()
    yield data_dir
    get_settings.cache_clear()


def test_token_refuses_a_malformed_merchant_id_without_a_traceback(token_env):
    result = runner.invoke(cli, ["token", "merchant_admin", "owner", "--merchant", "not-a-uuid"])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--merchant'" in _said(result.stderr) and "Traceback" not in result.output
    assert result.stdout == "" and not (token_env / "dev-issuer-key.pem").exists()


@pytest.mark.parametrize("role", ["partner", "terminal", "partner_service"])
def test_token_refuses_the_roles_that_only_api_keys_carry(token_env, role):
    """The server refuses a token with these roles (principal_from_claims), so none is minted."""
    result = runner.invoke(cli, ["token", role, "pos-1"])
    assert result.exit_code == 2, result.output
    assert f"{role} callers authenticate with an API key (X-API-Key), never a token" in _said(result.stderr)
    assert result.stdout == "" and not (token_env / "dev-issuer-key.pem").exists()


def test_token_outside_the_data_folder_refuses_to_create_a_key_unless_asked(token_env):
    key = token_env.resolve() / "dev-issuer-key.pem"
    refused = runner.invoke(cli, ["token", "resident", "resident-hanako"])
    assert refused.exit_code == 2, refused.output
    assert f"no dev issuer key in the data folder {token_env.resolve()}" in refused.stderr
    assert refused.stdout == "" and not key.exists()

    created = runner.invoke(cli, ["token", "resident", "resident-hanako", "--create-key"])
    assert created.exit_code == 0, created.output
    assert f"created and signed with the dev issuer key {key}" in created.stderr
    public_key = serialization.load_pem_private_key(key.read_bytes(), password=None).public_key()
    assert jwt.decode(created.stdout.strip(), public_key, algorithms=["RS256"], audience="chiikipay")["sub"] == "resident-hanako"

    # The key now exists: later tokens are signed with it, without the flag.
    again = runner.invoke(cli, ["token", "resident", "resident-taro"])
    assert again.exit_code == 0, again.output
    assert f"signed with the dev issuer key {key}" in again.stderr and "created" not in again.stderr
    assert jwt.decode(again.stdout.strip(), public_key, algorithms=["RS256"], audience="chiikipay")["sub"] == "resident-taro"


def _wait_for(url: str, deadline: float) -> bytes:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # polling a real child process while it starts; no clock to move


def test_serve_on_the_embedded_default_starts_and_stops_its_servers(data_folder: Path):
    """What the README's first command does, on a fresh data folder: embedded PostgreSQL and
    Valkey start, the demo is seeded, the API answers; on SIGTERM everything stops."""
    data_dir = data_folder
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["DATA_DIR"] = str(data_dir)
    port = 18_000 + os.getpid() % 1_000
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--demo", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        ready = _wait_for(f"http://127.0.0.1:{port}/readyz", time.monotonic() + 90)
        assert b'"database":"ok"' in ready and b'"redis":"ok"' in ready
        assert (data_dir / "valkey" / "server.json").exists()
        assert (data_dir / "pgdata" / "postmaster.pid").exists()
        # The embedded server runs with its own settings from its first start (a restart applied
        # shared_buffers), not PostgreSQL's 128 MB and 1 GB.
        from shared.embedded import _wanted_settings

        async def settings() -> dict[str, str]:
            import asyncpg

            conn = await asyncpg.connect(host=str(data_dir / "pgdata"), user="postgres", database="chiikipay")
            try:
                return {name: await conn.fetchval(f"SELECT setting || coalesce(unit, '') FROM pg_settings WHERE name = '{name}'")
                        for name in ("shared_buffers", "max_wal_size")}
            finally:
                await conn.close()

        wanted = _wanted_settings()
        pages = int(wanted["shared_buffers"].removesuffix("MB")) * 1024 // 8  # in 8 kB pages, as pg_settings says
        assert asyncio.run(settings()) == {"shared_buffers": f"{pages}8kB", "max_wal_size": "4096MB"}
        # The operator's monthly command on the same embedded servers (adopted, as a deployment's
        # cron would): the run's read sessions and the KPI's reach the embedded database too.
        out = data_dir.parent / "settled"
        settled = subprocess.run([sys.executable, "-m", "app.cli", "settle", "--period", "2026-04", "--out", str(out)],
                                 env=env, capture_output=True, text=True, timeout=120)
        assert settled.returncode == 0, settled.stderr
        assert "2026-04: settled;" in settled.stdout
        assert {p.name for p in out.iterdir()} >= {"summary.csv", "held-back.csv", "kpi-2026.xlsx"}
        assert zipfile.is_zipfile(out / "kpi-2026.xlsx")
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0].decode()
    assert server.returncode == 0, output
    assert "resident-hanako" in output  # the demo table
    assert not (data_dir / "valkey" / "server.json").exists()
    assert not (data_dir / "pgdata" / "postmaster.pid").exists()


def test_jobs_expire_runs_a_date_once_and_refuses_bad_dates(cli_env):
    from datetime import date, datetime, timedelta

    from shared.clock import TOKYO

    assert runner.invoke(cli, ["demo"]).exit_code == 0
    today = datetime.now(TOKYO).date()
    first = runner.invoke(cli, ["jobs", "expire", "--as-of", today.isoformat()])
    assert first.exit_code == 0, first.output
    assert f"aizu: expiry as of {today}: 0 lots" in first.output
    again = runner.invoke(cli, ["jobs", "expire", "--as-of", today.isoformat(), "--region", "aizu"])
    assert again.exit_code == 1 and "refused" in again.output
    future = runner.invoke(cli, ["jobs", "expire", "--as-of", (today + timedelta(days=2)).isoformat()])
    assert future.exit_code == 1 and "has not started" in future.output
    assert runner.invoke(cli, ["jobs", "expire", "--as-of", "yesterday"]).exit_code == 2
    assert runner.invoke(cli, ["jobs", "expire", "--as-of", str(date(2026, 1, 1)), "--region", "nowhere"]).exit_code == 2
    assert runner.invoke(cli, ["ledger", "verify"]).exit_code == 0


@pytest.fixture
def data_folder() -> Iterator[Path]:
    """A fresh data folder for a `chiikipay` subprocess, outside pytest's tmp_path: as root, the
    embedded PostgreSQL runs as the user `pgserver`, which must traverse every parent folder, and
    each pytest session resets /tmp/pytest-of-<user> to 0700 (sessions share this machine)."""
    with tempfile.TemporaryDirectory(prefix="chiikipay-test-") as folder:
        yield Path(folder).resolve() / "data"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _embedded_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["DATA_DIR"] = str(data_dir)
    return env


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The `chiikipay` processes a test starts; none is left running when the test fails half-way."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def _serve(data_dir: Path, spawned: list[subprocess.Popen[bytes]]) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=_embedded_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    spawned.append(process)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/healthz", time.monotonic() + 90)
    except OSError:
        process.kill()
        raise AssertionError(process.communicate(timeout=30)[0].decode()) from None
    return process, base


def _ready(base: str) -> bytes:
    with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:
        return response.read()


def _servers_of(data_dir: Path) -> list[psutil.Process]:
    """The live PostgreSQL and Valkey processes of this data folder: the postmaster is started with
    `-D <pgdata>`, Valkey runs in `<data folder>/valkey` (it rewrites its own command line)."""
    found = []
    for process in psutil.process_iter(["name", "cmdline", "cwd", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if process.info["name"] == "postgres" and str(data_dir) in " ".join(process.info["cmdline"] or ()):
            found.append(process)
        elif process.info["name"] == "valkey-server" and str(data_dir) in (process.info["cwd"] or ""):
            found.append(process)
    return found


def _stop(process: subprocess.Popen[bytes]) -> str:
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 0, output
    return output


def test_embedded_servers_are_stopped_by_the_last_one_out_even_after_a_kill(data_folder: Path, spawned):
    """Issue 11 item 11. Two `serve`s share the embedded servers: the one that started them leaves
    first and they stay up for the other. That one is killed (SIGKILL) and leaves PostgreSQL and
    Valkey running; the next `serve` adopts them, a short-lived `migrate` beside it leaves them
    up, and its clean exit stops both: nothing of this data folder is left running."""
    data_dir = data_folder
    starter, _ = _serve(data_dir, spawned)
    try:
        sharer, sharer_url = _serve(data_dir, spawned)
        _stop(starter)
        assert b'"database":"ok","redis":"ok"' in _ready(sharer_url)
        sharer.kill()
        sharer.communicate(timeout=30)
        left = _servers_of(data_dir)
        assert {p.info["name"] for p in left} >= {"postgres", "valkey-server"}  # what the kill left

        adopter, adopter_url = _serve(data_dir, spawned)
        migrated = subprocess.run(
            [sys.executable, "-m", "app.cli", "migrate"], env=_embedded_env(data_dir),
            capture_output=True, timeout=120,
        )
        assert migrated.returncode == 0, migrated.stderr.decode()
        assert b'"database":"ok","redis":"ok"' in _ready(adopter_url)
        assert {p.pid for p in _servers_of(data_dir)} == {p.pid for p in left}  # adopted, not replaced
        _stop(adopter)
        assert _servers_of(data_dir) == []
        assert not (data_dir / "pgdata" / "postmaster.pid").exists()
        assert not (data_dir / "valkey" / "server.json").exists()
    finally:
        for process in _servers_of(data_dir):  # never leave servers behind when this fails
            process.terminate()


def _regions_and_audit(database_url: str) -> tuple[list[tuple], int]:
    async def read() -> tuple[list[tuple], int]:
        engine = create_async_engine(database_url)
        async with engine.connect() as conn:
            regions = (await conn.exec_driver_sql(
                "SELECT code, name, name_ja, balance_cap, topup_min, topup_max, topup_step, refund_window_days, "
                "coin_expiry_months, payment_request_minutes FROM wallet.regions ORDER BY code"
            )).all()
            events = (await conn.exec_driver_sql("SELECT count(*) FROM platform.audit_events")).scalar_one()
        await engine.dispose()
        return [tuple(r) for r in regions], events

    return asyncio.run(read())


def test_region_create_and_list(cli_env):
    assert runner.invoke(cli, ["demo"]).exit_code == 0
    created = runner.invoke(cli, [
        "region", "create", "kitakata", "--name", "Kitakata", "--name-ja", "喜多方市", "--topup-min", "500",
        "--topup-step", "500", "--coin-expiry-months", "6", "--payment-request-minutes", "10",
    ])
    assert created.exit_code == 0, created.output
    assert '"code": "kitakata"' in created.stdout and '"topup_min": 500' in created.stdout
    regions, events = _regions_and_audit(cli_env.database_url)
    assert regions[1] == ("kitakata", "Kitakata", "喜多方市", cli_env.default_balance_cap, 500,
                          cli_env.default_topup_max, 500, cli_env.default_refund_window_days, 6, 10)

    listed = runner.invoke(cli, ["region", "list"])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines()[0] == "2 region(s)"
    assert listed.stdout.splitlines()[2] == (
        f"kitakata  Kitakata  喜多方市  balance cap {cli_env.default_balance_cap:,}  top-up 500-"
        f"{cli_env.default_topup_max:,} step 500  refunds +{cli_env.default_refund_window_days} days"
        "  coin expiry 6 months  dynamic QR 10 min"
    )

    # Refusals, checked as the API checks them, host nothing and leave no audit event.
    for args, code, says in (
        (["aizu", "--name", "Aizu", "--name-ja", "会津"], 1, "already hosted"),
        (["kita_kata", "--name", "Kitakata", "--name-ja", "喜多方市"], 2, "code"),
        (["inawashiro", "--name", "猪苗代", "--name-ja", "猪苗代町"], 1, "printable ASCII"),
        (["inawashiro", "--name", "Inawashiro", "--name-ja", "猪苗代町", "--topup-min", "750"], 1, "multiples"),
        (["inawashiro", "--name", "Inawashiro", "--name-ja", "猪苗代町", "--refund-window-days", "400"], 2,
         "refund_window_days"),
    ):
        refused = runner.invoke(cli, ["region", "create", *args])
        assert refused.exit_code == code, refused.output
        assert says in refused.stderr
        assert _regions_and_audit(cli_env.database_url) == (regions, events)


async def test_token_mints_a_platform_operator_the_server_accepts(cli_env, client, town, clock):
    from datetime import UTC, datetime

    clock.set(datetime.now(UTC))  # the command mints by the wall clock
    minted = runner.invoke(cli, ["token", "platform_operator", "platform-ops"])
    assert minted.exit_code == 0, minted.output
    token = minted.stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["role"], claims["region"]) == ("platform_operator", "*")
    listed = await client.get("/v1/regions", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200 and [r["code"] for r in listed.json()["items"]] == ["aizu"]
    refused = await client.get("/v1/region", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 403


def test_segments_list_and_audience_show_the_operator_counts_never_residents(cli_env):
    """`chiikipay segments list|audience`: the region's segments and how many residents each
    matches now; an unknown segment or region is refused (exit 1)."""
    assert runner.invoke(cli, ["demo"]).exit_code == 0

    async def prepare() -> str:
        engine = create_async_engine(cli_env.database_url)
        try:
            async with async_sessionmaker(engine)() as s, s.begin():
                await segments.set_profile(
                    s, SystemClock(), region="aizu", actor=Actor("resident-hanako", "resident"),
                    subject="resident-hanako", wanted=segments.Profile(True, False, area="tsuruga"),
                )
                view = await segments.create_segment(
                    s, SystemClock(), region="aizu", actor=Actor("operator-aizu", "operator"),
                    name="Castle district", filters=FILTERS.validate_python([{"kind": "area", "any_of": ["tsuruga"]}]),
                )
                return str(view.segment.id)
        finally:
            await engine.dispose()

    segment_id = asyncio.run(prepare())
    listed = runner.invoke(cli, ["segments", "list", "--region", "aizu"], terminal_width=200)
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines() == ["1 segment(s)", f"{segment_id}  v1  Castle district  [area]"]
    counted = runner.invoke(cli, ["segments", "audience", segment_id], terminal_width=200)
    assert counted.exit_code == 0, counted.output
    assert counted.stdout.startswith(f"1 resident(s) in segment {segment_id} v1 at ")
    assert "hanako" not in counted.stdout
    unknown = runner.invoke(cli, ["segments", "audience", "0190d0c4-0000-7000-8000-000000000000"])
    assert unknown.exit_code == 1 and "No segment" in unknown.stderr
    assert runner.invoke(cli, ["segments", "list", "--region", "nowhere"]).exit_code == 1


def _transit_rows(database_url: str) -> tuple[list[tuple], int]:
    async def read() -> tuple[list[tuple], int]:
        engine = create_async_engine(database_url)
        async with engine.connect() as conn:
            products = (await conn.exec_driver_sql(
                "SELECT p.name, p.kind, p.rides, f.rider_category, f.amount FROM coupons.fare_products p "
                "JOIN coupons.fares f ON f.product_id = p.id ORDER BY p.name, f.rider_category"
            )).all()
            events = (await conn.exec_driver_sql("SELECT count(*) FROM platform.audit_events")).scalar_one()
        await engine.dispose()
        return [tuple(r) for r in products], events

    return asyncio.run(read())


def test_transit_operator_products_and_validators(cli_env, town):
    bus = town.merchants["Aizu Bus"]
    marked = runner.invoke(cli, ["transit", "operator", bus])
    assert marked.exit_code == 0, marked.output
    assert "会津乗合自動車  is a bus operator" in marked.stdout
    added = runner.invoke(cli, ["transit", "product-add", bus, "--name", "Day pass", "--name-ja", "1日乗車券",
                                "--kind", "day_pass", "--adult", "500", "--child", "250"])
    assert added.exit_code == 0, added.output
    assert '"kind": "day_pass"' in added.stdout
    listed = runner.invoke(cli, ["transit", "products", "--merchant", bus])
    assert listed.stdout.splitlines()[0] == "1 fare product(s)"
    assert listed.stdout.splitlines()[1].endswith(
        "Day pass  1日乗車券  day_pass  first use within 90 days  adult 500  child 250  active")

    key = runner.invoke(cli, ["transit", "validator-add", bus, "--name", "bus 101"])
    assert key.exit_code == 0, key.output
    assert key.stdout.strip().startswith("ckbus_") and "bus 101" in key.stderr
    validators = runner.invoke(cli, ["transit", "validators", bus])
    assert validators.stdout.splitlines()[0] == "1 validator(s)" and "bus 101" in validators.stdout

    # Refusals, checked as the API checks them, define nothing and leave no audit event.
    before = _transit_rows(cli_env.database_url)
    for args, code, says in (
        (["operator", bus], 1, "already"),
        (["product-add", bus, "--name", "Day pass", "--name-ja", "1日乗車券", "--kind", "day_pass", "--adult", "1"],
         1, "already has"),
        (["product-add", bus, "--name", "Ten rides", "--name-ja", "回数券", "--kind", "multi_ride", "--adult", "1800"],
         1, "rides"),
        (["product-add", bus, "--name", "Ride", "--name-ja", "乗車券", "--kind", "single_ride", "--adult", "0"],
         2, "adult"),
        (["validator-add", town.merchants["Minato Farm"], "--name", "x"], 1, "no bus operator"),
    ):
        refused = runner.invoke(cli, ["transit", *args])
        assert refused.exit_code == code, refused.output
        assert says in refused.stderr
        assert _transit_rows(cli_env.database_url) == before


def test_coupons_create_list_activate_pause_end(cli_env):
    assert runner.invoke(cli, ["demo"]).exit_code == 0
    created = runner.invoke(cli, [
        "coupons", "create", "--name", "Spring in town", "--kind", "yen_off", "--value", "200", "--min-spend", "1000",
        "--valid-from", "2026-04-01T00:00:00+09:00", "--valid-until", "2026-05-01T00:00:00+09:00", "--stock", "100",
        "--terms", "One per resident.",
    ])
    assert created.exit_code == 0, created.output
    assert '"status": "draft"' in created.stdout and '"merchant_id": null' in created.stdout
    coupon_id = next(line.split('"')[3] for line in created.stdout.splitlines() if line.strip().startswith('"id"'))
    for action, status in (("activate", "active"), ("pause", "paused"), ("activate", "active"), ("end", "ended")):
        moved = runner.invoke(cli, ["coupons", action, coupon_id])
        assert moved.exit_code == 0, moved.output
        assert moved.stdout.strip() == f"{coupon_id}  {status}"
    listed = runner.invoke(cli, ["coupons", "list"])
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines() == [
        "1 coupon(s)",
        f"{coupon_id}  ended  yen_off 200  Spring in town  region-wide  stock 100/100  2026-04-01 00:00..2026-05-01 00:00",
    ]
    # Refused as the API refuses: an ended coupon stays ended (1); a bad field is bad input (2).
    again = runner.invoke(cli, ["coupons", "activate", coupon_id])
    assert (again.exit_code, "cannot become active" in again.stderr) == (1, True)
    invalid = runner.invoke(cli, [
        "coupons", "create", "--name", "x", "--kind", "yen_off", "--value", "200", "--valid-from", "2026-04-01T00:00:00+09:00",
        "--valid-until", "2026-05-01T00:00:00+09:00", "--stock", "0", "--terms", "t",
    ])
    assert invalid.exit_code == 2 and "stock" in invalid.stderr
    unfit = runner.invoke(cli, [
        "coupons", "create", "--name", "x", "--kind", "yen_off", "--value", "200", "--valid-from", "2026-04-01T00:00:00+09:00",
        "--valid-until", "2026-05-01T00:00:00+09:00", "--stock", "5", "--terms", "t",
    ])
    assert unfit.exit_code == 1 and "minimum spend" in unfit.stderr


def _cli_coupon(name: str) -> str:
    created = runner.invoke(cli, [
        "coupons", "create", "--name", name, "--kind", "yen_off", "--value", "100", "--min-spend", "500",
        "--valid-from", "2026-01-01T00:00:00+09:00", "--valid-until", "2031-01-01T00:00:00+09:00", "--stock", "10",
        "--terms", "One per resident.",
    ])
    assert created.exit_code == 0, created.output
    coupon_id = next(line.split('"')[3] for line in created.stdout.splitlines() if line.strip().startswith('"id"'))
    assert runner.invoke(cli, ["coupons", "activate", coupon_id]).exit_code == 0
    return coupon_id


def _bundle_rows(database_url: str) -> list:
    async def read() -> list:
        engine = create_async_engine(database_url)
        try:
            async with async_sessionmaker(engine)() as s:
                return (await s.execute(text(
                    "SELECT b.id, b.status, b.recipients, (SELECT count(*) FROM wallet.notices) FROM coupons.bundles b"
                    " ORDER BY b.id"))).all()
        finally:
            await engine.dispose()


def _payout_accounts(database_url: str) -> tuple[list[tuple], int]:
    async def read() -> tuple[list[tuple], int]:
        engine = create_async_engine(database_url)
        async with engine.connect() as conn:
            accounts = (await conn.exec_driver_sql(
                "SELECT merchant_id::text, bank_code, branch_code, account_type, account_number, holder_name "
                "FROM settlement.payout_accounts ORDER BY merchant_id"
            )).all()
            events = (await conn.exec_driver_sql("SELECT count(*) FROM platform.audit_events")).scalar_one()
        await engine.dispose()
        return [tuple(r) for r in accounts], events

    return asyncio.run(read())


def test_bundles_create_list_distribute_end(cli_env):
    assert runner.invoke(cli, ["demo"]).exit_code == 0
    first, second = _cli_coupon("Teahouse ¥100 off"), _cli_coupon("Bus café ¥100 off")
    window = ["--starts-at", "2026-01-01T00:00:00+09:00", "--ends-at", "2031-01-01T00:00:00+09:00"]
    created = runner.invoke(cli, ["bundles", "create", "--name", "Castle ride", "--terms", "One each.",
                                  "--coupon", first, "--coupon", second, *window])
    assert created.exit_code == 0, created.output
    assert '"status": "draft"' in created.stdout and '"ticket": null' in created.stdout
    bundle_id = next(line.split('"')[3] for line in created.stdout.splitlines() if line.strip().startswith('"id"'))
    sent = runner.invoke(cli, ["bundles", "distribute", bundle_id])
    assert sent.exit_code == 0, sent.output
    assert sent.stdout.strip() == f"{bundle_id}  distributed  3 notice(s)"  # the demo town's residents
    listed = runner.invoke(cli, ["bundles", "list"], terminal_width=200)
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines() == [
        "1 bundle(s)",
        f"{bundle_id}  distributed  Castle ride  2 coupon(s)  all residents  2026-01-01 00:00..2031-01-01 00:00",
    ]

    # Refused as the API refuses: sent once only, never to an empty segment (1); bad input (2).
    async def empty_segment() -> str:
        engine = create_async_engine(cli_env.database_url)
        try:
            async with async_sessionmaker(engine)() as s, s.begin():
                view = await segments.create_segment(
                    s, SystemClock(), region="aizu", actor=Actor("operator-aizu", "operator"), name="Nobody",
                    filters=FILTERS.validate_python([{"kind": "area", "any_of": ["nowhere"]}]),
                )
                return str(view.segment.id)
        finally:
            await engine.dispose()

    segment_id = asyncio.run(empty_segment())
    targeted = runner.invoke(cli, ["bundles", "create", "--name", "For nobody", "--terms", "t", "--coupon", first,
                                   "--segment", segment_id, *window])
    assert targeted.exit_code == 0, targeted.output
    other_id = next(line.split('"')[3] for line in targeted.stdout.splitlines() if line.strip().startswith('"id"'))
    before = _bundle_rows(cli_env.database_url)
    again = runner.invoke(cli, ["bundles", "distribute", bundle_id])
    assert (again.exit_code, "cannot become distributed" in again.stderr) == (1, True)
    empty = runner.invoke(cli, ["bundles", "distribute", other_id])
    assert (empty.exit_code, "No resident" in empty.stderr) == (1, True)
    invalid = runner.invoke(cli, ["bundles", "create", "--name", "x", "--terms", "t", "--coupon", first,
                                  "--starts-at", "tomorrow", "--ends-at", "2031-01-01T00:00:00+09:00"])
    assert invalid.exit_code == 2 and "starts_at" in invalid.stderr
    assert _bundle_rows(cli_env.database_url) == before

    ended = runner.invoke(cli, ["bundles", "end", bundle_id])
    assert (ended.exit_code, ended.stdout.strip()) == (0, f"{bundle_id}  ended")


def test_kpi_writes_the_report_of_a_fiscal_year(cli_env, tmp_path):
    assert runner.invoke(cli, ["demo"]).exit_code == 0  # three residents top up today: they take part
    shown = runner.invoke(cli, ["kpi", "--fiscal-year", "2026"])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.stdout)
    assert report["fiscal_year"] == 2026 and report["months"][0] == "2026-04"
    assert {k["kpi"]: k["actual"] for k in report["kpis"]}["participants"] == "3"
    out = tmp_path / "kpi.xlsx"
    written = runner.invoke(cli, ["kpi", "--fiscal-year", "2026", "--format", "xlsx", "--out", str(out), "--lang", "en"])
    assert written.exit_code == 0, written.output
    with zipfile.ZipFile(out) as book:
        assert "Annual payment amount" in book.read("xl/sharedStrings.xml").decode()
    unknown = runner.invoke(cli, ["kpi", "--fiscal-year", "2026", "--format", "pdf"])
    assert (unknown.exit_code, "No report format 'pdf'" in unknown.stderr) == (1, True)


def test_report_outstanding_per_region(cli_env):
    assert runner.invoke(cli, ["demo"]).exit_code == 0  # its top-ups are today, after the base date
    shown = runner.invoke(cli, ["report", "outstanding", "--base-date", "2026-09-30"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[0].startswith("aizu  base date 2026-09-30  unused 0 yen in 0 wallets  deposit required 0 yen")
    refused = runner.invoke(cli, ["report", "outstanding", "--base-date", "2026-06-30"])
    assert (refused.exit_code, "not a base date" in refused.stderr) == (1, True)


def _wallet_sql(database_url: str, statement: str, **params: object) -> None:
    async def run() -> None:
        engine = create_async_engine(database_url)
        async with engine.begin() as conn:
            await conn.exec_driver_sql(statement, tuple(params.values()))
        await engine.dispose()

    asyncio.run(run())


def test_settlement_accounts_import_onboarded_set_and_list(cli_env, town):
    farm, teahouse = town.merchants["Minato Farm"], town.merchants["Tsurugajo Teahouse"]
    # The pharmacy was onboarded with a branch its bank does not have.
    _wallet_sql(cli_env.database_url, "UPDATE wallet.merchants SET branch_code = '999' WHERE name = $1",
                name="Ekimae Pharmacy")
    imported = runner.invoke(cli, ["settlement", "accounts", "import-onboarded"])
    assert imported.exit_code == 0, imported.output
    assert imported.stdout.splitlines()[0] == "5 copied, 0 kept as they were, 1 refused"
    assert "refused: branch-code-unknown: Bank 0126 has no branch 999." in imported.stdout
    accounts, _ = _payout_accounts(cli_env.database_url)
    assert (farm, "0126", "401", "ordinary", "1234504", "ﾐﾅﾄﾌｱ-ﾑ") in accounts  # ｰ is no character of the file
    assert len(accounts) == 5

    again = runner.invoke(cli, ["settlement", "accounts", "import-onboarded"])
    assert again.stdout.splitlines()[0] == "0 copied, 5 kept as they were, 1 refused"
    assert _payout_accounts(cli_env.database_url)[0] == accounts

    set_ = runner.invoke(cli, ["settlement", "accounts", "set", teahouse, "--bank", "9900", "--branch", "019",
                               "--number", "7654321", "--holder", "ツルガジョウ チャヤ", "--type", "savings"])
    assert set_.exit_code == 0, set_.output
    assert set_.stdout.strip() == f"{teahouse}  9900 ゆうちょ  019 〇一九  貯蓄 7654321  ﾂﾙｶﾞｼﾞﾖｳ ﾁﾔﾔ"

    listed = runner.invoke(cli, ["settlement", "accounts", "list"])
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert lines[0] == "5 payable, 1 held back"
    assert f"{teahouse}  鶴ヶ城茶屋  9900-019 貯蓄 7654321  ﾂﾙｶﾞｼﾞﾖｳ ﾁﾔﾔ" in lines
    assert any(line.endswith("駅前薬局  held back: payout-account-not-found") for line in lines)

    before = _payout_accounts(cli_env.database_url)
    for args, code, says in (
        (["--bank", "0002", "--branch", "001", "--number", "1234567", "--holder", "ﾂﾙ"], 1, "No bank has the code"),
        (["--bank", "0126", "--branch", "401", "--number", "1234567", "--holder", "鶴"], 1, "cannot carry"),
        (["--bank", "126", "--branch", "401", "--number", "1234567", "--holder", "ﾂﾙ"], 2, "bank_code"),
    ):
        refused = runner.invoke(cli, ["settlement", "accounts", "set", teahouse, *args])
        assert refused.exit_code == code, refused.output
        assert says in refused.stderr
        assert _payout_accounts(cli_env.database_url) == before


def test_settle_writes_a_periods_files_and_again_the_same_bytes(cli_env, town, tmp_path):
    """`chiikipay settle`: the run and its files; again, the same bytes; a period not ended, exit 1."""
    import uuid as _uuid
    from datetime import UTC, datetime

    from services.settlement import service as settlement
    from services.wallet import public
    from shared.clock import FrozenClock

    async def prepare() -> None:
        engine = create_async_engine(cli_env.database_url)
        clock, operator = FrozenClock(datetime(2026, 4, 10, 3, tzinfo=UTC)), Actor("operator-aizu", "operator")
        try:
            async with async_sessionmaker(engine)() as s, s.begin():
                shop = await public.merchant(s, region="aizu", merchant_id=_uuid.UUID(town.merchants["Minato Farm"]))
                await public.pay(s, clock, region="aizu", actor=operator, payer="resident-hanako",
                                 store_id=shop.store_ids[0], price=1500)
                await settlement.set_source_account(s, clock, region="aizu", actor=operator, details=settlement.SourceDetails(
                    "1234567890", "アイヅチイキツウカ", settlement.BankDetails("0126", "416", "current", "0001234")))
        finally:
            await engine.dispose()

    asyncio.run(prepare())
    assert runner.invoke(cli, ["settlement", "accounts", "import-onboarded"]).exit_code == 0
    first, again = tmp_path / "first", tmp_path / "again"
    ran = runner.invoke(cli, ["settle", "--period", "2026-04", "--out", str(first)])
    assert ran.exit_code == 0, ran.output
    assert "2026-04: settled; 1 statements, 1 paid ¥1,470 on 2026-05-15, 0 held back; 6 files" in ran.stdout
    farm = town.merchants["Minato Farm"]
    names = sorted(str(p.relative_to(first)) for p in first.rglob("*") if p.is_file())
    run_files = ["held-back.csv", f"statement-{farm}.csv", f"statement-{farm}.pdf", "summary.csv", "zengin.txt"]
    assert names == sorted([*run_files, "kpi-2026.xlsx"])
    with zipfile.ZipFile(first / "kpi-2026.xlsx") as book:  # the fiscal year's KPI report, as `chiikipay kpi`
        assert "2026年度 KPI 実績報告" in book.read("xl/sharedStrings.xml").decode()
    # Again: the run's files byte for byte; the KPI report as asked, this time as JSON.
    rerun = runner.invoke(cli, ["settle", "--period", "2026-04", "--out", str(again), "--kpi", "json"])
    assert rerun.exit_code == 0 and "settled before, files written again" in rerun.stdout
    assert all((first / n).read_bytes() == (again / n).read_bytes() for n in run_files)
    report = json.loads((again / "kpi-2026.json").read_text())
    paid = next(row for row in report["kpis"] if row["kpi"] == "payment_amount")  # in thousands of yen
    assert (report["fiscal_year"], paid["actual"], paid["monthly"]["2026-04"]) == (2026, "1.500", "1.500")
    # --kpi none: the run's files alone; an unknown format: exit 2 before anything is written.
    bare = runner.invoke(cli, ["settle", "--period", "2026-04", "--out", str(tmp_path / "bare"), "--kpi", "none"])
    assert bare.exit_code == 0 and sorted(p.name for p in (tmp_path / "bare").iterdir()) == run_files
    unknown = runner.invoke(cli, ["settle", "--period", "2026-04", "--out", str(tmp_path / "odd"), "--kpi", "pdf"])
    assert (unknown.exit_code, "No report format 'pdf'" in unknown.output) == (2, True)
    assert not (tmp_path / "odd").exists()
    refused = runner.invoke(cli, ["settle", "--period", "2099-12", "--out", str(tmp_path / "none")])
    assert (refused.exit_code, "can be settled from" in refused.stderr) == (1, True)
    assert not (tmp_path / "none").exists()
