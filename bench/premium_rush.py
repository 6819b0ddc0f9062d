#!/usr/bin/env python3
"""bench/premium_rush: a first-come premium sale at opening time (issue 4). 10,000 funded
residents try to buy a campaign of 5,000 sets (at most 2 per person, 8 per household) at 128
connections, over HTTP against `chiikipay serve` on the embedded default; then, on the same
server and machine, a short case of bench/payments for comparison.

Run from the repository root as `bench/premium_rush` (see bench/README.md). Every file it makes is
under a fresh run folder, bench/out/premium-rush-<time>/ (git-ignored). It reuses the server
harness of bench/payments.py (start, stop, psql, CPU sampling).

Checks (exit 1 if any fails): exactly the campaign's sets are sold; the stock is empty; nobody
holds more than the per-person limit, no household more than its limit; the purchases recorded
equal the 2xx answers; the budget paid exactly sets × premium; no 5xx; `chiikipay ledger verify`
exits 0. Exit 2 when the run could not be made. Missing the p99 target is reported, not an exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import payments as harness  # noqa: E402  (bench/payments.py: the server harness)

REPO = BENCH.parent
REGION, OPERATOR = harness.REGION, harness.OPERATOR
PRICE, VALUE = 10_000, 12_500
TOPUP = 20_000  # two sets' worth
HOUSEHOLD_SIZE = 5  # residents per household among the first --households × 5
TARGET_P99_MS = 200.0
SETS_BODIES = ('{"sets":2}', '{"sets":1}')
log, RunError, run = harness.log, harness.RunError, harness.run


async def set_up(url: str, data_dir: Path, args: argparse.Namespace, tag: str) -> tuple[str, list[str]]:
    """Over the API: the funded premium campaign and its offer (open now), and the residents,
    each topped up with two sets' worth; households for the first ones. Returns (campaign id, tokens)."""
    import httpx

    # Buyers of their own: the payments case afterwards tops up bench-resident-* to the balance cap.
    operator, tokens = harness.mint_tokens(data_dir, args.residents, prefix="rush-resident")
    op = {"Authorization": f"Bearer {operator}"}
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def call(method: str, path: str, headers: dict[str, str], body: Any = None, expect: int = 200) -> Any:
            async with gate:
                response = await client.request(method, path, headers=headers, json=body)
            if response.status_code != expect:
                raise RunError(f"set-up: {method} {path} answered {response.status_code}: {response.text[:500]}")
            return response.json()

        started = time.monotonic()
        campaign = await call("POST", "/v1/campaigns", {**op, "Idempotency-Key": f"{tag}-campaign"},
                              {"kind": "premium", "name": f"Premium rush {tag}", "name_ja": "プレミアム付き商品券"}, 201)
        await call("POST", f"/v1/campaigns/{campaign['id']}/funding", {**op, "Idempotency-Key": f"{tag}-fund"},
                   {"amount": args.sets * (VALUE - PRICE)}, 201)

        async def resident(i: int, token: str) -> None:
            wallet = await call("GET", "/v1/wallet", {"Authorization": f"Bearer {token}"})
            await call("POST", f"/v1/wallets/{wallet['id']}/topups", {**op, "Idempotency-Key": f"{tag}-topup-{i}"},
                       {"amount": TOPUP, "memo": "bench"}, 201)
            if i < args.households * HOUSEHOLD_SIZE:
                await call("PATCH", f"/v1/wallets/{wallet['id']}", {**op, "Idempotency-Key": f"{tag}-hh-{i}"},
                           {"household": f"rush-household-{i // HOUSEHOLD_SIZE:04d}"})

        await asyncio.gather(*(resident(i, t) for i, t in enumerate(tokens)))
        now = dt.datetime.now(dt.UTC)
        tokyo = dt.timezone(dt.timedelta(hours=9))
        until = (now.astimezone(tokyo) + dt.timedelta(days=120)).replace(hour=0, minute=0, second=0, microsecond=0)
        await call("POST", f"/v1/campaigns/{campaign['id']}/premium-offer", {**op, "Idempotency-Key": f"{tag}-offer"}, {
            "mode": "first_come", "price": PRICE, "value": VALUE, "local_share_bp": 5000,
            "local_classes": ["shotengai", "small_shop"], "per_person": args.per_person, "per_household": 8,
            "total_sets": args.sets, "opens_at": now.isoformat(), "closes_at": (now + dt.timedelta(hours=2)).isoformat(),
            "usable_until": until.isoformat(), "stock_buckets": args.buckets,
        }, 201)
        log(f"set-up: campaign of {args.sets} sets, {args.residents} residents with {TOPUP:,} yen each "
            f"({args.households * HOUSEHOLD_SIZE} of them in households of {HOUSEHOLD_SIZE}), "
            f"in {time.monotonic() - started:.0f} s over the API")
    return campaign["id"], tokens


