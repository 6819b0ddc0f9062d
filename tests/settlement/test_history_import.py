"""History import (移行, issue 14 item 6): a previous platform's merchants, residents and
movements from one CSV, checked in full, all or nothing, idempotent per row key, never over the
region's own history; balances carried over by opening journals so that `ledger verify` holds;
imported rows marked in the resident's history and the merchants' statement lines."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from app.cli import app as cli
from services.settlement.history import format, tasks
from services.wallet import public
from shared.config import get_settings
from tests.helpers import assert_problem, idem, ledger_violations, snapshot

COLUMNS = ("record", "key", "occurred_at", "resident", "merchant", "yen", "points", "fee_yen", "fee_points", "payment",
           "memo", "subject", "closing_yen", "closing_points", "merchant_id", "name", "name_ja", "sector", "mcc",
           "address", "merchant_class", "bank_code", "branch_code", "account_type", "account_number",
           "account_holder_kana")
OLD_SHOP = dict(name="Old Sake Brewery", name_ja="老舗酒蔵", sector="retail", mcc="5921", address="会津若松市大町1-1",
                merchant_class="shotengai", bank_code="0001", branch_code="001", account_type="1",
                account_number="1234567", account_holder_kana="ｼﾆｾｻｶｸﾞﾗ")
HANAKO, OLD_KEN = "resident-hanako", "old-ken"


@pytest.fixture
def cli_env(settings, sessionmaker, monkeypatch):
    """The CLI pointed at the test database and Redis (`sessionmaker` empties the tables first)."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("DATA_DIR", str(settings.data_dir))
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
async def no_worker_left_behind():
    yield
    await tasks.drain()


def history_csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue().encode()


def good_rows(town) -> list[dict[str, Any]]:
    """Two shops (one found here by id, one onboarded), two residents (Ken new; Hanako, who also
    has a wallet here already), a year of their movements. Ken ends with ¥3,400 and 150 points;
    Hanako with ¥700 and nothing."""
    teahouse = town.merchants["Tsurugajo Teahouse"]
    return [
        dict(record="merchant", key="S-001", merchant_id=teahouse),
        dict(record="merchant", key="S-002", **OLD_SHOP),
        dict(record="resident", key="U-1", subject=OLD_KEN, closing_yen=3400, closing_points=150),
        dict(record="resident", key="U-2", subject=HANAKO, closing_yen=700, closing_points=0),
        dict(record="topup", key="T-1", occurred_at="2025-04-01T10:00:00+09:00", resident="U-1", yen=5000),
        dict(record="grant", key="G-1", occurred_at="2025-05-01T09:00:00+09:00", resident="U-1", points=300,
             memo="健康ポイント"),
        dict(record="payment", key="P-1", occurred_at="2025-06-10T12:00:00+09:00", resident="U-1", merchant="S-001",
             yen=2000, points=150, fee_yen=40, fee_points=3),
        dict(record="refund", key="R-1", occurred_at="2025-06-11T12:00:00+09:00", payment="P-1", yen=400, fee_yen=8),
        dict(record="topup", key="T-2", occurred_at="2025-07-01T10:00:00+09:00", resident="U-2", yen=1000),
        dict(record="payment", key="P-2", occurred_at="2026-03-31T23:59:59+09:00", resident="U-2", merchant="S-002",
             yen=300, fee_yen=6),
    ]


async def post_file(client, tokens, content: bytes, key: str | None = None):
    return await client.post(
        "/v1/settlement/imports?filename=old.csv", content=content,
        headers={**idem(tokens.operator(), key), "Content-Type": "text/csv"},
    )


async def run_import(client, tokens, content: bytes) -> dict[str, Any]:
    accepted = await post_file(client, tokens, content)
    assert accepted.status_code == 202, accepted.text
    assert accepted.headers["Location"] == f"/v1/settlement/imports/{accepted.json()['id']}"
    await tasks.drain()
    status = await client.get(accepted.headers["Location"], headers=tokens.auditor())
    assert status.status_code == 200, status.text
    return status.json()


