"""Settlement runs pay merchants for the points residents spent at their shops (ポイント換金,
issue 14): the points due are redeemed into yen by a `point_redemption` journal (the points back
to the campaign fund, the fund's yen to the shop) and paid by the same payout. Figures are worked
out from what the wallet answered and the payments' own rows; refusals: status, problem body and
nothing changed."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from services.settlement.runs import service as runs
from services.wallet import public
from services.wallet.directory import repository as directory_repo
from services.wallet.ledger import repository as ledger_repo
from services.wallet.ledger import service as ledger
from services.wallet.ledger.models import AccountKind, JournalKind
from shared.errors import Problem
from shared.money import Unit
from tests.helpers import assert_problem, idem, ledger_violations, snapshot
from tests.settlement import zengin_reader
from tests.settlement.test_runs import (
    AFTER_APRIL,
    AFTER_MAY,
    CITY,
    REGION,
    STORE,
    TEAHOUSE,
    accounts,
    all_files,
    download,
    settle,
    statement,
    statement_lines,
    summary_of,
    table,
)
from tests.settlement.trades import HANAKO, jst, pay, refunds_allowed_for
from tests.wallet.test_lots import give


async def points_of(sessionmaker, merchant_id: str, unit: str = "point") -> int:
    async with sessionmaker() as s:
        return (await s.execute(text(
            "SELECT coalesce(sum(e.amount), 0) FROM wallet.entries e JOIN wallet.accounts a ON a.id = e.account_id"
            " WHERE a.merchant_id = :m AND a.unit = :unit"), {"m": merchant_id, "unit": unit}
        )).scalar_one()


async def point_fee(sessionmaker, paid: public.PaidPayment) -> int:
    async with sessionmaker() as s:
        return (await s.execute(text("SELECT fee_point FROM wallet.payments WHERE id = :id"),
                                {"id": paid.id})).scalar_one()


async def redemptions(sessionmaker) -> list[tuple]:
    """Every point redemption's entries: (journal, reference, account kind, merchant, unit, amount)."""
    async with sessionmaker() as s:
        return [tuple(r) for r in (await s.execute(text(
            "SELECT j.id, j.reference, a.kind, a.merchant_id::text, e.unit, e.amount FROM wallet.journals j"
            " JOIN wallet.entries e ON e.journal_id = j.id JOIN wallet.accounts a ON a.id = e.account_id"
            " WHERE j.kind = 'point_redemption' ORDER BY j.id, a.kind, e.unit"))).all()]


async def points_paid(sessionmaker, clock, town, at, points: int, price: int, merchant: str = TEAHOUSE):
    """A payment of `price` of which `points` are paid in points (points are spent first)."""
    clock.set(at)
    await give(sessionmaker, clock, HANAKO, points, Unit.POINT)
    paid = await pay(sessionmaker, clock, town, at, price, merchant=merchant)
    assert paid.point_amount == points
    return paid