def write_plan(path: Path, tokens: list[str], campaign_id: str, total: int) -> None:
    """Attempt i is by resident (i × 7919) mod #residents — every resident once, then again for
    i ≥ #residents — and asks for 2 sets when i is even, 1 when odd."""
    purchases = f"/v1/campaigns/{campaign_id}/premium-purchases"
    harness.write_plan(path, [
        harness.Planned(f"Bearer {tokens[(i * 7919) % len(tokens)]}", purchases, SETS_BODIES[i % 2], "purchase")
        for i in range(total)
    ])


def warm_up(server: harness.Server, args: argparse.Namespace, campaign_id: str, token: str, out: Path) -> None:
    """Residents look at the offer for a few seconds before it opens, at the rush's connections: the
    server opens its database connections then (as a server running for days has), not during the
    rush's first second."""
    log(f"warm-up: GET the offer at {args.connections} connections for 5 s")
    run(["wrk", "-t", str(args.wrk_threads), "-c", str(args.connections), "-d", "5s", "-H",
         f"Authorization: Bearer {token}", f"{server.url}/v1/campaigns/{campaign_id}/premium-offer"],
        timeout=60, output=out / "wrk-warm-up.txt")


def rush(server: harness.Server, data: Path, args: argparse.Namespace, tag: str, out: Path) -> harness.PlanResult:
    rate = args.requests / args.arrive_within if args.arrive_within else 0.0
    # wrk waits out -d even when every thread has stopped: keep it near the rush's length.
    limit = int(args.arrive_within) + 30 if args.arrive_within else args.max_rush_seconds
    return harness.run_plan(server, data, total=args.requests, connections=args.connections, threads=args.wrk_threads,
                            rate=rate, time_limit=limit, tag=tag, output=out / "wrk-rush.txt")