async def wallet(client, tokens, subject: str) -> dict[str, Any]:
    found = await client.get("/v1/wallet", headers=tokens.resident(subject))
    assert found.status_code == 200, found.text
    return found.json()


async def values(sessionmaker) -> dict[str, Any]:
    """Everything that holds or records value, without the audit trail, idempotency records and
    the import job's own record (its file, status and problems) that a refused import leaves."""
    snap = await snapshot(sessionmaker)
    for table in ("platform.audit_events", "platform.idempotency_keys"):
        snap["counts"].pop(table)
    for table in ("settlement.history_imports", "settlement.history_import_files", "settlement.history_import_errors"):
        snap["rows"].pop(table)
    return snap


# --- a good import -----------------------------------------------------------------------------------


async def test_a_good_import_carries_balances_over_and_marks_the_old_rows(client, tokens, town, sessionmaker):
    hanako_before = await wallet(client, tokens, HANAKO)
    done = await run_import(client, tokens, history_csv(good_rows(town)))

    assert done["status"] == "done", done
    assert done["counts"] == {
        "written": {"merchant": 2, "resident": 2, "topup": 2, "grant": 1, "payment": 2, "refund": 1},
        "skipped": {}, "openings": 2, "opened_yen": 4100, "opened_points": 150,
    }
    assert done["total_rows"] == 10 and done["written_rows"] == 10 and done["errors"] == []

    # Balances: what the file says they held, and nothing else moved.
    ken = await wallet(client, tokens, OLD_KEN)
    assert (ken["balance"], ken["points"]) == (3400, 150)
    hanako = await wallet(client, tokens, HANAKO)
    assert (hanako["balance"], hanako["points"]) == (hanako_before["balance"] + 700, hanako_before["points"])
    assert await ledger_violations(sessionmaker) == []

    async with sessionmaker() as session:
        migration = (await session.execute(text(
            "SELECT a.unit, sum(e.amount) FROM wallet.accounts a JOIN wallet.entries e ON e.account_id = a.id "
            "WHERE a.kind = 'migration' GROUP BY a.unit ORDER BY a.unit"
        ))).all()
        merchant_entries = (await session.execute(text(
            "SELECT count(*) FROM wallet.entries e JOIN wallet.journals j ON j.id = e.journal_id "
            "JOIN wallet.accounts a ON a.id = e.account_id WHERE j.kind = 'opening' AND a.kind <> 'resident' "
            "AND a.kind <> 'migration'"
        ))).scalar_one()
    assert migration == [("point", -150), ("yen", -4100)]  # the mirror of what came over
    assert merchant_entries == 0  # no merchant income carried: the old platform paid its shops

    # The resident's history: the opening here, then the old movements, newest first, marked.
    history = (await client.get("/v1/wallet/history", headers=tokens.resident(OLD_KEN))).json()["items"]
    assert [(h["kind"], h["unit"], h["amount"], h["imported"]) for h in history] == [
        ("opening", "point", 150, False), ("opening", "yen", 3400, False),
        ("refund", "yen", 400, True), ("payment", "point", -150, True), ("payment", "yen", -2000, True),
        ("grant", "point", 300, True), ("topup", "yen", 5000, True),
    ]
    imported = [h for h in history if h["imported"]]
    assert len(imported) == 5
    assert all(h["journal_id"] is None and h["balance_after"] is None for h in imported)
    assert {h["reference"] for h in imported} == {"T-1", "G-1", "P-1", "R-1"}
    assert imported[-1]["created_at"] == "2025-04-01T01:00:00Z"
    # Paged one by one, the same rows in the same order.
    paged, cursor = [], None
    while True:
        page = (await client.get("/v1/wallet/history", params={"limit": 1, **({"cursor": cursor} if cursor else {})},
                                 headers=tokens.resident(OLD_KEN))).json()
        paged += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert paged == history
    only_topups = (await client.get("/v1/wallet/history", params={"kind": "topup"},
                                    headers=tokens.resident(OLD_KEN))).json()["items"]
    assert [(h["amount"], h["imported"]) for h in only_topups] == [(5000, True)]

    # Statement lines: imported sales only when asked for, marked, with the shop's fee.
    since, until = datetime(2025, 4, 1, tzinfo=UTC), datetime(2026, 3, 31, 15, tzinfo=UTC)
    async with sessionmaker() as session:
        native = [line async for line in public.statement_lines(session, region="aizu", since=since, until=until)]
        lines = [line async for line in public.statement_lines(session, region="aizu", since=since, until=until,
                                                               include_imported=True)]
        onboarded = await session.execute(text("SELECT id FROM wallet.merchants WHERE name = 'Old Sake Brewery'"))
        brewery = onboarded.scalar_one()
    assert native == []
    teahouse = uuid.UUID(town.merchants["Tsurugajo Teahouse"])
    got = sorted((str(line.merchant_id), line.kind.value, line.unit, line.amount, line.fee, line.net, line.source_key,
                  line.imported) for line in lines)
    assert got == sorted([
        (str(teahouse), "payment", "yen", 2000, 40, 1960, "P-1", True),
        (str(teahouse), "payment", "point", 150, 3, 147, "P-1", True),
        (str(teahouse), "refund", "yen", -400, -8, -392, "R-1", True),
        (str(brewery), "payment", "yen", 300, 6, 294, "P-2", True),
    ])
    assert [line.merchant_id for line in lines] == sorted(line.merchant_id for line in lines)