async def test_a_merchant_is_paid_its_points_in_yen_by_one_redemption_and_the_same_payout(
    client, tokens, town, clock, sessionmaker,
):
    await accounts(client, tokens, town, TEAHOUSE, STORE)
    mixed = await points_paid(sessionmaker, clock, town, jst(2026, 4, 3, 10), 500, 1200)
    yen_only = await pay(sessionmaker, clock, town, jst(2026, 4, 4, 10), 3000, merchant=STORE)
    fee_point = await point_fee(sessionmaker, mixed)
    tea = town.merchants[TEAHOUSE]
    points_net = mixed.point_amount - fee_point
    yen_net = mixed.amount - mixed.point_amount - (mixed.fee - fee_point)

    clock.set(AFTER_APRIL)
    run = await settle(client, tokens, "2026-04")
    assert run["payout_total"] == mixed.amount - mixed.fee + yen_only.amount - yen_only.fee

    # One journal, four entries balanced per unit: the shop's points back to the campaign fund,
    # the fund's yen to the shop, keyed by the run and merchant.
    [(journal, reference, *_), *_] = entries = await redemptions(sessionmaker)
    assert [e[2:] for e in entries] == [
        ("campaign_fund", None, "point", points_net), ("campaign_fund", None, "yen", -points_net),
        ("merchant", tea, "point", -points_net), ("merchant", tea, "yen", points_net),
    ]
    assert {e[0] for e in entries} == {journal} and reference == runs.payout_key("2026-04", uuid.UUID(tea))
    assert (await points_of(sessionmaker, tea), await points_of(sessionmaker, tea, "yen")) == (0, 0)
    assert await ledger_violations(sessionmaker) == []

    summary = summary_of(await download(client, tokens, "2026-04", "summary.csv"))
    row = summary[tea]
    assert (int(row["決済"]), int(row["手数料"]), int(row["ポイント換金"])) == (mixed.amount, -mixed.fee, points_net)
    assert (int(row["差引支払額"]), int(row["振込額"]), int(row["次期繰越"]), int(row["ポイント次期繰越"])) == (
        yen_net + points_net, mixed.amount - mixed.fee, 0, 0)
    assert int(summary[town.merchants[STORE]]["ポイント換金"]) == 0

    content = await statement(client, tokens.auditor(), "2026-04", tea)
    figures = dict(line.split(",", 1) for line in content.decode("utf-8-sig").split("\r\n") if line.count(",") == 1)
    assert (int(figures["ポイント換金"]), int(figures["振込額"])) == (points_net, mixed.amount - mixed.fee)
    lines = statement_lines(content)
    assert sorted((r["種別"], int(r["金額"])) for r in lines) == sorted([
        ("決済", mixed.amount - mixed.point_amount), ("決済(ポイント)", mixed.point_amount),
        ("ポイント換金(ポイント)", -points_net), ("ポイント換金", points_net), ("振込", -(mixed.amount - mixed.fee)),
    ])
    assert {r["仕訳ID"] for r in lines if r["種別"].startswith("ポイント換金")} == {str(journal)}
    pdf = await statement(client, tokens.auditor(), "2026-04", tea, "pdf")
    assert pdf.startswith(b"%PDF")

    # The statements sum to the transfer file; the files are the same bytes when made again.
    transfers = zengin_reader.read(await download(client, tokens, "2026-04", "zengin.txt"))
    assert int(transfers.trailer["total"]) == sum(int(r["振込額"]) for r in summary.values())
    first = await all_files(sessionmaker, "2026-04")
    again = await settle(client, tokens, "2026-04", status=200)
    assert again["id"] == run["id"] and await all_files(sessionmaker, "2026-04") == first
    assert len(await redemptions(sessionmaker)) == 4


async def test_below_the_minimum_the_redeemed_points_carry_over_as_yen(client, tokens, town, clock, sessionmaker):
    await accounts(client, tokens, town, TEAHOUSE)
    response = await client.put("/v1/settlement/payout-settings", json={"on_demand_fee": 0, "minimum_payout": 2000},
                                headers=idem(tokens.operator()))
    assert response.status_code == 200
    april = await points_paid(sessionmaker, clock, town, jst(2026, 4, 10, 10), 1000, 1000)
    tea = town.merchants[TEAHOUSE]
    clock.set(AFTER_APRIL)
    await settle(client, tokens, "2026-04")
    row = summary_of(await download(client, tokens, "2026-04", "summary.csv"))[tea]
    net = april.amount - april.fee
    assert (row["状態"], int(row["ポイント換金"]), int(row["振込額"]), int(row["次期繰越"]),
            int(row["ポイント次期繰越"])) == ("繰越", net, 0, net, 0)
    assert (await points_of(sessionmaker, tea), await points_of(sessionmaker, tea, "yen")) == (0, net)

    may = await pay(sessionmaker, clock, town, jst(2026, 5, 10, 10), 1500)
    clock.set(AFTER_MAY)
    await settle(client, tokens, "2026-05")
    row = summary_of(await download(client, tokens, "2026-05", "summary.csv"))[tea]
    assert (int(row["前期繰越"]), int(row["ポイント換金"]), int(row["振込額"]), row["状態"]) == (
        net, 0, net + may.amount - may.fee, "振込")
    assert len(await redemptions(sessionmaker)) == 4  # April's only
    assert await ledger_violations(sessionmaker) == []


