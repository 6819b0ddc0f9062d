"""Value lots: what pays a payment, what a refund restores, what expires and who is told."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import text

from services.wallet import jobs
from services.wallet.directory import repository as directory_repo
from services.wallet.directory import service as directory
from services.wallet.expiry import repository as expiry_repo
from services.wallet.expiry import service as expiry
from services.wallet.ledger import lots
from services.wallet.ledger import repository as ledger_repo
from services.wallet.ledger import service as ledger
from services.wallet.ledger.models import AccountKind, JournalKind, LotSource
from shared.clock import TOKYO
from shared.money import Unit
from tests.conftest import START
from tests.helpers import assert_problem, idem, ledger_violations, snapshot
from tests.wallet.test_payments import pay, store_of

TEAHOUSE, PHARMACY = "Tsurugajo Teahouse", "Ekimae Pharmacy"  # classes shotengai and chain in the demo
HANAKO = 30_000


def tokyo_midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), TOKYO)


async def give(sessionmaker, clock, subject: str, amount: int, unit: Unit, *, restriction=None, expires_at=None,
               usable_from=None, source=LotSource.GRANT):
    """A lot of `amount` in the resident's wallet, issued the way grants and premiums issue theirs:
    a journal from the region's campaign fund and the lot, in one transaction."""
    async with sessionmaker() as s, s.begin():
        region = await directory_repo.region_by_code(s, "aizu")
        _, account = await directory_repo.resident_wallet(s, region.id, subject, unit.value)
        fund = await ledger_repo.system_account(s, region.id, AccountKind.CAMPAIGN_FUND, unit.value)
        kind = JournalKind.FUNDING if unit is Unit.POINT else JournalKind.TOPUP
        posted = await ledger.post_journal(
            s, clock, region_id=region.id, kind=kind, actor="test",
            legs=[ledger.Leg(fund, -amount), ledger.Leg(account, amount)],
        )
        lot = await lots.issue(
            s, account=account, amount=amount, source=source, journal_id=posted.journal_id, now=clock.now(),
            rule=lots.LotRule(restriction=restriction, expires_at=expires_at, usable_from=usable_from),
        )
        return lot.id


async def lot_state(sessionmaker, lot_id) -> tuple[int, int]:
    async with sessionmaker() as s:
        lot = await ledger_repo.lot(s, lot_id)
        return lot.remaining, lot.expired


async def paid_from(sessionmaker, payment_id) -> list[tuple[str, str, int]]:
    async with sessionmaker() as s:
        rows = await s.execute(text(
            "SELECT pl.lot_id, pl.unit, pl.amount FROM wallet.payment_lots pl WHERE pl.payment_id = :p ORDER BY pl.seq"
        ), {"p": payment_id})
        return [(str(r.lot_id), r.unit, r.amount) for r in rows]


async def legacy_lot(sessionmaker, subject="resident-hanako"):
    async with sessionmaker() as s:
        return (await s.execute(text(
            "SELECT l.id FROM wallet.lots l JOIN wallet.accounts a ON a.id = l.account_id "
            "JOIN wallet.residents r ON r.id = a.resident_id WHERE r.subject = :s AND l.unit = 'yen' "
            "ORDER BY l.created_at, l.id LIMIT 1"
        ), {"s": subject})).scalar_one()


