"""The settlement benchmark of issue 14: 1,000 merchants and 3,000,000 payments in one month,
bulk-loaded, then the full settlement run of that month (every statement, the transfer file)
and the KPI report of its fiscal year, each timed and its peak resident memory measured.

Targets (issue 14): the run with its files and the KPI report under 60 s and under 1 GiB of
resident memory on this machine.

One run:
1. starts `chiikipay serve --demo` on a fresh data folder (the harness of bench/payments.py);
2. over the API: onboards the merchants (each with its bank account at a real branch) and the
   residents, each topped up once with 50,000 yen; the operator sets the region's source account
   (委託者) and the baseline cashless rate, and gives every merchant its onboarding bank account
   as its payout account (`chiikipay settlement accounts import-onboarded`);
3. dates the region's fee plans from 1 January (the demo region is made today; November's
   payments need a plan in force), then bulk-loads the payments with the database's own
   rows `wallet.pay` writes, set-wise (bulk_load says how), spread evenly over the month of
   `--period` in Tokyo time;
4. times `chiikipay settle --period P --out DIR`, the one command that makes the run, its files
   and the KPI report of the period's fiscal year (kpi-Y.xlsx), sampling its resident memory
   (with its children) every 50 ms; then, for the record, `chiikipay kpi --fiscal-year Y --format
   xlsx` alone and the run's files alone (`settle` again, `--kpi none`);
5. checks: the payments loaded, every merchant in the transfer file or the held-back list, the
   file's total equal to the statements', `chiikipay ledger verify` exit 0.
"""

from __future__ import annotations

import argparse
import calendar
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from payments import (  # the harness sits beside this file
    Api,
    Deadline,
    RunError,
    Server,
    add_run_args,
    begin_run,
    create_fixtures,
    end_run,
    log,
    mint_tokens,
)

SOURCE_ACCOUNT = {
    "requester_code": "1234567890", "requester_name": "アイヅチイキペイ", "bank_code": "0126", "branch_code": "401",
    "account_type": "ordinary", "account_number": "1234567",
}
BASELINE = {"rate_bp": 309, "source": "クレジットカード決済手数料の平均 (DOMAIN.md)"}


@dataclass
class Measured:
    what: str
    seconds: float
    peak_rss_mib: float
    exit_code: int