async def test_importing_the_same_file_again_adds_nothing(client, tokens, town, sessionmaker):
    content = history_csv(good_rows(town))
    assert (await run_import(client, tokens, content))["status"] == "done"
    before = await values(sessionmaker)

    again = await run_import(client, tokens, content)
    assert again["status"] == "done"
    assert again["counts"]["written"] == {}
    assert again["counts"]["skipped"] == {"merchant": 2, "resident": 2, "topup": 2, "grant": 1, "payment": 2,
                                          "refund": 1}
    assert again["counts"]["openings"] == 0
    assert await values(sessionmaker) == before

    # The same request again (its Idempotency-Key) is answered as the first time.
    first = await post_file(client, tokens, content, key="import-once")
    replay = await post_file(client, tokens, content, key="import-once")
    assert replay.status_code == 202 and replay.json()["id"] == first.json()["id"]


async def test_a_file_overlapping_an_earlier_import_adds_only_its_new_rows(client, tokens, town, sessionmaker):
    rows = good_rows(town)
    assert (await run_import(client, tokens, history_csv(rows)))["status"] == "done"
    newcomer = [
        dict(record="resident", key="U-3", subject="old-yui", closing_yen=800, closing_points=0),
        dict(record="topup", key="T-3", occurred_at="2025-09-01T10:00:00+09:00", resident="U-3", yen=1000),
        dict(record="payment", key="P-3", occurred_at="2025-09-02T10:00:00+09:00", resident="U-3", merchant="S-002",
             yen=200, fee_yen=4),
    ]
    done = await run_import(client, tokens, history_csv(rows + newcomer))
    assert done["status"] == "done", done
    assert done["counts"]["written"] == {"resident": 1, "topup": 1, "payment": 1}
    assert done["counts"]["skipped"]["payment"] == 2
    yui = await wallet(client, tokens, "old-yui")
    assert (yui["balance"], yui["points"]) == (800, 0)
    assert await ledger_violations(sessionmaker) == []


# --- refusals: nothing changes -------------------------------------------------------------------------