def figures(server: harness.Server, campaign_id: str) -> dict[str, int]:
    row = server.psql(
        "SELECT (SELECT coalesce(sum(sets), 0) FROM wallet.premium_purchases WHERE campaign_id = '{c}'),"
        " (SELECT count(*) FROM wallet.premium_purchases WHERE campaign_id = '{c}'),"
        " (SELECT coalesce(sum(remaining), 0) FROM wallet.premium_stock WHERE campaign_id = '{c}'),"
        " (SELECT coalesce(max(s), 0) FROM (SELECT sum(sets) s FROM wallet.premium_purchases WHERE campaign_id = '{c}'"
        "   GROUP BY resident_id) p),"
        " (SELECT coalesce(max(s), 0) FROM (SELECT sum(p.sets) s FROM wallet.premium_purchases p"
        "   JOIN wallet.residents r ON r.id = p.resident_id WHERE p.campaign_id = '{c}' AND r.household IS NOT NULL"
        "   GROUP BY r.household) h),"
        " (SELECT coalesce(max(sets), 0) FROM wallet.premium_tallies WHERE campaign_id = '{c}' AND scope = 'resident'),"
        " (SELECT -coalesce(sum(e.amount), 0) FROM wallet.entries e JOIN wallet.accounts a ON a.id = e.account_id"
        "   JOIN wallet.journals j ON j.id = e.journal_id WHERE a.campaign_id = '{c}' AND j.kind = 'premium'),"
        " (SELECT count(DISTINCT resident_id) FROM wallet.premium_purchases WHERE campaign_id = '{c}')".format(c=campaign_id)
    )
    keys = ("sold_sets", "purchases", "stock_left", "max_per_person", "max_per_household", "max_tally",
            "premium_paid", "buyers")
    return dict(zip(keys, (int(x) for x in row.split("|")), strict=True))


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/premium_rush", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--residents", type=int, default=10_000)
    p.add_argument("--sets", type=int, default=5_000, help="the campaign's total sets (default 5,000)")
    p.add_argument("--per-person", type=int, default=2)
    p.add_argument("--households", type=int, default=400, help=f"households of {HOUSEHOLD_SIZE} residents (limit 8)")
    p.add_argument("--requests", type=int, default=None,
                   help="purchase attempts in all (default 1.2 × residents: everyone once, some twice)")
    p.add_argument("--connections", type=int, default=128)
    p.add_argument("--arrive-within", type=float, default=60.0,
                   help="the attempts arrive evenly within this many seconds, whether or not the server keeps up "
                        "(default 60: the same minute); 0: every connection sends again as soon as it is answered")
    p.add_argument("--buckets", type=int, default=32, help="stock buckets of the offer (default 32)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument("--max-rush-seconds", type=int, default=300,
                   help="wrk's time limit when attempts are sent as fast as answered (--arrive-within 0); "
                        "the rush normally ends first")
    p.add_argument("--payments-seconds", type=int, default=15,
                   help="length of the bench/payments spread case run afterwards on the same server (0: skip)")
    p.add_argument("--payments-merchants", type=int, default=50)
    p.add_argument("--payments-residents", type=int, default=500)
    p.add_argument("--db-pool-size", type=int, default=None)
    p.add_argument("--commit", default=None,
                   help="serve this commit (exported with git archive into the run folder) instead of the working tree")
    p.add_argument("--keep-data", action="store_true")
    p.add_argument("--out", type=Path, default=BENCH / "out")
    p.add_argument("--max-seconds", type=int, default=3600)
    args = p.parse_args(argv)
    args.requests = args.requests or args.residents * 6 // 5
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench/premium_rush needs wrk: `apt-get install -y wrk` (Debian/Ubuntu).", file=sys.stderr)
        return 2
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = (args.out / f"premium-rush-{stamp}").resolve()
    run_dir.mkdir(parents=True)
    tag = f"rush-{stamp}"
    source: Path | None = None
    if args.commit:
        try:
            commit = harness.export_commit(args.commit, run_dir / "src")
        except (RunError, subprocess.SubprocessError) as exc:
            print(f"cannot export {args.commit}: {exc}", file=sys.stderr)
            return 2
        source = run_dir / "src"
        code = f"commit {commit[:12]} (exported to {source})"
    else:
        code = harness.working_tree_state()
    sys.path.insert(0, str(source or REPO))  # the chiikipay package the driver mints tokens with
    machine = harness.machine_info()
    log(f"run folder {run_dir}")
    log(f"code: {code}")
    log(f"machine: {machine['nproc']} × {machine['cpu']}, {machine['memory']}, Linux {machine['kernel']}")

    def on_deadline(*_: Any) -> None:
        raise harness.Deadline(f"the run took longer than --max-seconds={args.max_seconds}")

    def on_term(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, on_deadline)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(args.max_seconds)
    server = harness.Server(run_dir, workers=args.workers, pool_size=args.db_pool_size, log_level=None, source=source)
    checks: list[tuple[str, bool]] = []
    info: dict[str, Any] = {}
    result: harness.PlanResult | None = None
    found: dict[str, int] = {}
    payments: harness.Case | None = None
    try:
        server.prepare_postgres()
        server.start()
        info["postgres"] = server.psql("SELECT version()")
        campaign_id, tokens = asyncio.run(set_up(server.url, server.data_dir, args, tag))
        data = run_dir / "wrk-data.lua"
        write_plan(data, tokens, campaign_id, args.requests)
        # The set-up has just inserted every resident, wallet, top-up and lot. A real region's
        # tables are long vacuumed and analysed by its opening day; here autovacuum's first pass
        # over them would land in the rush (the likely cause of 2–3 s of queue seen mid-sale), so
        # it runs now.
        server.psql("VACUUM ANALYZE", timeout=600)
        harness.checkpoint(server)
        warm_up(server, args, campaign_id, tokens[0], run_dir)
        log(f"rush: {args.requests} purchase attempts by {args.residents} residents at {args.connections} connections, "
            + (f"arriving evenly within {args.arrive_within:g} s" if args.arrive_within else "as fast as answered"))
        a = harness.cpu_sample(server)
        result = rush(server, data, args, tag, run_dir)
        result.cpu = harness.cpu_split(a, harness.cpu_sample(server))
        log(f"  {result.seconds:.1f} s: {result.ok} purchases (2xx), {result.answered - result.ok} refusals, "
            f"{result.answers_per_second:.0f} requests/s, {result.per_second:.0f} purchases/s, "
            f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms; statuses {result.statuses}")
        found = figures(server, campaign_id)
        log(f"  database: {found}")
        checks += [
            (f"sets sold {found['sold_sets']} == {args.sets}", found["sold_sets"] == args.sets),
            (f"stock left {found['stock_left']} == 0", found["stock_left"] == 0),
            (f"most sets of one person {found['max_per_person']} ≤ {args.per_person} (tally {found['max_tally']})",
             found["max_per_person"] <= args.per_person and found["max_tally"] <= args.per_person),
            (f"most sets of one household {found['max_per_household']} ≤ 8", found["max_per_household"] <= 8),
            (f"purchases recorded {found['purchases']} == 2xx {result.ok}", found["purchases"] == result.ok),
            (f"premium paid from the budget {found['premium_paid']:,} == sets × {VALUE - PRICE}",
             found["premium_paid"] == found["sold_sets"] * (VALUE - PRICE)),
            (f"no 5xx, no unanswered request ({result.unanswered})",
             not any(k.startswith("5") for k in result.statuses) and result.unanswered == 0),
        ]
        if args.payments_seconds:
            log(f"payments (bench/payments, spread, {args.connections} connections, {args.payments_seconds} s) "
                "on the same server")
            fixtures = asyncio.run(harness.create_fixtures(server.url, server.data_dir, args.payments_residents,
                                                           args.payments_merchants, f"{tag}-pay"))
            pay_data = run_dir / "wrk-payments-data.lua"
            harness.write_lua_data(pay_data, fixtures)
            harness.checkpoint(server)
            payments = harness.Case("spread", args.connections)
            before = harness.count_payments(server)
            a = harness.cpu_sample(server)
            harness.run_wrk(server, payments, duration=args.payments_seconds, drain=4, threads=args.wrk_threads,
                            data=pay_data, tag=f"{tag}-pay", out_dir=run_dir)
            payments.cpu = harness.cpu_split(a, harness.cpu_sample(server))
            payments.new_payments = harness.count_payments(server) - before
            log(f"  {payments.per_second:.0f} payments/s, p50 {payments.p50_ms:.1f} ms, p99 {payments.p99_ms:.1f} ms, "
                f"{payments.ok} 2xx, {payments.bad} non-2xx")
            checks.append((f"payments: new payments {payments.new_payments} == 2xx {payments.ok}",
                           payments.new_payments == payments.ok))
        log("chiikipay ledger verify")
        verify = run([*server.cli, "ledger", "verify"], timeout=900, env=server.env, cwd=run_dir, check=False,
                     output=run_dir / "ledger-verify.txt")
        said = " ".join(verify.stdout.split())
        checks.insert(0, (f"chiikipay ledger verify exit {verify.returncode}: {said[-300:]}", verify.returncode == 0))
    except (RunError, harness.Deadline, KeyboardInterrupt) as exc:
        log(f"run aborted: {type(exc).__name__}: {exc}")
        return 2
    except Exception:  # noqa: BLE001 - the run, not a check, failed
        import traceback

        traceback.print_exc()
        return 2
    finally:
        signal.alarm(0)
        try:
            server.stop()
        finally:
            if not args.keep_data and server.data_dir.is_dir() and server.data_dir.parent == run_dir:
                shutil.rmtree(server.data_dir, ignore_errors=True)

    assert result is not None  # the run returned above if it could not be made
    cpu = result.cpu
    print()
    print(f"chiikipay premium rush, {stamp}: {args.residents} residents, {args.sets} sets (≤ {args.per_person} per "
          f"person, ≤ 8 per household), {args.requests} attempts "
          + (f"arriving evenly within {args.arrive_within:g} s" if args.arrive_within else "as fast as answered")
          + f", {args.connections} connections, "
          f"{args.buckets} stock buckets, {args.workers} workers")
    print(f"machine: {machine['nproc']} × {machine['cpu']}, {machine['memory']}, Linux {machine['kernel']}, "
          f"Python {machine['python']}, {info.get('postgres', '?').split(' on ')[0]}")
    print(f"code: {code}\n")
    print("| case | conns | requests | 2xx | non-2xx | seconds | requests/s | 2xx/s | p50 ms | p99 ms | max ms | "
          "app cores | postgres cores | other cores |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    arrivals = f"arriving within {args.arrive_within:g} s" if args.arrive_within else "as fast as answered"
    print(f"| premium rush, {arrivals} | {args.connections} | {result.sent} | {result.ok} | {result.answered - result.ok} | "
          f"{result.seconds:.1f} | {result.answers_per_second:.0f} | {result.per_second:.0f} | "
          f"{result.p50_ms:.1f} | {result.p99_ms:.1f} | {result.max_ms:.1f} | {cpu['app_cores']:.2f} | "
          f"{cpu['postgres_cores']:.2f} | {cpu['other_cores']:.2f} |")
    if payments is not None:
        print(f"| payments spread | {payments.connections} | {payments.requests} | {payments.ok} | {payments.bad} | "
              f"{payments.seconds:.1f} | {(payments.ok + payments.bad) / payments.seconds if payments.seconds else 0:.0f} | "
              f"{payments.per_second:.0f} | {payments.p50_ms:.1f} | {payments.p99_ms:.1f} | {payments.max_ms:.1f} | "
              f"{payments.cpu['app_cores']:.2f} | {payments.cpu['postgres_cores']:.2f} | {payments.cpu['other_cores']:.2f} |")
    print(f"\nrefusals: {result.statuses}")
    print(f"buyers {found.get('buyers')}, sets sold {found.get('sold_sets')}")
    met = result.p99_ms <= TARGET_P99_MS
    print(f"\ntarget: {'met   ' if met else 'MISSED'}  p99 ≤ {TARGET_P99_MS:.0f} ms: {result.p99_ms:.1f} ms")
    print("\nchecks:")
    for text, passed in checks:
        print(f"  {'pass' if passed else 'FAIL'}  {text}")
    (run_dir / "results.json").write_text(json.dumps({
        "stamp": stamp, "command": " ".join(["bench/premium_rush", *argv]), "machine": machine, "code": code,
        "server": info, "rush": asdict(result), "database": found,
        "payments": None if payments is None else {k: v for k, v in vars(payments).items()},
        "checks": [{"check": t, "passed": p} for t, p in checks],
    }, indent=2, ensure_ascii=False, default=str))
    print(f"\nresults: {run_dir / 'results.json'}")
    return 0 if checks and all(p for _, p in checks) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
