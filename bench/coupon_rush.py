#!/usr/bin/env python3
"""bench/coupon_rush: a coupon rush and the payments that redeem it (issue 13). 10,000 residents
try to claim a coupon of 1,000 stock (one per resident) within 10 s at 128 connections, over HTTP
against `chiikipay serve` on the embedded default; then the 1,000 holders pay with it while other
residents pay without one and some of those without try to redeem a holder's claim anyway; then,
for the speed comparison, payments with a coupon and plain payments, each kind alone, on the same
server in four phases: plain, with a coupon, with a coupon, plain.

Run from the repository root as `bench/coupon_rush` (see bench/README.md). Every file it makes is
under a fresh run folder, bench/out/coupon-rush-<time>/ (git-ignored). It reuses the server
harness of bench/payments.py and its planned-requests runner (bench/plan.lua).

Checks (exit 1 if any fails): exactly the stock is claimed and the stock is empty; nobody holds
more than the per-resident limit; the claims recorded equal the 2xx answers; exactly the
holders' payments are redeemed, each by its claim's resident, and no attempt with someone else's
claim pays; the new payments equal the 2xx payment answers; no 5xx; `chiikipay ledger verify`
exits 0. Exit 2 when the run could not be made. Missing a target is reported, not an exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import payments as harness  # bench/payments.py: the server harness

REPO = BENCH.parent
PRICE = 1_000  # yen, before the discount
DISCOUNT = 100  # the coupon's yen off
TOPUP = 5_000  # room for the (at most three) payments a resident makes here
TARGET_CLAIM_P99_MS = 200.0
TARGET_COUPON_RATIO = 0.8  # payments with a coupon ≥ 0.8 × plain payments/s
log, RunError, run = harness.log, harness.RunError, harness.run


class Town:
    """What the set-up made: tokens by resident index, the shops' QR payloads, the two coupons."""

    def __init__(self, tokens: list[str], payloads: list[str], rush_coupon: str, solo_coupon: str,
                 solo_claims: dict[int, str]) -> None:
        self.tokens = tokens
        self.payloads = payloads
        self.rush_coupon = rush_coupon
        self.solo_coupon = solo_coupon
        self.solo_claims = solo_claims  # resident index -> their claim of the solo coupon


async def set_up(url: str, data_dir: Path, args: argparse.Namespace, tag: str) -> Town:
    """Over the API: shops with their printed codes, residents with money, the rush coupon (active,
    untouched) and the solo coupon, already claimed by the residents who pay with it alone."""
    import httpx

    operator, tokens = harness.mint_tokens(data_dir, args.residents, prefix="coupon-resident")
    op = {"Authorization": f"Bearer {operator}"}
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        call = harness.Api(client)

        async def shop(i: int) -> str:
            body = {
                "name": f"Coupon Shop {i:03d}", "name_ja": f"クーポン商店{i:03d}", "sector": "retail", "mcc": "5411",
                "address": f"会津若松市クーポン町{i}", "bank_code": "0125", "branch_code": "101", "account_type": 1,
                "account_number": f"{8000000 + i:07d}", "account_holder_kana": f"COUPON SHOP {i:03d}",
            }
            created = await call("POST", "/v1/merchants", {**op, "Idempotency-Key": f"{tag}-merchant-{i}"}, body, 201)
            stores = await call("GET", f"/v1/merchants/{created['id']}/stores", op)
            return (await call("GET", f"/v1/stores/{stores[0]['id']}/qr", op))["payload"]

        async def resident(i: int, token: str) -> None:
            wallet = await call("GET", "/v1/wallet", {"Authorization": f"Bearer {token}"})
            await call("POST", f"/v1/wallets/{wallet['id']}/topups", {**op, "Idempotency-Key": f"{tag}-topup-{i}"},
                       {"amount": TOPUP, "memo": "bench"}, 201)

        async def coupon(name: str, stock: int) -> str:
            now = dt.datetime.now(dt.UTC)
            created = await call("POST", "/v1/coupons", {**op, "Idempotency-Key": f"{tag}-coupon-{name}"}, {
                "name": f"{name} {tag}", "kind": "yen_off", "value": DISCOUNT, "min_spend": PRICE,
                "valid_from": (now - dt.timedelta(minutes=5)).isoformat(),
                "valid_until": (now + dt.timedelta(days=1)).isoformat(), "stock": stock, "per_resident_limit": 1,
                "terms": "¥100 off a purchase of ¥1,000 or more at any shop of the town. One per person.",
            }, 201)
            await call("POST", f"/v1/coupons/{created['id']}/activate",
                       {**op, "Idempotency-Key": f"{tag}-activate-{name}"}, None, 200)
            return created["id"]

        started = time.monotonic()
        payloads = await asyncio.gather(*(shop(i) for i in range(args.merchants)))
        await asyncio.gather(*(resident(i, t) for i, t in enumerate(tokens)))
        rush_coupon = await coupon("rush", args.stock)
        solo_coupon = await coupon("solo", args.solo)

        async def solo_claim(i: int) -> tuple[int, str]:
            claim = await call("POST", f"/v1/coupons/{solo_coupon}/claims",
                               {"Authorization": f"Bearer {tokens[i]}", "Idempotency-Key": f"{tag}-solo-claim-{i}"},
                               None, 201)
            return i, claim["id"]

        # The solo coupon's holders are the residents from the end: they take part in the rush too.
        solo_claims = dict(await asyncio.gather(*(solo_claim(args.residents - 1 - n) for n in range(args.solo))))
        log(f"set-up: {args.merchants} shops, {args.residents} residents with {TOPUP:,} yen each, a coupon of "
            f"{args.stock} for the rush and one of {args.solo} claimed by {args.solo} residents, "
            f"in {time.monotonic() - started:.0f} s over the API")
    return Town(tokens, payloads, rush_coupon, solo_coupon, solo_claims)


