"""The city's KPI report (issue 14, item 4): every figure computed by hand here from DOMAIN.md's
definitions and the payments the test makes, never read back from the implementation."""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.coupons.transit import service as transit
from services.wallet import public
from shared.audit import Actor
from tests.helpers import assert_problem, idem, snapshot
from tests.settlement.trades import jst, pay, refund, refunds_allowed_for

REGION = "aizu"
HANAKO, TARO = "resident-hanako", "resident-taro"
TEAHOUSE, STORE, BUS, FARM = "Tsurugajo Teahouse", "Nanokamachi General Store", "Aizu Bus", "Minato Farm"
CITY = Actor(subject="operator-aizu", role="operator", request_id="kpi-test")


async def set_baseline(client, tokens, day: str, rate_bp: int, source: str = "クレジットカード平均") -> None:
    response = await client.put(f"/v1/settlement/baseline-rates/{day}", json={"rate_bp": rate_bp, "source": source},
                                headers=tokens.operator())
    assert response.status_code == 200, response.text


async def set_fee_plan(client, tokens, town, merchant: str, rate_bp: int, at: datetime) -> None:
    response = await client.post(
        f"/v1/merchants/{town.merchants[merchant]}/fee-plans",
        json={"rate_bp": rate_bp, "effective_from": at.isoformat()}, headers=idem(tokens.operator()),
    )
    assert response.status_code == 201, response.text


async def report(client, tokens, year: int, **params: str) -> dict[str, Any]:
    response = await client.get(f"/v1/settlement/kpi/{year}", params=params, headers=tokens.auditor())
    assert response.status_code == 200, response.text
    return response.json()


def kpi(found: dict[str, Any], code: str) -> dict[str, Any]:
    return next(k for k in found["kpis"] if k["kpi"] == code)


def thousands(yen: Decimal) -> str:
    """Yen rounded down to the yen, in thousands with three places, as the report gives them."""
    return format(Decimal(int(yen)) / 1000, ".3f")


# --- the money figures ------------------------------------------------------------------------------


async def test_fee_savings_use_the_baseline_and_the_fee_of_each_payments_day_across_changes(
    client, tokens, town, sessionmaker, clock
):
    await set_baseline(client, tokens, "2026-04-01", 309)
    await set_baseline(client, tokens, "2026-10-01", 250)
    await set_fee_plan(client, tokens, town, TEAHOUSE, 100, jst(2026, 7, 1))
    april = await pay(sessionmaker, clock, town, jst(2026, 4, 10, 12), 3_333)
    july = await pay(sessionmaker, clock, town, jst(2026, 7, 15, 12), 4_000)
    october = await pay(sessionmaker, clock, town, jst(2026, 10, 20, 12), 5_000)
    # The fee plan changed in July: 2 % (rounded down) before, 1 % after.
    assert [april.fee, july.fee, october.fee] == [66, 40, 50]

    clock.set(jst(2027, 5, 1))
    found = await report(client, tokens, 2026)
    saved = {
        "2026-04": Decimal(3_333) * Decimal("0.0309") - 66,  # 102.9897 − 66
        "2026-07": Decimal(4_000) * Decimal("0.0309") - 40,
        "2026-10": Decimal(5_000) * Decimal("0.0250") - 50,
    }
    savings = kpi(found, "fee_savings")
    assert savings["actual"] == thousands(sum(saved.values()))  # 36.9897 + 83.6 + 75 = 195.5897 → ¥195
    assert savings["actual"] == "0.195"
    assert {m: savings["monthly"][m] for m in saved} == {m: thousands(v) for m, v in saved.items()}
    assert savings["monthly"]["2026-05"] == "0.000"
    assert found["missing_baseline_months"] == [] and savings["status"] is None  # no target set
    assert kpi(found, "payment_amount")["actual"] == "12.333"
    assert kpi(found, "payment_amount")["monthly"]["2026-07"] == "4.000"
    assert found["months"][0] == "2026-04" and found["months"][-1] == "2027-03" and len(found["months"]) == 12
    assert [(r["effective_from"], r["rate_percent"]) for r in found["baseline_rates"]] == [
        ("2026-04-01", "3.09"), ("2026-10-01", "2.50")]