async def test_one_bad_row_refuses_the_whole_file_and_every_bad_row_is_listed(client, tokens, town, sessionmaker):
    rows = good_rows(town)
    rows[2]["closing_yen"] = 3500  # line 4: Ken's movements give 3,400
    rows[7]["yen"] = 2500  # line 9: the refund is more than the payment's 2,000 yen
    rows.append(dict(record="payment", key="P-9", occurred_at="2025-08-01T10:00:00+09:00", resident="U-1",
                     merchant="S-404", yen=100))  # line 12: no such merchant
    rows.append(dict(record="topup", key="T-9", occurred_at="2025-08-01T10:00:00", resident="U-1", yen=100))
    # line 13: a time without its offset
    before = await values(sessionmaker)

    refused = await run_import(client, tokens, history_csv(rows))

    assert refused["status"] == "rejected"
    assert refused["problem_type"] == "urn:chiikipay:problem:history-file-unreadable"
    # Every bad row, the unreadable one with the others: the shop that is not there and the refund
    # that is more than its payment are not hidden by it. (Ken's closing balance, which the
    # unread top-up of his might explain, is left until that row can be read.)
    assert [(e["line"], e["row_key"], e["field"], e["code"]) for e in refused["errors"]] == [
        (9, "R-1", "yen", "refund-exceeds-payment"),
        (12, "P-9", "merchant", "unknown-merchant"),
        (13, "T-9", "occurred_at", "no-offset"),
    ]
    assert refused["error_count"] == 3 and refused["written_rows"] == 0
    assert await values(sessionmaker) == before

    # Without the unreadable row, the rules' problems alone: every one of them, each with its line.
    refused = await run_import(client, tokens, history_csv(rows[:-1]))
    assert refused["status"] == "rejected"
    assert refused["problem_type"] == "urn:chiikipay:problem:history-refused"
    assert sorted((e["line"], e["row_key"], e["field"], e["code"]) for e in refused["errors"]) == [
        (4, "U-1", "closing_yen", "closing-mismatch"),
        (9, "R-1", "yen", "refund-exceeds-payment"),
        (12, "P-9", "merchant", "unknown-merchant"),
    ]
    (mismatch,) = [e for e in refused["errors"] if e["code"] == "closing-mismatch"]
    assert mismatch["detail"] == "The file states 3500 yen; the resident's movements give 5400."
    listed = await client.get(f"/v1/settlement/imports/{refused['id']}/errors", headers=tokens.operator())
    assert [e["code"] for e in listed.json()["items"]] == [e["code"] for e in refused["errors"]]
    assert await values(sessionmaker) == before
    assert await ledger_violations(sessionmaker) == []


async def test_history_at_or_after_the_regions_own_is_refused(client, tokens, town, sessionmaker):
    rows = good_rows(town)
    # The town's first top-up is at START (2026-04-01 09:30 Tokyo): history must end before it.
    rows.append(dict(record="topup", key="T-late", occurred_at="2026-04-01T09:30:00+09:00", resident="U-1",
                     yen=100))
    rows[2]["closing_yen"] = 3500
    before = await values(sessionmaker)

    refused = await run_import(client, tokens, history_csv(rows))

    assert refused["status"] == "rejected"
    assert refused["problem_type"] == "urn:chiikipay:problem:history-overlaps"
    assert [(e["line"], e["code"]) for e in refused["errors"]] == [(12, "overlaps-native-history")]
    assert await values(sessionmaker) == before


async def test_a_balance_that_would_go_below_zero_refuses_the_file(client, tokens, town, sessionmaker):
    rows = good_rows(town)
    rows[4]["occurred_at"] = "2025-06-30T10:00:00+09:00"  # Ken's top-up now comes after he paid with it
    before = await values(sessionmaker)
    refused = await run_import(client, tokens, history_csv(rows))
    assert refused["status"] == "rejected"
    assert [(e["line"], e["field"], e["code"]) for e in refused["errors"]] == [(8, "yen", "balance-negative")]
    assert await values(sessionmaker) == before