def payment_body(payload: str, claim_id: str | None = None) -> str:
    body: dict[str, Any] = {"qr": payload, "amount": PRICE}
    if claim_id is not None:
        body["claim_id"] = claim_id
    return json.dumps(body, separators=(",", ":"))


def rush_plan(town: Town, requests: int) -> list[harness.Planned]:
    """Attempt i is by resident (i × 7919) mod #residents: every resident once, then some again."""
    claims = f"/v1/coupons/{town.rush_coupon}/claims"
    n = len(town.tokens)
    return [harness.Planned(f"Bearer {town.tokens[(i * 7919) % n]}", claims, "{}", "claim") for i in range(requests)]


def holders(server: harness.Server, coupon_id: str) -> dict[int, str]:
    """Resident index -> claim id, for every claim of the coupon (subjects are coupon-resident-NNNN)."""
    rows = server.psql(f"SELECT subject, id FROM coupons.claims WHERE coupon_id = '{coupon_id}'")
    found = {}
    for line in rows.splitlines():
        subject, claim_id = line.split("|")
        found[int(subject.rsplit("-", 1)[1])] = claim_id
    return found


def mixed_plan(town: Town, held: dict[int, str], others: int, attempts: int, rng: random.Random) -> list[harness.Planned]:
    """The holders each pay once with their claim; `others` residents without one pay plainly; and
    `attempts` of those without try to pay with a holder's claim. Shuffled, at random shops."""
    without = [i for i in range(len(town.tokens)) if i not in held and i not in town.solo_claims]
    plain_payers = rng.sample(without, min(others, len(without)))
    tricksters = rng.sample(without, min(attempts, len(without)))
    claims = list(held.values())
    planned = [harness.Planned(f"Bearer {town.tokens[i]}", "/v1/coupons/payments",
                               payment_body(rng.choice(town.payloads), claim), "with coupon")
               for i, claim in held.items()]
    planned += [harness.Planned(f"Bearer {town.tokens[i]}", "/v1/payments", payment_body(rng.choice(town.payloads)),
                                "plain") for i in plain_payers]
    planned += [harness.Planned(f"Bearer {town.tokens[i]}", "/v1/coupons/payments",
                                payment_body(rng.choice(town.payloads), rng.choice(claims)), "someone else's claim")
                for i in tricksters]
    rng.shuffle(planned)
    return planned