async def test_a_held_back_merchant_keeps_its_points_as_points_until_it_can_be_paid(
    client, tokens, town, clock, sessionmaker,
):
    await accounts(client, tokens, town)  # the source account only: the teahouse has none
    paid = await points_paid(sessionmaker, clock, town, jst(2026, 4, 10, 10), 600, 1000)
    fee_point = await point_fee(sessionmaker, paid)
    tea = town.merchants[TEAHOUSE]
    clock.set(AFTER_APRIL)
    await settle(client, tokens, "2026-04")
    points_net = paid.point_amount - fee_point
    yen_net = paid.amount - paid.fee - points_net
    held = {r["加盟店ID"]: r for r in table(await download(client, tokens, "2026-04", "held-back.csv"))}
    assert (int(held[tea]["保留額(次期繰越)"]), int(held[tea]["保留ポイント(次期繰越)"])) == (yen_net, points_net)
    row = summary_of(await download(client, tokens, "2026-04", "summary.csv"))[tea]
    assert (int(row["ポイント換金"]), int(row["差引支払額"]), int(row["ポイント次期繰越"])) == (0, yen_net, -points_net)
    assert await redemptions(sessionmaker) == []
    assert await points_of(sessionmaker, tea) == points_net

    await accounts(client, tokens, town, TEAHOUSE)
    clock.set(AFTER_MAY)
    await settle(client, tokens, "2026-05")
    row = summary_of(await download(client, tokens, "2026-05", "summary.csv"))[tea]
    assert (int(row["前期繰越"]), int(row["ポイント前期繰越"]), int(row["ポイント換金"]), int(row["振込額"])) == (
        yen_net, points_net, points_net, paid.amount - paid.fee)
    assert (await points_of(sessionmaker, tea), await points_of(sessionmaker, tea, "yen")) == (0, 0)
    assert await ledger_violations(sessionmaker) == []


async def test_a_redemption_is_made_once_per_key(client, tokens, town, clock, sessionmaker):
    """A retried run finds its redemption by the key; the key of another merchant or amount is
    refused, and nothing changes."""
    await accounts(client, tokens, town, TEAHOUSE)
    await points_paid(sessionmaker, clock, town, jst(2026, 4, 10, 10), 800, 800)
    tea = uuid.UUID(town.merchants[TEAHOUSE])
    clock.set(AFTER_APRIL)
    await settle(client, tokens, "2026-04")
    [(journal, _, _, _, _, amount), *_] = await redemptions(sessionmaker)
    key = runs.payout_key("2026-04", tea)
    before = await snapshot(sessionmaker)
    async with sessionmaker() as s, s.begin():
        made = await public.redeem_points(s, clock, region=REGION, actor=CITY, merchant_id=tea, amount=amount, key=key)
    assert (made.journal_id, made.amount) == (journal, amount)
    for merchant_id, asked in ((tea, amount + 1), (uuid.UUID(town.merchants[STORE]), amount)):
        async with sessionmaker() as s, s.begin():
            try:
                await public.redeem_points(s, clock, region=REGION, actor=CITY, merchant_id=merchant_id,
                                           amount=asked, key=key)
            except Problem as refused:
                assert (refused.status, refused.slug) == (409, "redemption-key-reused")
            else:
                raise AssertionError("the key was reused")
    async with sessionmaker() as s, s.begin():  # a fresh key: the shop holds no points any more
        try:
            await public.redeem_points(s, clock, region=REGION, actor=CITY, merchant_id=tea, amount=1, key="other")
        except Problem as refused:
            assert (refused.status, refused.slug, refused.extra["balance"]) == (409, "redemption-exceeds-points", 0)
        else:
            raise AssertionError("redeemed points the shop does not hold")
    assert await snapshot(sessionmaker) == before


