"""Ledger invariants 1–5: property-based over random operation sequences, and proof that the
checker behind `chiikipay ledger verify` catches each kind of breakage."""

from __future__ import annotations

import itertools
import uuid

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.wallet import onboarding, verify
from shared.auth import Role
from tests.helpers import idem

RESIDENTS = ("resident-a", "resident-b", "resident-c")
regions = itertools.count()

amounts = st.one_of(st.integers(min_value=-2_000, max_value=120_000), st.sampled_from([1_000, 5_000, 10_000, 50_000]))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("topup"), st.sampled_from(RESIDENTS), amounts),
        st.tuples(st.just("cashout"), st.sampled_from(RESIDENTS), amounts),
        st.tuples(st.just("status"), st.sampled_from(RESIDENTS), st.sampled_from(["active", "suspended"])),
    ),
    min_size=1,
    max_size=25,
)


@hypothesis_settings(
    max_examples=40, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
async def test_random_operations_keep_every_invariant_and_match_a_model(client, tokens, sessionmaker, settings, clock, ops):
    code = f"prop{next(regions)}"
    async with sessionmaker() as s, s.begin():
        region = await onboarding.create_region(s, clock, settings, code=code, name=code, name_ja=code)
    operator = tokens.mint(Role.OPERATOR, "op", code)
    wallets = {r: (await client.get("/v1/wallet", headers=tokens.resident(r, code))).json()["id"] for r in RESIDENTS}
    model = {r: 0 for r in RESIDENTS}
    status = {r: "active" for r in RESIDENTS}

    for op, resident, arg in ops:
        wallet = wallets[resident]
        if op == "status":
            response = await client.patch(f"/v1/wallets/{wallet}", json={"status": arg}, headers=idem(operator))
            assert response.status_code == 200
            status[resident] = arg
            continue
        amount = arg
        if op == "topup":
            response = await client.post(f"/v1/wallets/{wallet}/topups", json={"amount": amount}, headers=idem(operator))
            valid = (
                amount >= settings.default_topup_min and amount <= settings.default_topup_max
                and amount % settings.default_topup_step == 0
            )
            fits = model[resident] + amount <= settings.default_balance_cap
            expect_ok = amount > 0 and valid and status[resident] == "active" and fits
        else:
            response = await client.post(
                f"/v1/wallets/{wallet}/cashouts", json={"amount": amount, "reason": "moving_away"}, headers=idem(operator)
            )
            expect_ok = amount > 0 and status[resident] == "active" and amount <= model[resident]
        assert response.status_code < 500, response.text
        assert (response.status_code in (200, 201)) == expect_ok, (op, resident, amount, model, response.text)
        if expect_ok:
            model[resident] += amount if op == "topup" else -amount
            assert response.json()["balance_after"] == model[resident]

    for resident, wallet in wallets.items():
        seen = (await client.get(f"/v1/wallets/{wallet}", headers=operator)).json()
        assert seen["balance"] == model[resident] >= 0
    async with sessionmaker() as s:
        assert await verify.verify_ledger(s, region.id) == []
        # Nothing was invented or lost: what sits in wallets is what the issuance accounts put out.
        total = (await s.execute(text("SELECT sum(amount) FROM wallet.entries WHERE region_id = :r"), {"r": region.id})).scalar()
        assert (total or 0) == 0


# --- the checker catches each kind of breakage --------------------------------------------------


async def _hanako_account(session):
    row = (await session.execute(text(
        "SELECT a.id, a.region_id FROM wallet.accounts a JOIN wallet.residents r ON r.id = a.resident_id "
        "WHERE r.subject = 'resident-hanako' AND a.unit = 'yen'"
    ))).one()
    return row.id, row.region_id


async def _system_account(session, kind):
    return (await session.execute(text("SELECT id FROM wallet.accounts WHERE kind = :k AND unit = 'yen'"), {"k": kind})).scalar_one()


async def _plant(session, region_id, kind, legs, balance_after=None):
    journal_id = uuid.uuid4()
    await session.execute(
        text("INSERT INTO wallet.journals VALUES (:id, :region, :kind, 'saboteur', NULL, NULL, now())"),
        {"id": journal_id, "region": region_id, "kind": kind},
    )
    for account_id, amount in legs:
        await session.execute(
            text(
                "INSERT INTO wallet.entries VALUES (:id, :journal, :account, :region, 'yen', :amount, :after, now())"
            ),
            {"id": uuid.uuid4(), "journal": journal_id, "account": account_id, "region": region_id,
             "amount": amount, "after": balance_after},
        )
    return journal_id


async def test_checker_finds_an_unbalanced_journal(sessionmaker, town):
    """The database refuses such a journal at commit (test_database_rules.py); one that got past
    it (the trigger disabled, a restore) is still found."""
    async with sessionmaker() as s, s.begin():
        await s.execute(text("ALTER TABLE wallet.entries DISABLE TRIGGER entries_balanced"))
        hanako, region = await _hanako_account(s)
        fee = await _system_account(s, "fee_income")
        journal = await _plant(s, region, "topup", [(fee, 500)])
        await s.execute(text("ALTER TABLE wallet.entries ENABLE TRIGGER entries_balanced"))
    async with sessionmaker() as s:
        found = await verify.verify_ledger(s)
    assert {(v.invariant, v.subject) for v in found} >= {(1, f"journal {journal}")}


async def test_checker_finds_a_balance_that_is_not_the_sum_of_entries(sessionmaker, town):
    async with sessionmaker() as s, s.begin():
        hanako, _ = await _hanako_account(s)
        await s.execute(text("UPDATE wallet.accounts SET balance = balance + 1 WHERE id = :id"), {"id": hanako})
    async with sessionmaker() as s:
        found = await verify.verify_ledger(s)
    assert any(v.invariant == 2 and v.subject == f"account {hanako}" and "30001" in v.detail for v in found)


async def test_checker_finds_a_negative_merchant_and_value_invented_outside_issuance(sessionmaker, town):
    async with sessionmaker() as s, s.begin():
        _, region = await _hanako_account(s)
        merchant = (await s.execute(text("SELECT id FROM wallet.accounts WHERE kind = 'merchant' AND unit = 'yen' LIMIT 1"))).scalar_one()
        fee = await _system_account(s, "fee_income")
        clearing = await _system_account(s, "bank_clearing")
        overdraft = await _plant(s, region, "cashout", [(merchant, -700), (clearing, 700)])
        invented = await _plant(s, region, "adjustment", [(fee, 900), (clearing, -900)])
    async with sessionmaker() as s:
        found = {(v.invariant, v.subject) for v in await verify.verify_ledger(s)}
    assert (3, f"account {merchant}") in found
    assert (4, f"journal {invented}") in found
    assert (4, f"journal {overdraft}") not in found  # a cash-out may touch bank clearing


async def test_a_clean_ledger_has_no_violations(sessionmaker, town):
    async with sessionmaker() as s:
        assert await verify.verify_ledger(s) == []


@pytest.mark.parametrize("statement", [
    "UPDATE wallet.entries SET amount = amount * 2",
    "DELETE FROM wallet.entries",
    "UPDATE wallet.journals SET kind = 'cashout'",
    "DELETE FROM platform.audit_events",
])
async def test_journals_entries_and_audit_trail_are_immutable(sessionmaker, town, statement):
    async with sessionmaker() as s:
        with pytest.raises(DBAPIError, match="append-only"):
            await s.execute(text(statement))
        await s.rollback()