async def test_a_payment_spends_points_first_then_earliest_expiry_then_restricted_lots(client, tokens, town, sessionmaker, clock):
    in_30_days = tokyo_midnight(date(2026, 5, 1))
    in_60_days = tokyo_midnight(date(2026, 6, 1))
    local_points = await give(sessionmaker, clock, "resident-hanako", 300, Unit.POINT, restriction=["shotengai"], expires_at=in_60_days)
    any_points = await give(sessionmaker, clock, "resident-hanako", 200, Unit.POINT, expires_at=in_60_days)
    soon_points = await give(sessionmaker, clock, "resident-hanako", 100, Unit.POINT, expires_at=in_30_days)
    coin = str(await legacy_lot(sessionmaker))
    shop = await store_of(client, tokens, town, TEAHOUSE)

    response = await pay(client, tokens, shop["payload"], 1_000)
    assert response.status_code == 201, response.text
    payment = response.json()
    # Points before coin; of the points the one expiring first, then the restricted one (same expiry).
    assert await paid_from(sessionmaker, payment["id"]) == [
        (str(soon_points), "point", 100), (str(local_points), "point", 300), (str(any_points), "point", 200),
        (coin, "yen", 400),
    ]
    # The receipt shows the same, with each lot's rules.
    receipt = (await client.get(f"/v1/payments/{payment['id']}", headers=tokens.resident())).json()
    assert [(x["lot_id"], x["unit"], x["amount"], x["restored"], x["restriction"]) for x in receipt["lots"]] == [
        (str(soon_points), "point", 100, 0, None), (str(local_points), "point", 300, 0, ["shotengai"]),
        (str(any_points), "point", 200, 0, None), (coin, "yen", 400, 0, None),
    ]
    # 2 % fee of 1,000 = 20, taken from each unit in proportion: 600 points pay 12 of it.
    assert (payment["point_amount"], payment["fee"], payment["fee_point"]) == (600, 20, 12)
    wallet = (await client.get("/v1/wallet", headers=tokens.resident())).json()
    assert (wallet["balance"], wallet["points"]) == (HANAKO - 400, 0)
    shop_balance = (await client.get(f"/v1/merchants/{shop['merchant_id']}/balance", headers=tokens.operator())).json()
    assert (shop_balance["balance"], shop_balance["points"]) == (400 - 8, 600 - 12)
    assert await ledger_violations(sessionmaker) == []


async def test_restricted_points_never_pay_where_they_are_not_allowed(client, tokens, town, sessionmaker, clock):
    await give(sessionmaker, clock, "resident-sachiko", 3_000, Unit.POINT, restriction=["shotengai", "small_shop"])
    chain = await store_of(client, tokens, town, PHARMACY)
    before = await snapshot(sessionmaker)

    # Sachiko holds 5,000 coin + 3,000 local-only points: 8,000, of which 5,000 may pay at a chain.
    body = assert_problem(await pay(client, tokens, chain["payload"], 6_000, resident="resident-sachiko"),
                          402, "balance-not-eligible-here")
    assert (body["balance"], body["eligible"]) == (8_000, 5_000)
    assert await snapshot(sessionmaker) == before

    # Within what is eligible it pays, from coin only: the local points stay untouched.
    response = await pay(client, tokens, chain["payload"], 5_000, resident="resident-sachiko")
    assert response.status_code == 201, response.text
    assert response.json()["point_amount"] == 0
    wallet = (await client.get("/v1/wallet", headers=tokens.resident("resident-sachiko"))).json()
    assert (wallet["balance"], wallet["points"]) == (0, 3_000)
    # At a local shop the points pay.
    local = await store_of(client, tokens, town, TEAHOUSE)
    response = await pay(client, tokens, local["payload"], 3_000, resident="resident-sachiko")
    assert response.status_code == 201 and response.json()["point_amount"] == 3_000
    assert await ledger_violations(sessionmaker) == []


async def test_lots_not_yet_usable_or_past_expiry_do_not_pay(client, tokens, town, sessionmaker, clock):
    await give(sessionmaker, clock, "resident-sachiko", 1_000, Unit.POINT, usable_from=START + timedelta(hours=1))
    await give(sessionmaker, clock, "resident-sachiko", 2_000, Unit.POINT, expires_at=tokyo_midnight(date(2026, 4, 2)))
    shop = await store_of(client, tokens, town, TEAHOUSE)
    # An hour later the first lot is usable; a day later the second has expired (expiry has not run yet).
    clock.set(tokyo_midnight(date(2026, 4, 2)))
    before = await snapshot(sessionmaker)
    body = assert_problem(await pay(client, tokens, shop["payload"], 6_001, resident="resident-sachiko"),
                          402, "balance-not-eligible-here")
    assert (body["balance"], body["eligible"]) == (8_000, 6_000)
    assert await snapshot(sessionmaker) == before
    response = await pay(client, tokens, shop["payload"], 6_000, resident="resident-sachiko")
    assert response.status_code == 201 and response.json()["point_amount"] == 1_000