async def test_refunds_count_on_their_own_date_across_a_month_and_a_fiscal_year(client, tokens, town, sessionmaker, clock):
    await refunds_allowed_for(sessionmaker, 30)
    await set_baseline(client, tokens, "2026-04-01", 300)
    await set_baseline(client, tokens, "2027-04-01", 200)
    march = await pay(sessionmaker, clock, town, jst(2027, 3, 30, 12), 10_000)
    back = await refund(sessionmaker, clock, jst(2027, 4, 2, 12), march, 4_000)
    april = await pay(sessionmaker, clock, town, jst(2027, 4, 10, 12), 6_000)
    assert (march.fee, back.fee_returned, april.fee) == (200, 80, 120)

    clock.set(jst(2028, 4, 5))
    fy2026, fy2027 = await report(client, tokens, 2026), await report(client, tokens, 2027)
    assert kpi(fy2026, "payment_amount")["actual"] == "10.000"
    assert kpi(fy2026, "fee_savings")["actual"] == thousands(Decimal(10_000) * Decimal("0.03") - 200)
    # The refund lowers April 2027, and takes back its saving at the rate of the payment's day (3 %).
    assert kpi(fy2027, "payment_amount")["actual"] == "2.000"
    assert kpi(fy2027, "payment_amount")["monthly"]["2027-04"] == "2.000"
    expected = (Decimal(6_000) * Decimal("0.02") - 120) - (Decimal(4_000) * Decimal("0.03") - 80)
    assert expected == Decimal(-40)
    assert kpi(fy2027, "fee_savings")["actual"] == "-0.040"


async def test_the_last_second_of_march_and_the_first_of_april_fall_in_their_own_years(
    client, tokens, town, sessionmaker, clock
):
    await pay(sessionmaker, clock, town, jst(2027, 3, 31, 23, 59, 59), 1_000)
    await pay(sessionmaker, clock, town, jst(2027, 4, 1, 0, 0, 0), 2_000)
    clock.set(jst(2028, 4, 2))
    fy2026, fy2027 = await report(client, tokens, 2026), await report(client, tokens, 2027)
    assert kpi(fy2026, "payment_amount")["actual"] == "1.000"
    assert kpi(fy2026, "payment_amount")["monthly"]["2027-03"] == "1.000"
    assert kpi(fy2027, "payment_amount")["actual"] == "2.000"
    assert kpi(fy2027, "payment_amount")["monthly"]["2027-04"] == "2.000"


async def test_a_year_without_data_is_a_report_of_zeros_and_names_the_unmeasured(client, tokens, town, clock):
    # FY2025 ended before the town opened (its residents' first top-ups are in FY2026).
    clock.set(jst(2027, 6, 1))
    found = await report(client, tokens, 2025)
    figures = {k["kpi"]: k["actual"] for k in found["kpis"]}
    assert figures == {
        "payment_amount": "0.000", "fee_savings": "0.000", "sectors": "0", "transit_tickets": "0.0",
        "merchants": "0", "points_granted": "0", "point_grants": "0", "participants": "0", "satisfaction": None,
        "coupon_redemptions": "0", "bundle_rides": "0", "local_circulation": None,
    }
    # No baseline rate at all: every month is named, and the fee savings are not measured.
    assert len(found["missing_baseline_months"]) == 12
    assert kpi(found, "fee_savings")["status"] == "未計測"
    assert kpi(found, "satisfaction")["status"] == "未計測"


async def test_a_baseline_missing_for_part_of_the_year_names_those_months(client, tokens, town, sessionmaker, clock):
    await set_baseline(client, tokens, "2026-07-01", 309)
    await pay(sessionmaker, clock, town, jst(2026, 5, 10, 12), 1_000)
    await pay(sessionmaker, clock, town, jst(2026, 8, 10, 12), 1_000)
    target = await client.put("/v1/settlement/kpi-targets/2026/fee_savings", json={"target": "1"},
                              headers=tokens.operator())
    assert target.status_code == 200, target.text
    clock.set(jst(2027, 4, 2))
    found = await report(client, tokens, 2026)
    assert found["missing_baseline_months"] == ["2026-04", "2026-05", "2026-06"]
    savings = kpi(found, "fee_savings")
    assert savings["status"] == "未計測" and savings["achievement_percent"] is None
    assert "2026-04, 2026-05, 2026-06" in savings["reasons"][0]
    assert savings["monthly"]["2026-05"] is None
    assert savings["monthly"]["2026-08"] == thousands(Decimal(1_000) * Decimal("0.0309") - 20)