def solo_plans(town: Town, rng: random.Random) -> tuple[list[harness.Planned], list[harness.Planned]]:
    """Payments with the solo coupon by its holders, and as many plain payments by residents who
    hold none of it (each has paid at most once before: the top-up leaves room)."""
    with_coupon = [harness.Planned(f"Bearer {town.tokens[i]}", "/v1/coupons/payments",
                                   payment_body(rng.choice(town.payloads), claim), "with coupon")
                   for i, claim in town.solo_claims.items()]
    others = [i for i in range(len(town.tokens)) if i not in town.solo_claims]
    plain = [harness.Planned(f"Bearer {town.tokens[i]}", "/v1/payments", payment_body(rng.choice(town.payloads)),
                             "plain") for i in rng.sample(others, min(len(others), len(with_coupon)))]
    return with_coupon, plain


def pooled_rate(*kinds: harness.KindResult) -> float:
    """2xx/s over several phases of one kind: their 2xx over their seconds."""
    seconds = sum(k.seconds for k in kinds)
    return sum(k.ok for k in kinds) / seconds if seconds else 0.0


def claim_figures(server: harness.Server, coupon_id: str) -> dict[str, int]:
    row = server.psql(
        "SELECT (SELECT count(*) FROM coupons.claims WHERE coupon_id = '{c}'),"
        " (SELECT coalesce(sum(remaining), 0) FROM coupons.stock WHERE coupon_id = '{c}'),"
        " (SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM coupons.claims WHERE coupon_id = '{c}'"
        "   GROUP BY subject) s),"
        " (SELECT coalesce(max(held), 0) FROM coupons.holdings WHERE coupon_id = '{c}')".format(c=coupon_id)
    )
    keys = ("claims", "stock_left", "max_per_resident", "max_holding")
    return dict(zip(keys, (int(x) for x in row.split("|")), strict=True))


def redemption_figures(server: harness.Server, coupon_id: str) -> dict[str, int]:
    """Redemptions of the coupon, those whose claim is not the paying wallet's resident's, and those
    whose payment's amount is not the price less the discount."""
    row = server.psql(
        "SELECT count(*),"
        " count(*) FILTER (WHERE r.payment_id IS NULL),"
        " count(*) FILTER (WHERE p.amount <> {price} - {discount} OR r.discount <> {discount}),"
        " count(*) FILTER (WHERE res.subject IS DISTINCT FROM c.subject)"
        " FROM coupons.redemptions r JOIN coupons.claims c ON c.id = r.claim_id"
        " LEFT JOIN wallet.payments p ON p.id = r.payment_id"
        " LEFT JOIN wallet.accounts a ON a.id = p.resident_account_id"
        " LEFT JOIN wallet.residents res ON res.id = a.resident_id"
        " WHERE r.coupon_id = '{c}' AND r.reversed_at IS NULL".format(c=coupon_id, price=PRICE, discount=DISCOUNT)
    )
    keys = ("redemptions", "without_payment", "wrong_amount", "not_the_holders")
    return dict(zip(keys, (int(x) for x in row.split("|")), strict=True))


def send(server: harness.Server, planned: list[harness.Planned], name: str, args: argparse.Namespace, tag: str,
         run_dir: Path, *, rate: float = 0.0, limit: int = 300) -> harness.PlanResult:
    data = run_dir / f"wrk-{name}.lua"
    harness.write_plan(data, planned)
    harness.checkpoint(server)
    a = harness.cpu_sample(server)
    result = harness.run_plan(server, data, total=len(planned), connections=args.connections,
                              threads=args.wrk_threads, rate=rate, time_limit=limit, tag=f"{tag}-{name}",
                              output=run_dir / f"wrk-{name}.txt")
    result.cpu = harness.cpu_split(a, harness.cpu_sample(server))
    for kind, k in result.kinds.items():
        log(f"  {name} / {kind}: {k.ok} 2xx, {k.bad} refused {k.statuses}, {k.per_second:.0f}/s, "
            f"p50 {k.p50_ms:.1f} ms, p99 {k.p99_ms:.1f} ms")
    return result