async def test_a_refund_restores_the_lots_last_taken_first_and_an_expired_share_goes_to_expiry(
    client, tokens, town, sessionmaker, clock
):
    expiring = tokyo_midnight(date(2026, 4, 3))
    points = await give(sessionmaker, clock, "resident-hanako", 500, Unit.POINT, expires_at=expiring)
    coin = await legacy_lot(sessionmaker)
    shop = await store_of(client, tokens, town, TEAHOUSE)
    payment = (await pay(client, tokens, shop["payload"], 2_000)).json()
    assert payment["point_amount"] == 500
    staff = tokens.merchant_staff(shop["merchant_id"])
    assert (await client.patch("/v1/region", json={"refund_window_days": 7}, headers=idem(tokens.operator()))).status_code == 200

    clock.set(START + timedelta(minutes=1))  # tokens minted from here on are valid
    staff = tokens.merchant_staff(shop["merchant_id"])
    # 1,000 back: the coin was taken last, so it is restored first.
    first = await client.post(f"/v1/payments/{payment['id']}/refunds", json={"amount": 1_000}, headers=idem(staff))
    assert first.status_code == 201, first.text
    assert await lot_state(sessionmaker, coin) == (HANAKO - 1_500 + 1_000, 0)
    assert await lot_state(sessionmaker, points) == (0, 0)

    # The points lot expires; the rest of the refund reaches it: its 500 go to the expiry account.
    clock.set(expiring + timedelta(hours=1))
    staff = tokens.merchant_staff(shop["merchant_id"])
    system_before = {(a["kind"], a["unit"]): a["balance"]
                     for a in (await client.get("/v1/accounts", headers=tokens.operator())).json()}
    rest = await client.post(f"/v1/payments/{payment['id']}/refunds", json={"amount": 1_000}, headers=idem(staff))
    assert rest.status_code == 201, rest.text
    assert await lot_state(sessionmaker, coin) == (HANAKO, 0)
    assert await lot_state(sessionmaker, points) == (0, 500)
    system = {(a["kind"], a["unit"]): a["balance"] for a in (await client.get("/v1/accounts", headers=tokens.operator())).json()}
    assert system[("expired", "point")] == system_before[("expired", "point")] + 500
    wallet = (await client.get("/v1/wallet", headers=tokens.resident())).json()
    assert (wallet["balance"], wallet["points"]) == (HANAKO, 0)
    merchant = (await client.get(f"/v1/merchants/{shop['merchant_id']}/balance", headers=tokens.operator())).json()
    assert (merchant["balance"], merchant["points"]) == (0, 0)  # every fee share came back with the refunds
    assert await ledger_violations(sessionmaker) == []


async def test_region_coin_expiry_dates_top_ups_to_the_end_of_the_nth_month(client, tokens, town, sessionmaker, clock):
    assert (await client.patch("/v1/region", json={"coin_expiry_months": 6}, headers=idem(tokens.operator()))).status_code == 200
    clock.set(datetime(2026, 11, 23, 3, 0, tzinfo=UTC))
    operator = tokens.operator()
    wallet = town.residents["resident-taro"][0]
    assert (await client.post(f"/v1/wallets/{wallet}/topups", json={"amount": 5_000}, headers=idem(operator))).status_code == 201
    balance = (await client.get("/v1/wallet/balance", headers=tokens.resident("resident-taro"))).json()
    topup = [lot for lot in balance["lots"] if lot["source"] == "topup" and lot["amount"] == 5_000]
    # Charged in November 2026, 6 months after the charge month: usable through 31 May 2027.
    assert [lot["expires_at"] for lot in topup] == ["2027-05-31T15:00:00Z"]