async def test_targets_give_the_achievement_rate_and_status(client, tokens, town, sessionmaker, clock):
    await set_baseline(client, tokens, "2026-04-01", 309)
    for at, price, payer, merchant in [
        (jst(2026, 4, 2, 10), 8_000, HANAKO, TEAHOUSE), (jst(2026, 5, 2, 10), 4_000, TARO, STORE),
        (jst(2026, 5, 3, 10), 3_000, HANAKO, FARM),
    ]:
        await pay(sessionmaker, clock, town, at, price, payer=payer, merchant=merchant)
    # The town's three residents took part in FY2026 by their first top-ups, before any payment.
    for code, target, reason in [("payment_amount", "10", None), ("participants", "4", "周知不足"), ("sectors", "3", None)]:
        body = {"target": target} | ({"reason": reason} if reason else {})
        saved = await client.put(f"/v1/settlement/kpi-targets/2026/{code}", json=body, headers=tokens.operator())
        assert saved.status_code == 200, saved.text
    clock.set(jst(2027, 4, 2))
    found = await report(client, tokens, 2026)
    amount, people, sectors = kpi(found, "payment_amount"), kpi(found, "participants"), kpi(found, "sectors")
    assert (amount["actual"], amount["target"], amount["achievement_percent"], amount["status"]) == (
        "15.000", "10.000", "150.0", "達成")
    assert (people["actual"], people["achievement_percent"], people["status"], people["reasons"]) == (
        "3", "75.0", "未達", ["周知不足"])
    # food service, retail, agriculture
    assert (sectors["actual"], sectors["status"], sectors["monthly"]["2026-05"]) == ("3", "達成", "2")
    assert kpi(found, "merchants")["actual"] == "3"
    assert kpi(found, "participants")["monthly"]["2026-05"] == "2"
    english = await report(client, tokens, 2026, lang="en")
    assert kpi(english, "payment_amount")["label"] == "Annual payment amount"
    assert kpi(english, "participants")["status"] == "missed"


async def test_transit_tickets_are_averaged_over_the_months_of_the_period(client, tokens, town, sessionmaker, clock):
    async with sessionmaker() as s, s.begin():
        await transit.mark_operator(s, clock, region=REGION, actor=CITY, merchant_id=uuid.UUID(town.merchants[BUS]))
    for day in (3, 4, 5):  # three coin payments on the bus in April, one in June
        await pay(sessionmaker, clock, town, jst(2026, 4, day, 8), 200, merchant=BUS)
    await pay(sessionmaker, clock, town, jst(2026, 6, 1, 8), 200, merchant=BUS)
    clock.set(jst(2027, 4, 2))
    found = await report(client, tokens, 2026)
    tickets = kpi(found, "transit_tickets")
    assert (tickets["monthly"]["2026-04"], tickets["monthly"]["2026-06"], tickets["monthly"]["2026-05"]) == (
        "3.0", "1.0", "0.0")
    assert tickets["actual"] == "0.3"  # 4 over the 12 months named
    # A year in progress: averaged over the months begun so far (April–June 2026).
    clock.set(jst(2026, 6, 20))
    so_far = await report(client, tokens, 2026)
    assert so_far["months"] == ["2026-04", "2026-05", "2026-06"] and so_far["through"] == "2026-06-20"
    assert kpi(so_far, "transit_tickets")["actual"] == "1.3"