async def test_two_runs_at_once_redeem_once(client, tokens, town, clock, sessionmaker):
    await accounts(client, tokens, town, TEAHOUSE)
    await points_paid(sessionmaker, clock, town, jst(2026, 4, 10, 10), 700, 1000)
    clock.set(AFTER_APRIL)
    answers = await asyncio.gather(*(client.post("/v1/settlement/runs", json={"period": "2026-04"},
                                                 headers=idem(tokens.operator())) for _ in range(2)))
    assert sorted(a.status_code for a in answers) in ([200, 201], [201, 409]), [a.text for a in answers]
    assert len({e[0] for e in await redemptions(sessionmaker)}) == 1
    assert await ledger_violations(sessionmaker) == []


async def test_a_redemption_of_another_shape_is_refused_when_posted_and_found_by_verify(town, clock, sessionmaker):
    async with sessionmaker() as s, s.begin():
        region = await directory_repo.region_by_code(s, REGION)
        shop = {a.unit: a for a in await directory_repo.merchant_accounts(s, uuid.UUID(town.merchants[TEAHOUSE]))}
        store = {a.unit: a for a in await directory_repo.merchant_accounts(s, uuid.UUID(town.merchants[STORE]))}
        fund = {u: await ledger_repo.system_account(s, region.id, AccountKind.CAMPAIGN_FUND, u) for u in ("yen", "point")}
        for legs in ([ledger.Leg(shop["point"], -5), ledger.Leg(fund["point"], 5)],  # no yen paid for them
                     [ledger.Leg(shop["point"], -5), ledger.Leg(fund["point"], 5), ledger.Leg(fund["yen"], -5),
                      ledger.Leg(store["yen"], 5)]):  # another shop paid
            with pytest.raises(AssertionError, match="point redemption"):
                await ledger.post_journal(s, clock, region_id=region.id, kind=JournalKind.POINT_REDEMPTION,
                                          actor="test", legs=legs)
        # Written past the posting code, balanced per unit: verify names it.
        journal = uuid.uuid4()
        await s.execute(text(
            "INSERT INTO wallet.journals (id, region_id, kind, actor, created_at)"
            " VALUES (:j, :r, 'point_redemption', 'test', now())"), {"j": journal, "r": region.id})
        for account, amount in ((shop["point"], -5), (fund["point"], 5), (fund["yen"], -5), (store["yen"], 5)):
            await s.execute(text(
                "INSERT INTO wallet.entries (id, journal_id, account_id, region_id, unit, amount, created_at)"
                " VALUES (gen_random_uuid(), :j, :a, :r, :u, :amount, now())"),
                {"j": journal, "a": account.id, "r": region.id, "u": account.unit, "amount": amount})
        found = [v for v in await ledger_repo.find_violations(s, region.id) if v.subject == f"journal {journal}"]
        assert [(v.invariant, "point redemption" in v.detail) for v in found] == [(4, True)]
        await s.rollback()


async def test_a_refund_of_points_already_redeemed_is_refused_and_nothing_changes(
    client, tokens, town, clock, sessionmaker,
):
    await accounts(client, tokens, town, TEAHOUSE)
    await refunds_allowed_for(sessionmaker, 90)
    paid = await points_paid(sessionmaker, clock, town, jst(2026, 4, 10, 10), 800, 800)
    clock.set(AFTER_APRIL)
    await settle(client, tokens, "2026-04")
    tea = town.merchants[TEAHOUSE]
    await pay(sessionmaker, clock, town, jst(2026, 5, 2, 10), 3000)  # the shop holds yen, but no points
    before = await snapshot(sessionmaker)
    response = await client.post(f"/v1/payments/{paid.id}/refunds", json={"amount": 800},
                                 headers=idem(tokens.merchant_staff(tea)))
    body = assert_problem(response, 402, "insufficient-balance")
    assert body["balance"] == 0
    assert await snapshot(sessionmaker) == before
    assert await ledger_violations(sessionmaker) == []