async def test_expiry_forfeits_remainders_once_and_a_second_run_is_refused(client, tokens, town, sessionmaker, clock):
    due = tokyo_midnight(date(2026, 4, 10))
    points = await give(sessionmaker, clock, "resident-hanako", 700, Unit.POINT, expires_at=due)
    coin = await give(sessionmaker, clock, "resident-taro", 2_000, Unit.YEN, expires_at=due, source=LotSource.TOPUP)
    later = await give(sessionmaker, clock, "resident-taro", 900, Unit.POINT, expires_at=due + timedelta(days=1))
    clock.set(due + timedelta(hours=2))
    operator = tokens.operator()
    # A suspended wallet's lots expire all the same: the rules were given with the lot.
    taro_wallet = town.residents["resident-taro"][0]
    suspended = await client.patch(f"/v1/wallets/{taro_wallet}", json={"status": "suspended"}, headers=idem(operator))
    assert suspended.status_code == 200, suspended.text

    # The day before the due date expires nothing.
    early = await client.post("/v1/expiry-runs", json={"as_of": "2026-04-09"}, headers=idem(operator))
    assert early.status_code == 201 and early.json()["lots_expired"] == 0

    response = await client.post("/v1/expiry-runs", json={"as_of": "2026-04-10"}, headers=idem(operator))
    assert response.status_code == 201, response.text
    run = response.json()
    assert (run["status"], run["lots_expired"], run["yen_expired"], run["points_expired"]) == ("done", 2, 2_000, 700)
    assert await lot_state(sessionmaker, points) == (0, 700)
    assert await lot_state(sessionmaker, coin) == (0, 2_000)
    assert await lot_state(sessionmaker, later) == (900, 0)
    hanako = (await client.get("/v1/wallet", headers=tokens.resident())).json()
    taro = (await client.get(f"/v1/wallets/{taro_wallet}", headers=operator)).json()
    assert (hanako["balance"], hanako["points"], taro["balance"], taro["points"]) == (HANAKO, 0, 12_000, 900)
    assert taro["status"] == "suspended"
    history = (await client.get("/v1/wallet/history", headers=tokens.resident())).json()["items"]
    assert (history[0]["kind"], history[0]["unit"], history[0]["amount"]) == ("expiry", "point", -700)
    system = {(a["kind"], a["unit"]): a["balance"] for a in (await client.get("/v1/accounts", headers=operator)).json()}
    assert (system[("expired", "yen")], system[("expired", "point")]) == (2_000, 700)

    before = await snapshot(sessionmaker)
    assert_problem(await client.post("/v1/expiry-runs", json={"as_of": "2026-04-10"}, headers=idem(operator)),
                   409, "expiry-already-run")
    assert_problem(await client.post("/v1/expiry-runs", json={"as_of": "2026-04-11"}, headers=idem(operator)),
                   422, "expiry-date-in-future")
    assert_problem(await client.post("/v1/expiry-runs", json={"as_of": "0001-01-01"}, headers=idem(operator)),
                   422, "expiry-date-before-region")
    assert await snapshot(sessionmaker) == before
    runs = (await client.get("/v1/expiry-runs", headers=tokens.auditor())).json()["items"]
    assert [r["as_of"] for r in runs] == ["2026-04-10", "2026-04-09"]
    assert await ledger_violations(sessionmaker) == []


async def test_residents_are_told_30_and_7_days_before_and_the_balance_shows_what_expires(
    client, tokens, town, sessionmaker, clock
):
    due = tokyo_midnight(date(2026, 6, 1))  # usable through 31 May
    lot = await give(sessionmaker, clock, "resident-hanako", 1_200, Unit.POINT, expires_at=due, restriction=["shotengai"])
    await give(sessionmaker, clock, "resident-hanako", 300, Unit.POINT, expires_at=tokyo_midnight(date(2026, 12, 1)))

    async def run_on(day: date) -> dict:
        clock.set(tokyo_midnight(day) + timedelta(minutes=5))
        response = await client.post("/v1/expiry-runs", json={"as_of": day.isoformat()}, headers=idem(tokens.operator()))
        assert response.status_code == 201, response.text
        return response.json()

    async def notices() -> list[dict]:
        return (await client.get("/v1/wallet/notices", headers=tokens.resident())).json()["items"]

    assert (await run_on(date(2026, 5, 1)))["notices"] == 0  # 31 days ahead: not yet
    assert await notices() == []
    balance = (await client.get("/v1/wallet/balance", headers=tokens.resident())).json()
    assert balance["expiring_within_30_days"] == {"yen": 0, "point": 0}

    assert (await run_on(date(2026, 5, 2)))["notices"] == 1
    assert (await run_on(date(2026, 5, 3)))["notices"] == 0  # told once
    found = await notices()
    assert [(n["kind"], n["lot_id"], n["payload"]["remaining"], n["payload"]["last_day"]) for n in found] == [
        ("expiry_30d", str(lot), 1_200, "2026-05-31")
    ]
    balance = (await client.get("/v1/wallet/balance", headers=tokens.resident())).json()
    assert balance["expiring_within_30_days"] == {"yen": 0, "point": 1_200}
    assert [(x["id"], x["restriction"], x["expires_at"]) for x in balance["expiring_lots"]] == [
        (str(lot), ["shotengai"], "2026-05-31T15:00:00Z")
    ]
    assert (balance["balance"], balance["points"], balance["usable"]) == (HANAKO, 1_500, {"yen": HANAKO, "point": 1_500})
    # The operator sees the same for the wallet; another resident does not.
    wallet_id = town.residents["resident-hanako"][0]
    assert (await client.get(f"/v1/wallets/{wallet_id}/balance", headers=tokens.operator())).json() == balance
    assert_problem(await client.get(f"/v1/wallets/{wallet_id}/balance", headers=tokens.resident("resident-taro")),
                   404, "wallet-not-found")

    assert (await run_on(date(2026, 5, 25)))["notices"] == 1
    assert [n["kind"] for n in await notices()] == ["expiry_7d", "expiry_30d"]
    assert (await run_on(date(2026, 6, 1)))["points_expired"] == 1_200
    assert await ledger_violations(sessionmaker) == []