async def test_points_participants_and_local_circulation(client, tokens, town, sessionmaker, clock):
    # In FY2027, where the town's opening top-ups (FY2026) do not count.
    clock.set(jst(2027, 4, 3, 9))
    created = await client.post("/v1/campaigns", json={"kind": "grant", "name": "Health points", "name_ja": "健康ポイント"},
                                headers=idem(tokens.operator()))
    campaign = created.json()
    funded = await client.post(f"/v1/campaigns/{campaign['id']}/funding", json={"amount": 10_000},
                               headers=idem(tokens.operator()))
    assert funded.status_code == 201, funded.text
    for amount, subject in [(500, "resident-sachiko"), (300, "resident-sachiko")]:
        granted = await client.post(
            f"/v1/campaigns/{campaign['id']}/grants", headers=idem(tokens.operator()),
            json={"wallet_id": town.residents[subject][0], "amount": amount, "category": "health_event",
                  "event_id": "walk", "activity_date": "2027-04-01", "row_key": f"row-{uuid.uuid4()}"},
        )
        assert granted.status_code == 201, granted.text
    await pay(sessionmaker, clock, town, jst(2027, 4, 4, 10), 5_000)
    teahouse, farm = town.merchants[TEAHOUSE], town.merchants[FARM]
    sent = await client.post(f"/v1/merchants/{teahouse}/transfers", json={"to_merchant_id": farm, "amount": 1_000},
                             headers=idem(tokens.merchant_admin(teahouse)))
    assert sent.status_code == 201, sent.text
    async with sessionmaker() as s, s.begin():
        await public.post_payout(s, clock, region=REGION, actor=CITY, merchant_id=uuid.UUID(teahouse), amount=3_000)
    clock.set(jst(2028, 4, 2))
    found = await report(client, tokens, 2027)
    assert (kpi(found, "points_granted")["actual"], kpi(found, "point_grants")["actual"]) == ("800", "2")
    assert kpi(found, "participants")["actual"] == "2"  # Sachiko by her grants, Hanako by paying
    assert kpi(found, "merchants")["actual"] == "2"  # the teahouse, paid and paying; the farm, paid
    assert kpi(found, "local_circulation")["actual"] == "25.0"  # 1,000 of 1,000 + 3,000 moved out


# --- satisfaction ------------------------------------------------------------------------------------


async def open_survey(client, tokens, clock) -> dict[str, Any]:
    made = await client.post(
        "/v1/surveys", headers=idem(tokens.operator()),
        json={"title_ja": "満足度調査", "title": "Satisfaction", "question_ja": "アプリの満足度は？",
              "opens_at": clock.now().isoformat(), "closes_at": (clock.now() + timedelta(days=30)).isoformat()},
    )
    assert made.status_code == 201, made.text
    return made.json()


async def test_satisfaction_is_the_mean_of_one_answer_per_resident(client, tokens, town, sessionmaker, clock):
    survey = await open_survey(client, tokens, clock)
    for subject, rating in [(HANAKO, 4), (TARO, 5), ("resident-sachiko", 2)]:
        answered = await client.post(f"/v1/surveys/{survey['id']}/answers", json={"rating": rating},
                                     headers=idem(tokens.resident(subject)))
        assert answered.status_code == 201, answered.text
    before = await snapshot(sessionmaker)
    again = await client.post(f"/v1/surveys/{survey['id']}/answers", json={"rating": 1, "comment": "やっぱり"},
                              headers=idem(tokens.resident(HANAKO)))
    assert_problem(again, 409, "survey-already-answered")
    out_of_range = await client.post(f"/v1/surveys/{survey['id']}/answers", json={"rating": 6},
                                     headers=idem(tokens.resident(HANAKO)))
    assert out_of_range.status_code == 422
    clock.advance(timedelta(days=31))
    closed = await client.post(f"/v1/surveys/{survey['id']}/answers", json={"rating": 3},
                               headers=idem(tokens.resident("resident-new")))
    assert_problem(closed, 409, "survey-closed")
    assert await snapshot(sessionmaker) == before
    mine = await client.get(f"/v1/surveys/{survey['id']}/answers/me", headers=tokens.resident(HANAKO))
    assert mine.json()["rating"] == 4
    tally = await client.get(f"/v1/surveys/{survey['id']}", headers=tokens.auditor())
    assert (tally.json()["answers"], tally.json()["mean_rating"]) == (3, "3.67")
    clock.set(jst(2027, 4, 2))
    found = await report(client, tokens, 2026)
    assert kpi(found, "satisfaction")["actual"] == "3.67"  # (4 + 5 + 2) / 3
    assert kpi(found, "satisfaction")["monthly"]["2026-04"] == "3.67"