async def test_movements_for_a_resident_carried_over_before_are_refused(client, tokens, town, sessionmaker):
    assert (await run_import(client, tokens, history_csv(good_rows(town))))["status"] == "done"
    before = await values(sessionmaker)
    late = [dict(record="topup", key="T-extra", occurred_at="2025-12-01T10:00:00+09:00", resident="U-1", yen=100)]
    refused = await run_import(client, tokens, history_csv(late))
    assert [(e["line"], e["code"]) for e in refused["errors"]] == [(2, "resident-closed")]
    assert await values(sessionmaker) == before


async def test_the_api_refuses_what_is_not_a_csv_and_auditors_only_read(client, tokens, town, sessionmaker):
    before = await values(sessionmaker)
    not_csv = await client.post("/v1/settlement/imports", json={"rows": []}, headers=idem(tokens.operator()))
    assert_problem(not_csv, 415, "unsupported-media-type")
    auditor = await client.post("/v1/settlement/imports", content=history_csv(good_rows(town)),
                                headers={**idem(tokens.auditor()), "Content-Type": "text/csv"})
    assert auditor.status_code == 403
    assert_problem(await client.get(f"/v1/settlement/imports/{uuid.uuid4()}", headers=tokens.auditor()), 404,
                   "history-import-not-found")
    assert (await client.get(f"/v1/settlement/imports/{uuid.uuid4()}", headers=tokens.resident())).status_code == 403
    assert await values(sessionmaker) == before


def test_reading_the_file_types_every_cell_and_lists_every_problem():
    batch, problems, unread = format.read(
        b"\xef\xbb\xbfrecord,key,occurred_at,resident,yen\n"
        b"topup,T-1,2025-04-01T10:00:00+09:00,U-1,100\n"
        b"topup,T-2,yesterday,U-1,1.5\n"
        b"coupon,C-1,,,\n"
    )
    assert [m.key for m in batch.movements] == ["T-1"]
    assert batch.movements[0].occurred_at == datetime(2025, 4, 1, 1, tzinfo=UTC)
    assert [(p.line, p.field, p.code) for p in problems] == [
        (3, "occurred_at", "not-an-instant"), (3, "yen", "not-an-integer"), (4, "record", "unknown-record"),
    ]
    assert [(u.record, u.key) for u in unread] == [("topup", "T-2"), ("coupon", "C-1")]
    _, problems, _ = format.read(b"record,key,colour\n")
    assert [(p.line, p.code) for p in problems] == [(1, "bad-header")]


# --- the CLI -------------------------------------------------------------------------------------------


def test_the_cli_imports_a_file_lists_every_bad_row_and_exits_1(cli_env, tmp_path):
    runner = CliRunner()
    assert runner.invoke(cli, ["demo"]).exit_code == 0
    good = tmp_path / "old.csv"
    good.write_bytes(history_csv([
        dict(record="merchant", key="S-1", name="Aizu Bus"),  # found here by name
        dict(record="resident", key="U-1", subject="cli-ken", closing_yen=900, closing_points=0),
        dict(record="topup", key="T-1", occurred_at="2025-04-01T10:00:00+09:00", resident="U-1", yen=1000),
        dict(record="payment", key="P-1", occurred_at="2025-04-02T10:00:00+09:00", resident="U-1", merchant="S-1",
             yen=100, fee_yen=2),
    ]))
    bad = tmp_path / "bad.csv"
    bad.write_bytes(history_csv([
        dict(record="resident", key="U-9", subject="cli-yui", closing_yen=5, closing_points=0),
        dict(record="topup", key="T-9", occurred_at="2025-04-01T10:00:00+09:00", resident="U-9", yen=1),
        dict(record="payment", key="P-9", occurred_at="2025-04-02T10:00:00+09:00", resident="U-8", merchant="S-1",
             yen=1),
    ]))

    refused = runner.invoke(cli, ["import", "history", str(bad)])
    assert refused.exit_code == 1, refused.output
    assert "closing-mismatch" in refused.output and "unknown-resident" in refused.output
    assert "nothing was imported" in refused.output

    imported = runner.invoke(cli, ["import", "history", str(good), "--region", "aizu"])
    assert imported.exit_code == 0, imported.output
    assert "opening journals: 1" in imported.output
    again = runner.invoke(cli, ["import", "history", str(good)])
    assert again.exit_code == 0, again.output
    assert "opening journals: 0" in again.output
    verified = runner.invoke(cli, ["ledger", "verify"])
    assert verified.exit_code == 0, verified.output