async def test_an_interrupted_expiry_job_resumes_where_it_stopped(client, tokens, town, sessionmaker, clock, monkeypatch):
    due = tokyo_midnight(date(2026, 4, 5))
    given = [await give(sessionmaker, clock, subject, 100 * (i + 1), Unit.POINT, expires_at=due)
             for i, subject in enumerate(["resident-hanako", "resident-taro", "resident-sachiko"])]
    clock.set(due)
    monkeypatch.setattr(expiry, "BATCH", 1)
    async with sessionmaker() as s:
        region = await directory_repo.region_by_code(s, "aizu")
    # The job's first batch commits; then the process dies.
    async with sessionmaker() as s, s.begin():
        run = await expiry.begin(s, clock, region, date(2026, 4, 5), "cli")
    async with sessionmaker() as s, s.begin():
        run = await expiry_repo.lock_expiry_run(s, region.id, date(2026, 4, 5))
        assert (await expiry.expire_batch(s, clock, run, "cli")).lots == 1
    states = [await lot_state(sessionmaker, lot) for lot in given]
    assert sum(1 for remaining, _ in states if remaining == 0) == 1

    done = await expiry.run_job(sessionmaker, clock, region, date(2026, 4, 5), "cli")
    assert (done.status, done.lots_expired, done.points_expired) == ("done", 3, 600)
    assert [await lot_state(sessionmaker, lot) for lot in given] == [(0, 100), (0, 200), (0, 300)]
    assert await ledger_violations(sessionmaker) == []


async def test_the_scheduler_runs_each_region_once_a_day(client, tokens, town, sessionmaker, clock):
    await give(sessionmaker, clock, "resident-hanako", 400, Unit.POINT, expires_at=tokyo_midnight(date(2026, 4, 2)))
    clock.set(tokyo_midnight(date(2026, 4, 2)) + timedelta(minutes=1))
    await jobs.tick(sessionmaker, clock)
    runs = (await client.get("/v1/expiry-runs", headers=tokens.auditor())).json()["items"]
    assert [(r["as_of"], r["points_expired"], r["started_by"]) for r in runs] == [("2026-04-02", 400, "scheduler")]
    assert await expiry.run_due(sessionmaker, clock) == []  # the next tick of the day does nothing
    await jobs.tick(sessionmaker, clock)
    assert await ledger_violations(sessionmaker) == []


# --- property: random lot mixes -------------------------------------------------------------------

RESIDENTS = ("resident-hanako", "resident-taro", "resident-sachiko")
operations = st.lists(
    st.one_of(
        st.tuples(st.just("give"), st.sampled_from(RESIDENTS), st.sampled_from(list(Unit)), st.integers(1, 5_000),
                  st.sampled_from([None, ["shotengai"], ["chain", "large_store"]]),
                  st.one_of(st.none(), st.integers(1, 40)), st.sampled_from([0, 0, 30])),
        st.tuples(st.just("pay"), st.sampled_from(RESIDENTS), st.sampled_from([TEAHOUSE, PHARMACY]), st.integers(1, 20_000)),
        st.tuples(st.just("refund"), st.integers(0, 10), st.integers(1, 20_000)),
        st.tuples(st.just("advance"), st.integers(1, 24 * 20)),
        st.tuples(st.just("expire")),
    ),
    min_size=1,
    max_size=20,
)