# --- formats and refusals ------------------------------------------------------------------------------


async def test_the_formats_carry_the_templates_columns(client, tokens, town, sessionmaker, clock):
    await set_baseline(client, tokens, "2026-04-01", 309)
    await pay(sessionmaker, clock, town, jst(2026, 4, 2, 10), 5_000)
    clock.set(jst(2027, 4, 2))
    url, headers = "/v1/settlement/kpi/2026", tokens.operator()
    utf8 = await client.get(url, params={"format": "csv"}, headers=headers)
    assert utf8.status_code == 200 and utf8.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(utf8.content.decode("utf-8-sig"))))
    assert rows[0][:7] == ["KPI", "単位", "目標", "実績", "達成率(%)", "状況", "理由"] and rows[0][7] == "2026-04"
    assert rows[1][:4] == ["年間決済金額", "千円", "", "5.000"]
    sjis = await client.get(url, params={"format": "csv", "encoding": "cp932"}, headers=headers)
    assert sjis.content.decode("cp932") == utf8.content.decode("utf-8-sig")
    xlsx = await client.get(url, params={"format": "xlsx"}, headers=headers)
    with zipfile.ZipFile(io.BytesIO(xlsx.content)) as book:
        strings = book.read("xl/sharedStrings.xml").decode()
        assert len([n for n in book.namelist() if n.startswith("xl/worksheets/sheet")]) == 3
    assert "達成率(%)" in strings and "年間決済金額" in strings and "クレジットカード平均" in strings
    png = await client.get(url, params={"format": "png"}, headers=headers)
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG\r\n\x1a\n")
    # The same data gives the same bytes, in every format.
    for fmt in ("csv", "xlsx", "png", "json"):
        first = await client.get(url, params={"format": fmt}, headers=headers)
        second = await client.get(url, params={"format": fmt}, headers=headers)
        assert first.content == second.content, fmt


async def test_refusals_change_nothing(client, tokens, town, sessionmaker, clock):
    before = await snapshot(sessionmaker)
    unknown = await client.get("/v1/settlement/kpi/2026", params={"format": "pdf"}, headers=tokens.operator())
    assert_problem(unknown, 422, "unknown-format")
    encoding = await client.get("/v1/settlement/kpi/2026", params={"format": "csv", "encoding": "latin-1"},
                                headers=tokens.operator())
    assert_problem(encoding, 422, "unknown-format")
    future = await client.get("/v1/settlement/kpi/2030", headers=tokens.operator())
    assert_problem(future, 422, "fiscal-year-not-begun")
    resident = await client.get("/v1/settlement/kpi/2026", headers=tokens.resident())
    assert resident.status_code == 403
    auditor_writes = await client.put("/v1/settlement/baseline-rates/2026-04-01",
                                      json={"rate_bp": 309, "source": "x"}, headers=tokens.auditor())
    assert auditor_writes.status_code == 403
    unknown_kpi = await client.put("/v1/settlement/kpi-targets/2026/happiness", json={"target": "1"},
                                   headers=tokens.operator())
    assert unknown_kpi.status_code == 422
    assert await snapshot(sessionmaker) == before


async def test_reports_read_through_a_session_that_cannot_write(app, client, tokens, town, sessionmaker, clock):
    async with app.state.read_sessionmaker() as s:
        with pytest.raises(DBAPIError, match="read-only"):
            await s.execute(text("INSERT INTO settlement.kpi_targets VALUES (gen_random_uuid(), 2026, 'sectors', 1,"
                                 " NULL, 'x', now())"))
    await pay(sessionmaker, clock, town, jst(2026, 4, 2, 10), 5_000)
    clock.set(jst(2027, 4, 2))
    assert kpi(await report(client, tokens, 2026), "payment_amount")["actual"] == "5.000"


def test_tokyo_bounds_are_what_the_tests_assume():
    assert jst(2027, 4, 1).astimezone(UTC) == datetime(2027, 3, 31, 15, tzinfo=UTC)