def measure(cmd: list[str], env: dict[str, str], cwd: Path, output: Path) -> Measured:
    """Run `cmd`, sampling the resident memory of it and its children every 50 ms."""
    started = time.monotonic()
    with open(output, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        watched = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                tree = [watched, *watched.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.05)
    return Measured(" ".join(cmd[-6:]), time.monotonic() - started, peak / 2**20, proc.returncode)


def month_bounds(period: str) -> tuple[str, int]:
    """The month's first instant in Tokyo, and its number of days."""
    year, month = (int(x) for x in period.split("-")[:2])
    return f"{year:04d}-{month:02d}-01 00:00:00+09", calendar.monthrange(year, month)[1]


def bulk_load(server: Server, region_id: str, *, payments: int, chunk: int, period: str) -> float:
    """`payments` payments written set-wise, `chunk` to a transaction, as `wallet.pay` writes one:
    the journal; the resident's entry with its balance after, the merchant's and fee income's;
    the payment row with the fee `wallet.charge_fee` gives (the same rule, called per row); its
    lot taken; the lot and the wallet's balance lowered. Each resident holds one top-up lot of
    50,000 yen and pays about 45,000 yen in all, in time order; the ledger's constraint trigger
    checks every journal balances, and `ledger verify` checks the rest at the end. Ids are UUIDv7
    of the payment's time, as the app's (shared/ids.py): PostgreSQL 18's `uuidv7(shift)`, the
    embedded server's version; random ids would scatter every index insert."""
    first_instant, days = month_bounds(period)
    server.psql(
        "DROP TABLE IF EXISTS bench_residents, bench_stores;"
        "CREATE TABLE bench_residents AS SELECT (row_number() OVER (ORDER BY a.id) - 1)::int AS n, a.id AS account_id,"
        " l.id AS lot_id FROM wallet.residents r JOIN wallet.accounts a ON a.resident_id = r.id AND a.unit = 'yen'"
        " JOIN wallet.lots l ON l.account_id = a.id AND l.remaining > 0 WHERE r.subject LIKE 'bench-resident-%';"
        "CREATE TABLE bench_stores AS SELECT (row_number() OVER (ORDER BY s.id) - 1)::int AS n, s.id AS store_id,"
        " s.merchant_id, a.id AS merchant_account FROM wallet.stores s JOIN wallet.merchants m ON m.id = s.merchant_id"
        " JOIN wallet.accounts a ON a.merchant_id = m.id AND a.unit = 'yen' WHERE m.name LIKE 'Bench Shop %';"
        "CREATE UNIQUE INDEX ON bench_residents (n); CREATE UNIQUE INDEX ON bench_stores (n);"
    )
    residents = int(server.psql("SELECT count(*) FROM bench_residents"))
    if residents != int(server.psql("SELECT count(DISTINCT account_id) FROM bench_residents")):
        raise RunError("a bench resident holds more than one lot: top each up once")
    stores = int(server.psql("SELECT count(*) FROM bench_stores"))
    fee_account = server.psql(
        f"SELECT id FROM wallet.accounts WHERE region_id = '{region_id}' AND kind = 'fee_income' AND unit = 'yen'"
        " AND resident_id IS NULL AND merchant_id IS NULL AND campaign_id IS NULL AND sponsor_id IS NULL")
    span = days * 86400
    started = time.monotonic()
    for i0 in range(0, payments, chunk):
        i1 = min(payments, i0 + chunk)
        server.psql(f"""
            BEGIN;
            CREATE TEMP TABLE p ON COMMIT DROP AS
              SELECT uuidv7(t.at - now()) AS id, uuidv7(t.at - now()) AS journal_id, t.* FROM (
                SELECT r.account_id, r.lot_id, s.store_id, s.merchant_id, s.merchant_account,
                       100 + (i % 3) * 50 AS amount,
                       timestamptz '{first_instant}' + (i::float8 / {payments}) * interval '{span} seconds' AS at
                  FROM generate_series({i0}, {i1 - 1}) i
                  JOIN bench_residents r ON r.n = i % {residents}
                  JOIN bench_stores s ON s.n = (i::bigint * 7919) % {stores}) t;
            CREATE TEMP TABLE f ON COMMIT DROP AS
              SELECT p.*, c.fee, c.plan_id, c.rate_bp,
                     a.balance - sum(p.amount) OVER (PARTITION BY p.account_id ORDER BY p.at, p.id) AS balance_after
                FROM p JOIN wallet.accounts a ON a.id = p.account_id,
                LATERAL wallet.charge_fee('{region_id}', p.merchant_id, 'payment', p.amount, p.at, 2026::smallint) c;
            INSERT INTO wallet.journals (id, region_id, kind, actor, reference, memo, created_at)
              SELECT journal_id, '{region_id}', 'payment', 'resident:' || account_id, id::text, NULL, at FROM f ORDER BY at;
            INSERT INTO wallet.entries (id, journal_id, account_id, region_id, unit, amount, balance_after, created_at)
              SELECT uuidv7(e.at - now()), e.journal_id, e.account_id, '{region_id}', 'yen', e.amount, e.balance_after, e.at
                FROM (SELECT journal_id, account_id, -amount AS amount, balance_after, at, 1 AS leg FROM f
                      UNION ALL SELECT journal_id, merchant_account, amount - fee, NULL, at, 2 FROM f WHERE amount > fee
                      UNION ALL SELECT journal_id, '{fee_account}'::uuid, fee, NULL, at, 3 FROM f WHERE fee > 0) e
               ORDER BY e.at, e.journal_id, e.leg;
            INSERT INTO wallet.payments (id, region_id, journal_id, resident_account_id, merchant_id, store_id, method,
                                         amount, fee, fee_rate_bp, fee_plan_id, fiscal_year, refunded_amount,
                                         fee_returned, order_reference, card_id, created_at, point_amount, fee_point)
              SELECT id, '{region_id}', journal_id, account_id, merchant_id, store_id, 'mpm_static', amount, fee,
                     rate_bp, plan_id, 2026, 0, 0, NULL, NULL, at, 0, 0 FROM f;
            INSERT INTO wallet.payment_lots (payment_id, seq, lot_id, unit, amount) SELECT id, 1, lot_id, 'yen', amount FROM f;
            UPDATE wallet.lots l SET remaining = l.remaining - t.spent
              FROM (SELECT lot_id, sum(amount) AS spent FROM f GROUP BY lot_id) t WHERE l.id = t.lot_id;
            UPDATE wallet.accounts a SET balance = a.balance - t.spent
              FROM (SELECT account_id, sum(amount) AS spent FROM f GROUP BY account_id) t WHERE a.id = t.account_id;
            COMMIT;""", timeout=3600)
        log(f"loaded {i1:,} payments ({time.monotonic() - started:.0f} s)")
    server.psql("DROP TABLE bench_residents, bench_stores; ANALYZE;", timeout=1800)
    return time.monotonic() - started


def set_up_settlement(server: Server, data_dir: Path, run_dir: Path) -> None:
    import asyncio

    import httpx

    operator, _ = mint_tokens(data_dir, 0)
    op = {"Authorization": f"Bearer {operator}"}

    async def calls() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            call = Api(client)
            await call("PUT", "/v1/settlement/source-account", {**op, "Idempotency-Key": "bench-source"}, SOURCE_ACCOUNT)
            await call("PUT", "/v1/settlement/baseline-rates/2026-01-01", op, BASELINE)

    asyncio.run(calls())
    done = subprocess.run([*server.cli, "settlement", "accounts", "import-onboarded"], env=server.env, cwd=run_dir,
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RunError(f"import-onboarded failed: {done.stdout}{done.stderr}")
    log(done.stdout.splitlines()[0] if done.stdout else "payout accounts set")
    # The demo region is made today; the month measured is before it, so its fee plans start on
    # 1 January (a fixture's date, written as the region's operator could not: plans never start
    # in the past through the API).
    server.psql("UPDATE wallet.fee_plans SET effective_from = '2026-01-01 00:00+09'")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/settlement", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--merchants", type=int, default=1000)
    p.add_argument("--residents", type=int, default=10_000)
    p.add_argument("--payments", type=int, default=3_000_000)
    p.add_argument("--period", default="2026-11", help="the month the payments fall in and that is settled")
    p.add_argument("--chunk", type=int, default=500_000, help="payments per loading transaction (default 500,000)")
    p.add_argument("--save-loaded", type=Path, default=None, metavar="DIR",
                   help="after the bulk load, copy the data folder (server stopped) to DIR, for --from-loaded")
    p.add_argument("--from-loaded", type=Path, default=None, metavar="DIR",
                   help="start from a copy of a data folder --save-loaded kept (same sizes), skipping set-up and load")
    add_run_args(p)
    args = p.parse_args(argv)
    if args.payments * 150 > args.residents * 48_000:
        p.error("too few residents: each pays 150 yen a payment on average from one top-up of 50,000 yen")
    return args


def copy_folder(source: Path, target: Path) -> None:
    """A data folder copied with its owners and modes (PostgreSQL runs as its own user when root
    starts it, and refuses a folder it cannot read)."""
    subprocess.run(["cp", "-a", str(source), str(target)], check=True, timeout=1800)


def load(server: Server, run_dir: Path, stamp: str, args: argparse.Namespace) -> dict[str, float]:
    """A fresh cluster, the set-up over the API and the bulk load: their seconds."""
    import asyncio

    server.prepare_postgres()
    server.start()
    started = time.monotonic()
    asyncio.run(create_fixtures(server.url, server.data_dir, args.residents, args.merchants, stamp, topups=1))
    set_up_settlement(server, server.data_dir, run_dir)
    setup = round(time.monotonic() - started, 1)
    region_id = server.psql("SELECT id FROM wallet.regions WHERE code = 'aizu'")
    loaded = round(bulk_load(server, region_id, payments=args.payments, chunk=args.chunk, period=args.period), 1)
    return {"setup_api_seconds": setup, "load_seconds": loaded}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    run = begin_run("bench/settlement", "settlement", args, needs_wrk=False)
    if run is None:
        return 2
    server = Server(run.dir, workers=2, pool_size=None, log_level="WARNING", source=run.source)
    results: dict[str, object] = {"machine": run.machine, "code": run.code, "args": {
        k: v for k, v in vars(args).items() if k not in ("out",)}}
    try:
        if args.from_loaded is not None:
            # The data folder as --save-loaded left it, copied so that the saved one stays unsettled.
            copy_folder(args.from_loaded, server.data_dir)
            server.start()
        else:
            results |= load(server, run.dir, run.stamp, args)
        results["payments_in_period"] = int(server.psql(
            f"SELECT count(*) FROM wallet.payments WHERE created_at >= timestamptz '{month_bounds(args.period)[0]}'"))
        server.psql("CHECKPOINT", timeout=1800)
        log(f"{results['payments_in_period']:,} payments in the period")
        if args.save_loaded is not None:
            server.stop()
            copy_folder(server.data_dir, args.save_loaded)
            log(f"the loaded data folder is saved in {args.save_loaded}")
            server.start()

        # The one command: the run, its files and the fiscal year's KPI report (kpi-2026.xlsx).
        out = run.dir / "settlement-files"
        settle = measure([*server.cli, "settle", "--period", args.period, "--out", str(out)], server.env, run.dir,
                         run.dir / "settle.txt")
        # For the record: the KPI report alone, and the run's files alone (the re-run).
        kpi = measure([*server.cli, "kpi", "--fiscal-year", "2026", "--format", "xlsx", "--out",
                       str(run.dir / "kpi.xlsx")], server.env, run.dir, run.dir / "kpi.txt")
        again = measure([*server.cli, "settle", "--period", args.period, "--out", str(run.dir / "again"),
                         "--kpi", "none"], server.env, run.dir, run.dir / "settle-again.txt")
        verify = subprocess.run([*server.cli, "ledger", "verify"], env=server.env, cwd=run.dir, capture_output=True,
                                text=True, timeout=3600, check=False)
        files = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        # The KPI report is the year's as it stands, not the closed run's: the run's files must repeat.
        run_files = [name for name in files if not name.startswith("kpi-")]
        identical = out.is_dir() and (run.dir / "again").is_dir() and run_files == sorted(
            p.name for p in (run.dir / "again").iterdir()) and all(
            (out / name).read_bytes() == (run.dir / "again" / name).read_bytes() for name in run_files)
        results |= {
            "settle": vars(settle), "kpi_alone": vars(kpi), "settle_again_files_alone": vars(again),
            "total_seconds": round(settle.seconds, 1), "peak_rss_mib": round(settle.peak_rss_mib, 1),
            "files": len(files), "kpi_report_written": "kpi-2026.xlsx" in files,
            "rerun_identical": identical, "ledger_verify_exit": verify.returncode,
        }
        (run.dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
        print(json.dumps(results, indent=2, default=str))
        checks = [
            ("payments loaded", results["payments_in_period"] == args.payments),
            ("settle exit 0", settle.exit_code == 0), ("KPI report written", results["kpi_report_written"]),
            ("kpi alone exit 0", kpi.exit_code == 0),
            ("re-run exit 0 and byte-identical", again.exit_code == 0 and identical),
            ("ledger verify exit 0", verify.returncode == 0),
        ]
        targets = [("settle with its files and the KPI report < 60 s", results["total_seconds"] < 60),
                   ("peak RSS < 1 GiB", results["peak_rss_mib"] < 1024)]
        for name, ok in checks + targets:
            print(f"{'PASS' if ok else 'FAIL'}  {name}")
        return 0 if all(ok for _, ok in checks) else 1
    except (RunError, Deadline) as exc:
        print(f"bench/settlement: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench/settlement: interrupted", file=sys.stderr)
        return 2
    finally:
        end_run(server, run, keep_data=args.keep_data)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