# A lot may have paid a payment only if it was usable then, at that merchant's class.
SPENT_INELIGIBLE = """
SELECT count(*) FROM wallet.payment_lots pl
  JOIN wallet.payments p ON p.id = pl.payment_id
  JOIN wallet.merchants m ON m.id = p.merchant_id
  JOIN wallet.lots l ON l.id = pl.lot_id
 WHERE (l.usable_from IS NOT NULL AND l.usable_from > p.created_at)
    OR (l.expires_at IS NOT NULL AND l.expires_at <= p.created_at)
    OR (l.restriction IS NOT NULL AND NOT m.merchant_class = ANY (l.restriction))
"""
ELIGIBLE = """
SELECT coalesce(sum(l.remaining), 0) FROM wallet.lots l
  JOIN wallet.accounts a ON a.id = l.account_id JOIN wallet.residents r ON r.id = a.resident_id
 WHERE r.subject = :subject AND l.remaining > 0
   AND (l.usable_from IS NULL OR l.usable_from <= :now) AND (l.expires_at IS NULL OR l.expires_at > :now)
   AND (l.restriction IS NULL OR :class = ANY (l.restriction))
"""


async def _fresh_town(sessionmaker, clock, settings):
    from app.demo import seed

    clock.set(START)
    async with sessionmaker() as s, s.begin():
        tables = (await s.execute(text(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
            "WHERE schemaname IN ('wallet', 'platform') AND tablename <> 'alembic_version'"
        ))).scalars().all()
        await s.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
    directory.region_identities.clear()
    async with sessionmaker() as s, s.begin():
        return await seed(s, clock, settings)


@hypothesis_settings(max_examples=25, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=operations)
async def test_random_lot_mixes_keep_the_invariants_and_never_spend_an_ineligible_or_expired_lot(
    client, tokens, sessionmaker, clock, settings, ops
):
    town = await _fresh_town(sessionmaker, clock, settings)
    await client.patch("/v1/region", json={"refund_window_days": 365}, headers=idem(tokens.operator()))
    shops = {name: await store_of(client, tokens, town, name) for name in (TEAHOUSE, PHARMACY)}
    classes = {TEAHOUSE: "shotengai", PHARMACY: "chain"}
    payments: list[dict] = []

    for op, *args in ops:
        now = clock.now()
        if op == "give":
            subject, unit, amount, restriction, expiry_days, later_hours = args
            expires_at = tokyo_midnight(now.astimezone(TOKYO).date() + timedelta(days=expiry_days)) if expiry_days else None
            await give(sessionmaker, clock, subject, amount, unit, restriction=restriction, expires_at=expires_at,
                       usable_from=now + timedelta(hours=later_hours) if later_hours else None)
        elif op == "pay":
            subject, shop, amount = args
            async with sessionmaker() as s:
                eligible = (await s.execute(text(ELIGIBLE), {"subject": subject, "now": now, "class": classes[shop]})).scalar_one()
            response = await pay(client, tokens, shops[shop]["payload"], amount, resident=subject)
            assert response.status_code == (201 if amount <= eligible else 402), response.text
            if response.status_code == 201:
                payments.append(response.json() | {"left": amount})
        elif op == "refund":
            index, amount = args
            if not payments:
                continue
            payment = payments[index % len(payments)]
            response = await client.post(
                f"/v1/payments/{payment['id']}/refunds", json={"amount": amount},
                headers=idem(tokens.merchant_staff(payment["merchant_id"])),
            )
            assert response.status_code < 500, response.text
            assert (response.status_code == 201) == (amount <= payment["left"]), (response.text, payment["left"])
            if response.status_code == 201:
                payment["left"] -= amount
        elif op == "advance":
            clock.advance(timedelta(hours=args[0]))
        else:
            today = now.astimezone(TOKYO).date()
            response = await client.post("/v1/expiry-runs", json={"as_of": today.isoformat()}, headers=idem(tokens.operator()))
            assert response.status_code in (201, 409), response.text
            async with sessionmaker() as s:
                left = (await s.execute(text(
                    "SELECT count(*) FROM wallet.lots WHERE remaining > 0 AND expires_at <= :cutoff"
                ), {"cutoff": expiry.cutoff(today)})).scalar_one()
            assert left == 0

    assert await ledger_violations(sessionmaker) == []
    async with sessionmaker() as s:
        assert (await s.execute(text(SPENT_INELIGIBLE))).scalar_one() == 0
        # Nothing invented or lost, per unit: whatever sits anywhere came from an issuing account.
        totals = (await s.execute(text("SELECT unit, sum(amount) FROM wallet.entries GROUP BY unit"))).all()
        assert all(total == 0 for _, total in totals)