def no_5xx(result: harness.PlanResult) -> bool:
    return not any(key.startswith("5") for key in result.statuses) and result.unanswered == 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/coupon_rush", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--residents", type=int, default=10_000)
    p.add_argument("--stock", type=int, default=1_000, help="the rush coupon's stock (default 1,000)")
    p.add_argument("--requests", type=int, default=None,
                   help="claim attempts in all (default 1.1 × residents: everyone once, some twice)")
    p.add_argument("--claim-within", type=float, default=10.0,
                   help="the attempts arrive evenly within this many seconds (default 10)")
    p.add_argument("--plain", type=int, default=2_000,
                   help="plain payments beside the holders' in the mixed phase (default 2,000)")
    p.add_argument("--tricksters", type=int, default=200,
                   help="attempts with someone else's claim in the mixed phase (default 200)")
    p.add_argument("--solo", type=int, default=4_000,
                   help="payments with a coupon, and as many plain ones, in the phases alone (default 4,000)")
    p.add_argument("--merchants", type=int, default=50)
    p.add_argument("--connections", type=int, default=128)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--db-pool-size", type=int, default=None)
    harness.add_run_args(p)
    args = p.parse_args(argv)
    args.requests = args.requests or args.residents * 11 // 10
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    bench = harness.begin_run("bench/coupon_rush", "coupon-rush", args)
    if bench is None:
        return 2
    stamp, run_dir, source, code, machine = bench.stamp, bench.dir, bench.source, bench.code, bench.machine
    tag = f"coupon-{stamp}"
    rng = random.Random(args.seed)
    server = harness.Server(run_dir, workers=args.workers, pool_size=args.db_pool_size, log_level=None, source=source)
    checks: list[tuple[str, bool]] = []
    results: dict[str, harness.PlanResult] = {}
    figures: dict[str, Any] = {}
    try:
        server.prepare_postgres()
        server.start()
        postgres = server.psql("SELECT version()").split(" on ")[0]
        town = asyncio.run(set_up(server.url, server.data_dir, args, tag))
        server.psql("VACUUM ANALYZE", timeout=600)  # as a town's long-lived tables are (see premium_rush)

        log(f"rush: {args.requests} claims by {args.residents} residents of a coupon of {args.stock}, arriving "
            f"evenly within {args.claim_within:g} s at {args.connections} connections")
        results["rush"] = rush = send(server, rush_plan(town, args.requests), "rush", args, tag, run_dir,
                                      rate=args.requests / args.claim_within, limit=int(args.claim_within) + 60)
        figures["claims"] = claimed = claim_figures(server, town.rush_coupon)
        checks += [
            (f"claimed {claimed['claims']} == stock {args.stock}", claimed["claims"] == args.stock),
            (f"stock left {claimed['stock_left']} == 0", claimed["stock_left"] == 0),
            (f"most claims of one resident {claimed['max_per_resident']} ≤ 1 (holding {claimed['max_holding']})",
             claimed["max_per_resident"] <= 1 and claimed["max_holding"] <= 1),
            (f"claims recorded {claimed['claims']} == 2xx {rush.ok}", claimed["claims"] == rush.ok),
            ("rush: no 5xx, every attempt answered", no_5xx(rush)),
        ]

        held = holders(server, town.rush_coupon)
        mixed = mixed_plan(town, held, args.plain, args.tricksters, rng)
        log(f"mixed: {len(held)} holders pay with the coupon, {args.plain} residents pay without one, "
            f"{args.tricksters} try someone else's claim; all at once, as fast as answered")
        payments_before = harness.count_payments(server)
        results["mixed"] = m = send(server, mixed, "mixed", args, tag, run_dir)
        new_payments = harness.count_payments(server) - payments_before
        figures["redemptions"] = redeemed = redemption_figures(server, town.rush_coupon)
        with_coupon, plain, tricks = (m.kinds[k] for k in ("with coupon", "plain", "someone else's claim"))
        checks += [
            (f"holders' payments with the coupon: {with_coupon.ok} 2xx of {len(held)}", with_coupon.ok == len(held)),
            (f"redemptions {redeemed['redemptions']} == holders {len(held)}, each with its payment "
             f"({redeemed['without_payment']} without), its holder's ({redeemed['not_the_holders']} not), "
             f"at {PRICE} − {DISCOUNT} ({redeemed['wrong_amount']} not)",
             redeemed["redemptions"] == len(held) and not any(redeemed[k] for k in
                                                              ("without_payment", "not_the_holders", "wrong_amount"))),
            (f"attempts with someone else's claim: {tricks.ok} 2xx (all refused: {tricks.statuses})", tricks.ok == 0),
            (f"new payments {new_payments} == 2xx payments {with_coupon.ok + plain.ok}",
             new_payments == with_coupon.ok + plain.ok),
            ("mixed: no 5xx, every request answered", no_5xx(m)),
        ]

        solo_with, solo_plain = solo_plans(town, rng)
        # Plain, with a coupon, with a coupon, plain (each half of its payments): the server's drift
        # over the phases (a growing database, autovacuum, a VM's neighbours) weighs on both kinds
        # alike instead of on whichever runs second.
        half_with, half_plain = len(solo_with) // 2, len(solo_plain) // 2
        alone = [("plain alone 1", solo_plain[:half_plain]), ("with coupon alone 1", solo_with[:half_with]),
                 ("with coupon alone 2", solo_with[half_with:]), ("plain alone 2", solo_plain[half_plain:])]
        log(f"alone: {len(solo_plain)} plain payments and {len(solo_with)} with a coupon, in four phases "
            "(plain, with coupon, with coupon, plain), each as fast as answered")
        payments_before = harness.count_payments(server)
        for phase, planned in alone:
            results[phase] = send(server, planned, phase.replace(" ", "-"), args, tag, run_dir)
        new_payments = harness.count_payments(server) - payments_before
        alone_ok = sum(results[phase].ok for phase, _ in alone)
        checks += [
            (f"alone: new payments {new_payments} == 2xx {alone_ok} of {len(solo_plain) + len(solo_with)}",
             new_payments == alone_ok == len(solo_plain) + len(solo_with)),
            ("alone: no 5xx, every request answered", all(no_5xx(results[phase]) for phase, _ in alone)),
        ]

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
        harness.end_run(server, bench, keep_data=args.keep_data)

    print()
    print(f"chiikipay coupon rush, {stamp}: {args.residents} residents, a coupon of {args.stock} (1 per resident), "
          f"{args.requests} claims within {args.claim_within:g} s at {args.connections} connections, "
          f"{args.merchants} shops, {args.workers} workers")
    print(f"machine: {machine['nproc']} × {machine['cpu']}, {machine['memory']}, Linux {machine['kernel']}, "
          f"Python {machine['python']}, {postgres}")
    print(f"code: {code}\n")
    print("| phase | kind | 2xx | refused | seconds | 2xx/s | p50 ms | p99 ms | max ms | app cores | postgres cores "
          "| other cores |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for phase, result in results.items():
        cpu = result.cpu
        for kind, k in result.kinds.items():
            print(f"| {phase} | {kind} | {k.ok} | {k.bad} | {k.seconds:.1f} | {k.per_second:.0f} | {k.p50_ms:.1f} | "
                  f"{k.p99_ms:.1f} | {k.max_ms:.1f} | {cpu['app_cores']:.2f} | {cpu['postgres_cores']:.2f} | "
                  f"{cpu['other_cores']:.2f} |")
    print(f"\nrefusals: { {phase: r.statuses for phase, r in results.items()} }")
    claim_p99 = results["rush"].kinds["claim"].p99_ms
    plain_rate = pooled_rate(*(results[f"plain alone {n}"].kinds["plain"] for n in (1, 2)))
    coupon_rate = pooled_rate(*(results[f"with coupon alone {n}"].kinds["with coupon"] for n in (1, 2)))
    ratio = coupon_rate / plain_rate if plain_rate else 0.0
    print("\ntargets:")
    print(f"  {'met   ' if claim_p99 <= TARGET_CLAIM_P99_MS else 'MISSED'}  claim p99 ≤ {TARGET_CLAIM_P99_MS:.0f} ms: "
          f"{claim_p99:.1f} ms")
    print(f"  {'met   ' if ratio >= TARGET_COUPON_RATIO else 'MISSED'}  payments with a coupon ≥ "
          f"{TARGET_COUPON_RATIO} × plain payments/s (each alone, both halves): {coupon_rate:.0f} / {plain_rate:.0f}"
          f" = {ratio:.2f}")
    print("\nchecks:")
    for text, passed in checks:
        print(f"  {'pass' if passed else 'FAIL'}  {text}")
    (run_dir / "results.json").write_text(json.dumps({
        "stamp": stamp, "command": " ".join(["bench/coupon_rush", *argv]), "machine": machine, "code": code,
        "postgres": postgres, "phases": {phase: asdict(r) for phase, r in results.items()}, "database": figures,
        "checks": [{"check": t, "passed": p} for t, p in checks],
    }, indent=2, ensure_ascii=False, default=str))
    print(f"\nresults: {run_dir / 'results.json'}")
    return 0 if checks and all(p for _, p in checks) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
