"""Settlement runs (issue 14, items 2 and 3): every figure is summed here from what the wallet
answered when the test paid and refunded, never read back from the run; the transfer file is
read back with the tests' own parser (zengin_reader). Every refusal: status, problem body, and
nothing changed."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import text

from services.settlement.runs import repository as runs_repo
from services.settlement.runs import service as runs
from services.wallet import public
from shared.audit import Actor
from shared.errors import Problem
from tests.helpers import assert_problem, idem, ledger_violations, snapshot
from tests.settlement import zengin_reader
from tests.settlement.trades import jst, pay, refund, refunds_allowed_for

REGION = "aizu"
TEAHOUSE, STORE, FARM = "Tsurugajo Teahouse", "Nanokamachi General Store", "Minato Farm"
CITY = Actor(subject="operator-aizu", role="operator", request_id="runs-test")
ACCOUNT = {"bank_code": "0126", "branch_code": "401", "account_type": "ordinary", "account_number": "1234501",
           "holder_name": "ツルガジョウチャヤ"}
SOURCE = {"requester_code": "1234567890", "requester_name": "アイヅ チイキツウカ",
          "bank_code": "0126", "branch_code": "416", "account_type": "current", "account_number": "0001234"}


AFTER_APRIL = jst(2026, 5, 1, 0, 11)  # April's end and its grace period passed
AFTER_MAY = jst(2026, 6, 1, 0, 11)


async def accounts(client, tokens, town, *names: str) -> None:
    response = await client.put("/v1/settlement/source-account", json=SOURCE, headers=idem(tokens.operator()))
    assert response.status_code == 200, response.text
    for n, name in enumerate(names):
        response = await client.put(f"/v1/settlement/merchants/{town.merchants[name]}/payout-account",
                                    json={**ACCOUNT, "account_number": f"12345{n:02d}"}, headers=idem(tokens.operator()))
        assert response.status_code == 200, response.text


async def settle(client, tokens, period: str, status: int = 201) -> dict:
    response = await client.post("/v1/settlement/runs", json={"period": period}, headers=idem(tokens.operator()))
    assert response.status_code == status, response.text
    return response.json()


async def download(client, tokens, period: str, name: str) -> bytes:
    response = await client.get(f"/v1/settlement/runs/{period}/files/{name}", headers=tokens.auditor())
    assert response.status_code == 200, response.text
    return response.content


def table(content: bytes) -> list[dict[str, str]]:
    assert content.startswith("\ufeff".encode())
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


def summary_of(content: bytes) -> dict[str, dict[str, str]]:
    return {row["加盟店ID"]: row for row in table(content) if row["加盟店ID"]}


async def statement(client, headers, period: str, merchant_id: str, fmt: str = "csv") -> bytes:
    response = await client.get(f"/v1/settlement/runs/{period}/statements/{merchant_id}", params={"format": fmt},
                                headers=headers)
    assert response.status_code == 200, response.text
    return response.content


def statement_lines(content: bytes) -> list[dict[str, str]]:
    text_ = content.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text_[text_.index("日時,種別"):])))


async def balance(sessionmaker, merchant_id: str) -> int:
    async with sessionmaker() as s:
        return (await s.execute(text(
            "SELECT coalesce(sum(e.amount), 0) FROM wallet.entries e JOIN wallet.accounts a ON a.id = e.account_id"
            " WHERE a.merchant_id = :m AND a.unit = 'yen'"), {"m": merchant_id}
        )).scalar_one()


async def all_files(sessionmaker, period: str) -> dict[str, bytes]:
    async with sessionmaker() as s:
        found = await runs.get_run(s, region=REGION, label=period)
        return {name: body async for name, body in runs.files(s, found)}


# --- a run's figures -----------------------------------------------------------------------------------


async def test_a_run_pays_each_merchant_its_months_net_and_the_file_sums_the_statements(
    client, tokens, town, clock, sessionmaker,
):
    await accounts(client, tokens, town, TEAHOUSE, STORE)
    tea = [await pay(sessionmaker, clock, town, jst(2026, 4, 3, 10), 1200),
           await pay(sessionmaker, clock, town, jst(2026, 4, 20, 15), 800, payer="resident-taro"),
           await pay(sessionmaker, clock, town, jst(2026, 4, 30, 23, 59, 59), 500)]
    store = [await pay(sessionmaker, clock, town, jst(2026, 4, 10, 12), 3000, merchant=STORE)]
    await refunds_allowed_for(sessionmaker, 90)
    back = await refund(sessionmaker, clock, jst(2026, 4, 25, 9), tea[0], 200)
    may_first = await pay(sessionmaker, clock, town, jst(2026, 5, 1, 0, 0, 0), 700)  # the first second of May

    clock.set(AFTER_APRIL)
    run = await settle(client, tokens, "2026-04")
    expected = {
        town.merchants[TEAHOUSE]: (sum(p.amount for p in tea), -back.amount, sum(p.fee for p in tea) - back.fee_returned),
        town.merchants[STORE]: (sum(p.amount for p in store), 0, sum(p.fee for p in store)),
    }
    rows = summary_of(await download(client, tokens, "2026-04", "summary.csv"))
    assert set(rows) == set(expected)
    for merchant_id, (gross, refunds, fees) in expected.items():
        row = rows[merchant_id]
        net = gross + refunds - fees
        assert (int(row["決済"]), int(row["返金"]), int(row["手数料"])) == (gross, refunds, -fees)
        assert (int(row["差引支払額"]), int(row["振込額"]), int(row["次期繰越"]), row["状態"]) == (net, net, 0, "振込")
    assert (run["paid"], run["payout_total"], run["held_back"]) == (2, sum(g + r - f for g, r, f in expected.values()), 0)

    transfers = zengin_reader.read(await download(client, tokens, "2026-04", "zengin.txt"))
    assert transfers.header["transfer_date"] == "0515"  # 15 May 2026, a Friday
    paid_in_statements = 0
    for merchant_id in expected:
        lines = statement_lines(await statement(client, tokens.auditor(), "2026-04", merchant_id))
        paid_in_statements += -sum(int(line["差引"]) for line in lines if line["種別"] == "振込")
    assert sum(int(d["amount"]) for d in transfers.data) == int(transfers.trailer["total"]) == paid_in_statements
    assert int(transfers.trailer["count"]) == 2

    # Every payment and refund is a line with its ids; 23:59:59 is April's, 00:00:00 is not.
    lines = statement_lines(await statement(client, tokens.auditor(), "2026-04", town.merchants[TEAHOUSE]))
    assert {line["決済ID"] for line in lines if line["種別"] == "決済"} == {str(p.id) for p in tea}
    assert [line["返金ID"] for line in lines if line["種別"] == "返金"] == [str(back.id)]
    assert {line["仕訳ID"] for line in lines} >= {str(p.journal_id) for p in tea}
    # The payout took what April earned; the May payment's net stays with the shop.
    assert await balance(sessionmaker, town.merchants[TEAHOUSE]) == may_first.amount - may_first.fee

    clock.set(AFTER_MAY)
    await settle(client, tokens, "2026-05")
    may = summary_of(await download(client, tokens, "2026-05", "summary.csv"))
    assert set(may) == {town.merchants[TEAHOUSE]}
    assert (int(may[town.merchants[TEAHOUSE]]["決済"]), int(may[town.merchants[TEAHOUSE]]["前期繰越"])) == (700, 0)

    pdf = PdfReader(io.BytesIO(await statement(client, tokens.operator(), "2026-04", town.merchants[TEAHOUSE], "pdf")))
    assert "精算明細書" in pdf.pages[0].extract_text()
    fonts = {f["/BaseFont"] for page in pdf.pages for f in page["/Resources"]["/Font"].values()}
    assert any("IPAexGothic" in str(f) for f in fonts)


async def test_a_refund_after_the_close_is_an_adjustment_in_the_next_period(client, tokens, town, clock, sessionmaker):
    await accounts(client, tokens, town, TEAHOUSE)
    paid = await pay(sessionmaker, clock, town, jst(2026, 4, 10, 10), 2000)
    clock.set(AFTER_APRIL)
    await settle(client, tokens, "2026-04")
    later = await pay(sessionmaker, clock, town, jst(2026, 5, 2, 10), 3000)  # the shop holds enough to give back
    await refunds_allowed_for(sessionmaker, 90)
    back = await refund(sessionmaker, clock, jst(2026, 5, 3, 10), paid, 500)
    clock.set(AFTER_MAY)
    await settle(client, tokens, "2026-05")
    row = summary_of(await download(client, tokens, "2026-05", "summary.csv"))[town.merchants[TEAHOUSE]]
    net = later.amount - later.fee - (back.amount - back.fee_returned)
    assert (int(row["返金"]), int(row["うち調整"]), int(row["振込額"])) == (-500, -(500 - back.fee_returned), net)
    lines = statement_lines(await statement(client, tokens.auditor(), "2026-05", town.merchants[TEAHOUSE]))
    (refunded,) = [line for line in lines if line["種別"] == "返金"]
    assert (refunded["返金ID"], refunded["調整"]) == (str(back.id), "調整")
    april = summary_of(await download(client, tokens, "2026-04", "summary.csv"))[town.merchants[TEAHOUSE]]
    assert int(april["返金"]) == 0  # the closed period did not change


async def test_below_the_minimum_the_balance_carries_over_until_it_is_reached(client, tokens, town, clock, sessionmaker):
    await accounts(client, tokens, town, TEAHOUSE)
    response = await client.put("/v1/settlement/payout-settings", json={"on_demand_fee": 0, "minimum_payout": 2000},
                                headers=idem(tokens.operator()))
    assert response.status_code == 200
    april = await pay(sessionmaker, clock, town, jst(2026, 4, 10, 10), 1000)
    clock.set(AFTER_APRIL)
    run = await settle(client, tokens, "2026-04")
    row = summary_of(await download(client, tokens, "2026-04", "summary.csv"))[town.merchants[TEAHOUSE]]
    assert (row["状態"], int(row["振込額"]), int(row["次期繰越"])) == ("繰越", 0, april.amount - april.fee)
    assert run["paid"] == 0
    missing = await client.get("/v1/settlement/runs/2026-04/files/zengin.txt", headers=tokens.auditor())
    assert_problem(missing, 404, "run-file-not-found")
    assert await balance(sessionmaker, town.merchants[TEAHOUSE]) == april.amount - april.fee

    may = await pay(sessionmaker, clock, town, jst(2026, 5, 10, 10), 1500)
    clock.set(AFTER_MAY)
    await settle(client, tokens, "2026-05")
    row = summary_of(await download(client, tokens, "2026-05", "summary.csv"))[town.merchants[TEAHOUSE]]
    total = april.amount - april.fee + may.amount - may.fee
    assert (int(row["前期繰越"]), int(row["振込額"]), int(row["次期繰越"]), row["状態"]) == (
        april.amount - april.fee, total, 0, "振込")
    assert await balance(sessionmaker, town.merchants[TEAHOUSE]) == 0


async def test_a_merchant_without_a_payable_account_is_held_back_and_listed_never_in_the_file(
    client, tokens, town, clock, sessionmaker,
):
    await accounts(client, tokens, town, TEAHOUSE, STORE)
    async with sessionmaker() as s, s.begin():  # the branch disappeared from the bank data after it was stored
        await s.execute(text("UPDATE settlement.payout_accounts SET branch_code = '999' WHERE merchant_id = :m"),
                        {"m": town.merchants[STORE]})
    await pay(sessionmaker, clock, town, jst(2026, 4, 10, 10), 1000)
    store = await pay(sessionmaker, clock, town, jst(2026, 4, 11, 10), 1000, merchant=STORE)
    farm = await pay(sessionmaker, clock, town, jst(2026, 4, 12, 10), 1000, merchant=FARM)  # no account at all
    clock.set(AFTER_APRIL)
    run = await settle(client, tokens, "2026-04")
    assert (run["paid"], run["held_back"]) == (1, 2)
    held = {row["加盟店ID"]: row for row in table(await download(client, tokens, "2026-04", "held-back.csv"))}
    assert {m: (r["理由コード"], int(r["保留額(次期繰越)"])) for m, r in held.items()} == {
        town.merchants[STORE]: ("branch-code-unknown", store.amount - store.fee),
        town.merchants[FARM]: ("payout-account-not-found", farm.amount - farm.fee),
    }
    transfers = zengin_reader.read(await download(client, tokens, "2026-04", "zengin.txt"))
    assert [d["account_number"] for d in transfers.data] == ["1234500"]
    assert await balance(sessionmaker, town.merchants[STORE]) == store.amount - store.fee
    assert await balance(sessionmaker, town.merchants[FARM]) == farm.amount - farm.fee


# --- once, byte for byte ---------------------------------------------------------------------------------


async def test_running_a_closed_period_again_changes_nothing_and_gives_the_same_bytes(
    client, tokens, town, clock, sessionmaker,
):
    await accounts(client, tokens, town, TEAHOUSE, STORE)
    await pay(sessionmaker, clock, town, jst(2026, 4, 10, 10), 1000)
    await pay(sessionmaker, clock, town, jst(2026, 4, 11, 10), 2500, merchant=STORE)
    clock.set(AFTER_APRIL)
    first = await settle(client, tokens, "2026-04")
    files = await all_files(sessionmaker, "2026-04")
    assert {"summary.csv", "held-back.csv", "zengin.txt"} <= set(files)
    assert sum(name.startswith("statement-") for name in files) == 4
    before = await snapshot(sessionmaker)
    clock.advance(timedelta(days=3))
    again = await settle(client, tokens, "2026-04", status=200)
    assert again == first
    after = await snapshot(sessionmaker)
    assert after["rows"] == before["rows"] and after["accounts"] == before["accounts"]
    assert await all_files(sessionmaker, "2026-04") == files


async def test_two_runs_at_once_one_runs_the_other_is_told(client, tokens, town, clock, sessionmaker):
    await accounts(client, tokens, town, TEAHOUSE)
    await pay(sessionmaker, clock, town, jst(2026, 4, 10, 10), 1000)
    clock.set(AFTER_APRIL)
    async with sessionmaker() as holder, holder.begin():  # a run of the region holds its lock
        region_id = await public.region_id(holder, region=REGION)
        assert await runs_repo.try_lock_region(holder, region_id)
        before = await snapshot(sessionmaker)
        response = await client.post("/v1/settlement/runs", json={"period": "2026-04"}, headers=idem(tokens.operator()))
        assert_problem(response, 409, "settlement-run-in-progress")
        after = await snapshot(sessionmaker)
        assert after["rows"] == before["rows"] and after["accounts"] == before["accounts"]

    answers = await asyncio.gather(*(client.post("/v1/settlement/runs", json={"period": "2026-04"},
                                                 headers=idem(tokens.operator())) for _ in range(2)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses in ([200, 201], [201, 409]), [a.text for a in answers]
    async with sessionmaker() as s:
        payouts = (await s.execute(text("SELECT count(*) FROM wallet.journals WHERE kind = 'payout'"))).scalar_one()
    assert payouts == 1


async def test_a_period_that_has_not_ended_is_refused_and_nothing_changes(client, tokens, town, clock, sessionmaker):
    await accounts(client, tokens, town, TEAHOUSE)
    await pay(sessionmaker, clock, town, jst(2026, 4, 10, 10), 1000)
    before = await snapshot(sessionmaker)
    for at in (jst(2026, 4, 30, 23, 59, 59), jst(2026, 5, 1, 0, 5)):  # before the end; inside the grace period
        clock.set(at)
        response = await client.post("/v1/settlement/runs", json={"period": "2026-04"}, headers=idem(tokens.operator()))
        assert_problem(response, 409, "period-not-ended")
    for bad in ("2026-13", "2026-04-H3"):
        response = await client.post("/v1/settlement/runs", json={"period": bad}, headers=idem(tokens.operator()))
        assert response.status_code == 422
    after = await snapshot(sessionmaker)
    assert after["rows"] == before["rows"] and after["accounts"] == before["accounts"]
    assert_problem(await client.get("/v1/settlement/runs/2026-04", headers=tokens.auditor()), 404,
                   "settlement-run-not-found")


async def test_twice_monthly_merchants_are_settled_by_half_periods_and_roles_are_kept(
    client, tokens, town, clock, sessionmaker,
):
    await accounts(client, tokens, town, TEAHOUSE)
    response = await client.put(f"/v1/settlement/merchants/{town.merchants[TEAHOUSE]}/cycle",
                                json={"cycle": "twice_monthly"}, headers=idem(tokens.operator()))
    assert response.status_code == 200
    first = await pay(sessionmaker, clock, town, jst(2026, 4, 15, 23, 59, 59), 1000)
    second = await pay(sessionmaker, clock, town, jst(2026, 4, 16, 0, 0, 0), 2000)
    clock.set(jst(2026, 4, 16, 0, 11))
    assert_problem(await client.post("/v1/settlement/runs", json={"period": "2026-04-H1"},
                                     headers=idem(tokens.auditor())), 403, "forbidden")
    h1 = await settle(client, tokens, "2026-04-H1")
    assert (h1["payout_total"], h1["pay_date"]) == (first.amount - first.fee, "2026-04-30")
    clock.set(AFTER_APRIL)
    h2 = await settle(client, tokens, "2026-04-H2")
    assert h2["payout_total"] == second.amount - second.fee
    listed = await client.get("/v1/settlement/runs", headers=tokens.auditor())
    assert [r["period"] for r in listed.json()["items"]] == ["2026-04-H2", "2026-04-H1"]
    admin = tokens.merchant_admin(town.merchants[TEAHOUSE])
    assert statement_lines(await statement(client, admin, "2026-04-H2", town.merchants[TEAHOUSE]))
    other = await client.get(f"/v1/settlement/runs/2026-04-H2/statements/{town.merchants[STORE]}",
                             headers=tokens.merchant_admin(town.merchants[STORE]))
    assert_problem(other, 404, "statement-not-found")


async def test_a_keyed_payout_is_posted_once_and_its_key_is_not_reused(town, clock, sessionmaker):
    paid = await pay(sessionmaker, clock, town, jst(2026, 4, 10, 10), 1000)
    shop = uuid.UUID(town.merchants[TEAHOUSE])
    made = []
    for _ in range(2):
        async with sessionmaker() as s, s.begin():
            made.append(await public.post_payout(s, clock, region=REGION, actor=CITY, merchant_id=shop, amount=500,
                                                 key="settlement:test"))
    assert made[0] == made[1]
    before = await snapshot(sessionmaker)
    with pytest.raises(Problem) as refused:
        async with sessionmaker() as s, s.begin():
            await public.post_payout(s, clock, region=REGION, actor=CITY, merchant_id=shop, amount=400,
                                     key="settlement:test")
    assert (refused.value.status, refused.value.slug) == (409, "payout-key-reused")
    after = await snapshot(sessionmaker)
    assert after["rows"] == before["rows"] and after["accounts"] == before["accounts"]
    assert await balance(sessionmaker, str(shop)) == paid.amount - paid.fee - 500


async def test_an_on_demand_payout_is_charged_the_regions_payout_fee(client, tokens, town, clock, sessionmaker):
    await accounts(client, tokens, town, TEAHOUSE, STORE)
    for name in (TEAHOUSE, STORE):
        response = await client.put(f"/v1/settlement/merchants/{town.merchants[name]}/cycle",
                                    json={"cycle": "on_demand"}, headers=idem(tokens.operator()))
        assert response.status_code == 200
    response = await client.put("/v1/settlement/payout-settings", json={"on_demand_fee": 200, "minimum_payout": 0},
                                headers=idem(tokens.operator()))
    assert response.status_code == 200
    tea = await pay(sessionmaker, clock, town, jst(2026, 4, 10, 10), 3000)
    small = await pay(sessionmaker, clock, town, jst(2026, 4, 10, 11), 150, merchant=STORE)  # its net is below the fee
    async with sessionmaker() as s:
        fee_income_before = (await s.execute(text(
            "SELECT coalesce(sum(e.amount), 0) FROM wallet.entries e JOIN wallet.accounts a ON a.id = e.account_id"
            " WHERE a.kind = 'fee_income' AND a.unit = 'yen'"))).scalar_one()
    clock.set(jst(2026, 4, 11, 0, 11))
    run = await settle(client, tokens, "2026-04-10")
    net = tea.amount - tea.fee
    assert (run["cycle"], run["paid"], run["payout_total"], run["pay_date"]) == ("on_demand", 1, net - 200, "2026-04-13")
    rows = summary_of(await download(client, tokens, "2026-04-10", "summary.csv"))
    tea_row, store_row = rows[town.merchants[TEAHOUSE]], rows[town.merchants[STORE]]
    assert (int(tea_row["振込手数料"]), int(tea_row["振込額"]), int(tea_row["次期繰越"])) == (-200, net - 200, 0)
    assert (store_row["状態"], int(store_row["振込手数料"]), int(store_row["次期繰越"])) == (
        "繰越", 0, small.amount - small.fee)
    lines = statement_lines(await statement(client, tokens.auditor(), "2026-04-10", town.merchants[TEAHOUSE]))
    assert [(line["種別"], int(line["差引"])) for line in lines if line["種別"].startswith("振込")] == [
        ("振込", -(net - 200)), ("振込手数料", -200)]
    transfers = zengin_reader.read(await download(client, tokens, "2026-04-10", "zengin.txt"))
    assert [int(d["amount"]) for d in transfers.data] == [net - 200]
    async with sessionmaker() as s:
        fee_income = (await s.execute(text(
            "SELECT coalesce(sum(e.amount), 0) FROM wallet.entries e JOIN wallet.accounts a ON a.id = e.account_id"
            " WHERE a.kind = 'fee_income' AND a.unit = 'yen'"))).scalar_one()
    assert fee_income - fee_income_before == 200
    assert await balance(sessionmaker, town.merchants[TEAHOUSE]) == 0
    assert await ledger_violations(sessionmaker) == []