async def test_ledger_verify_names_an_opening_that_no_longer_matches_the_imported_movements(
    client, tokens, town, sessionmaker
):
    """The check can fail: an imported movement added behind the import's back leaves Ken's
    opening short of what his movements now give, and `ledger verify` says so."""
    assert (await run_import(client, tokens, history_csv(good_rows(town))))["status"] == "done"
    async with sessionmaker() as session, session.begin():
        await session.execute(text(
            "INSERT INTO wallet.imported_movements (id, region_id, record, source_key, unit, occurred_at, resident_id,"
            " amount, fee, line, batch_id, created_at)"
            " SELECT gen_random_uuid(), m.region_id, 'topup', 'T-forged', 'yen', m.occurred_at, m.resident_id, 100, 0,"
            " 99, m.batch_id, m.created_at FROM wallet.imported_movements m WHERE m.source_key = 'T-1'"
        ))
    found = await ledger_violations(sessionmaker)
    assert [(v.invariant, v.detail) for v in found] == [
        ("history", "yen: stated closing 3400, imported movements give 3500, opening carried 3400")
    ]


# --- the KPI report over imported years ----------------------------------------------------------------


async def test_the_kpi_report_covers_an_imported_year_and_names_its_months(client, tokens, town, sessionmaker):
    rows = good_rows(town)
    assert (await run_import(client, tokens, history_csv(rows)))["status"] == "done"
    rate = await client.put("/v1/settlement/baseline-rates/2025-04-01", json={"rate_bp": 300, "source": "平均"},
                            headers=tokens.operator())
    assert rate.status_code == 200, rate.text

    found = await client.get("/v1/settlement/kpi/2025", headers=tokens.auditor())
    assert found.status_code == 200, found.text
    report = found.json()
    kpis = {k["kpi"]: k for k in report["kpis"]}

    # The figures, worked out from the file's rows: each payment's coin and points, less the
    # refund on its own date; savings at 3 % less the fee the shop paid, the refund's reversed.
    paid = {"P-1": 2000 + 150, "P-2": 300}
    fees = {"P-1": 40 + 3, "P-2": 6}
    refunded, refund_fee = 400, 8
    net = sum(paid.values()) - refunded
    saved = sum(Decimal(paid[k]) * Decimal("0.03") - fees[k] for k in paid) - (refunded * Decimal("0.03") - refund_fee)
    assert kpis["payment_amount"]["actual"] == f"{Decimal(net) / 1000:.3f}"
    assert kpis["payment_amount"]["monthly"]["2025-06"] == f"{Decimal(2150 - 400) / 1000:.3f}"
    assert kpis["payment_amount"]["monthly"]["2026-03"] == "0.300"
    assert kpis["fee_savings"]["actual"] == f"{Decimal(int(saved)) / 1000:.3f}"
    assert (kpis["points_granted"]["actual"], kpis["point_grants"]["actual"]) == ("300", "1")
    assert kpis["participants"]["actual"] == "2"  # Ken and Hanako, by their old top-ups
    assert kpis["merchants"]["actual"] == "2"
    async with sessionmaker() as session:
        sectors = (await session.execute(text(
            "SELECT count(DISTINCT sector) FROM wallet.merchants WHERE id = :tea OR name = 'Old Sake Brewery'"
        ), {"tea": town.merchants["Tsurugajo Teahouse"]})).scalar_one()
    assert kpis["sectors"]["actual"] == str(sectors)
    # Marked: the months holding imported rows, in JSON and in the CSV's month headings.
    assert report["imported_months"] == ["2025-04", "2025-05", "2025-06", "2025-07", "2026-03"]
    as_csv = await client.get("/v1/settlement/kpi/2025", params={"format": "csv"}, headers=tokens.auditor())
    header = next(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert "2025-06（移行データを含む）" in header and "2025-08" in header and "2025-08（移行データを含む）" not in header

    # The year after the switch counts none of it and names no imported month.
    after = (await client.get("/v1/settlement/kpi/2026", headers=tokens.auditor())).json()
    assert after["imported_months"] == []


async def test_the_base_date_report_counts_the_imported_balances_before_and_after_the_switch(
        client, tokens, town, sessionmaker, clock):
    assert (await run_import(client, tokens, history_csv(good_rows(town))))["status"] == "done"

    async def outstanding(base_date: str) -> dict[str, Any]:
        found = await client.get("/v1/settlement/outstanding", params={"base_date": base_date},
                                 headers=tokens.auditor())
        assert found.status_code == 200, found.text
        return found.json()

    # 30 September 2025, on the old platform: Ken's ¥5,000 top-up less his ¥2,000 coin payment
    # plus the ¥400 refunded, Hanako's ¥1,000; the points (granted, paid) are not paid-in value.
    autumn = await outstanding("2025-09-30")
    assert (autumn["unused_balance"], autumn["wallets"]) == (5000 - 2000 + 400 + 1000, 2)
    assert {m["kind"]: (m["journals"], m["amount"]) for m in autumn["movements"]} == {
        "imported_topup": (2, 6000), "imported_payment": (1, -2000), "imported_refund": (1, 400)}
    # 31 March 2026, the old platform's last day, 23:59:59 included: the closing balances the file
    # states, which the openings carried over (¥3,400 and ¥700).
    spring = await outstanding("2026-03-31")
    assert spring["unused_balance"] == 3400 + 700
    # After the switch the openings are not counted again beside the movements they stand for.
    clock.set(datetime(2026, 10, 1, 3, tzinfo=UTC))
    native = (await outstanding("2026-09-30"))
    kinds = {m["kind"] for m in native["movements"]}
    assert "opening" not in kinds
    async with sessionmaker() as session:
        ledger_yen = (await session.execute(text(
            "SELECT coalesce(sum(e.amount), 0) FROM wallet.entries e JOIN wallet.accounts a ON a.id = e.account_id "
            "WHERE a.kind = 'resident' AND a.unit = 'yen' AND e.created_at < '2026-09-30T15:00:00Z'"
        ))).scalar_one()
    assert native["unused_balance"] == ledger_yen  # the same as the ledger's own balances, openings in


async def test_the_merchants_history_shows_its_old_payments_and_refunds_net_of_fees(client, tokens, town):
    teahouse = town.merchants["Tsurugajo Teahouse"]
    before = (await client.get(f"/v1/merchants/{teahouse}/history", headers=tokens.merchant_admin(teahouse))).json()
    assert (await run_import(client, tokens, history_csv(good_rows(town))))["status"] == "done"

    found = await client.get(f"/v1/merchants/{teahouse}/history", params={"limit": 100},
                             headers=tokens.merchant_admin(teahouse))
    assert found.status_code == 200, found.text
    items = found.json()["items"]
    old = [(h["kind"], h["unit"], h["amount"], h["reference"]) for h in items if h["imported"]]
    # P-1: ¥2,000 and 150 points less fees of ¥40 and 3 points; R-1: ¥400 back less its ¥8 fee.
    assert old == [("refund", "yen", -(400 - 8), "R-1"), ("payment", "point", 150 - 3, "P-1"),
                   ("payment", "yen", 2000 - 40, "P-1")]
    # Its own movements come first, unchanged, and the old ones after all of them.
    assert [h for h in items if not h["imported"]] == before["items"]
    assert items[:len(before["items"])] == before["items"]
    # Another merchant's old rows are not in it (P-2 was the brewery's).
    assert all(h["reference"] != "P-2" for h in items)
