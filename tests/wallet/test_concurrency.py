"""Invariant 3 under concurrency: simultaneous debits never overspend; the cap holds under
simultaneous credits; crediting one account from many transactions loses nothing."""

from __future__ import annotations

import asyncio

from services.wallet.directory import repository as directory_repo
from services.wallet.directory import service as directory
from services.wallet.ledger import lots
from services.wallet.ledger import repository as ledger_repo
from services.wallet.ledger import service as ledger
from services.wallet.ledger.errors import InsufficientBalance
from services.wallet.ledger.models import AccountKind, JournalKind, LotSource
from services.wallet.payments import repository as payments_repo
from services.wallet.payments import service as payments
from services.wallet.payments.models import PaymentMethod
from shared.money import Unit
from tests.helpers import idem, ledger_violations


async def test_50_concurrent_debits_of_one_wallet_never_overspend(client, tokens, town, sessionmaker):
    wallet = (await client.get("/v1/wallet", headers=tokens.resident())).json()
    assert wallet["balance"] == 30_000
    operator = tokens.operator()

    responses = await asyncio.gather(
        *[
            client.post(
                f"/v1/wallets/{wallet['id']}/cashouts", json={"amount": 1_000, "reason": "moving_away"},
                headers=idem(operator),
            )
            for _ in range(50)
        ]
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 30 + [402] * 20
    balances_seen = sorted(r.json()["balance_after"] for r in responses if r.status_code == 201)
    assert balances_seen == list(range(0, 30_000, 1_000))  # each debit saw a distinct, exact balance
    final = (await client.get("/v1/wallet", headers=tokens.resident())).json()
    assert final["balance"] == 0
    assert await ledger_violations(sessionmaker) == []


async def test_concurrent_topups_never_pass_the_cap(client, tokens, town, sessionmaker):
    wallet = (await client.get("/v1/wallet", headers=tokens.resident())).json()
    responses = await asyncio.gather(
        *[
            client.post(f"/v1/wallets/{wallet['id']}/topups", json={"amount": 10_000}, headers=idem(tokens.operator()))
            for _ in range(12)
        ]
    )
    assert sorted(r.status_code for r in responses) == [201] * 7 + [409] * 5
    assert (await client.get("/v1/wallet", headers=tokens.resident())).json()["balance"] == 100_000
    assert await ledger_violations(sessionmaker) == []


async def test_debits_of_an_untracked_account_serialize_and_never_overdraw(sessionmaker, town, clock):
    """Merchant accounts keep no balance column (credits take no lock); their debits lock the
    row and sum the entries. Fund a merchant, then race 20 debits of a third of it each."""
    async with sessionmaker() as s, s.begin():
        region = await directory_repo.region_by_code(s, "aizu")
        merchant = await directory_repo.merchant_account(s, town.merchants["Minato Farm"], Unit.YEN.value)
        clearing = await ledger_repo.system_account(s, region.id, AccountKind.BANK_CLEARING, Unit.YEN.value)
        # A payment of 9,000 leaves the farm 8,820 after the 2 % fee; each debit is a third of it.
        store = (await payments_repo.stores(s, merchant.merchant_id))[0]
        await payments.pay(s, clock, region=await directory.region_identity(s, "aizu"), store_id=store.id,
                           amount=9_000, method=PaymentMethod.MPM_STATIC, subject="resident-hanako")

    async def debit() -> bool:
        async with sessionmaker() as s:
            try:
                async with s.begin():
                    await ledger.post_journal(
                        s, clock, region_id=region.id, kind=JournalKind.PAYOUT, actor="test",
                        legs=[ledger.Leg(merchant, -2_940), ledger.Leg(clearing, 2_940)],
                    )
                return True
            except InsufficientBalance:
                return False

    outcomes = await asyncio.gather(*[debit() for _ in range(20)])
    assert outcomes.count(True) == 3
    async with sessionmaker() as s:
        assert await ledger_repo.entries_sum(s, merchant.id) == 0
    assert await ledger_violations(sessionmaker) == []


async def test_many_concurrent_credits_to_one_account_all_land(client, tokens, town, sessionmaker):
    """Every top-up debits the one counter-cash account; none may be lost."""
    residents = [f"resident-{i:03}" for i in range(40)]
    wallets = [(await client.get("/v1/wallet", headers=tokens.resident(r))).json()["id"] for r in residents]
    responses = await asyncio.gather(
        *[client.post(f"/v1/wallets/{w}/topups", json={"amount": 1_000}, headers=idem(tokens.operator())) for w in wallets]
    )
    assert all(r.status_code == 201 for r in responses)
    accounts = {a["kind"]: a["balance"] for a in (await client.get("/v1/accounts", headers=tokens.operator())).json()}
    assert accounts["counter_cash"] == -(30_000 + 12_000 + 5_000 + 40 * 1_000)
    assert await ledger_violations(sessionmaker) == []


async def test_journals_locking_the_same_wallets_in_opposite_order_do_not_deadlock(sessionmaker, town, clock):
    """Legs are locked in account-id order whatever order the caller lists them in; without that,
    these pairs would deadlock (PostgreSQL would abort one of each pair)."""
    async with sessionmaker() as s:
        region = await directory_repo.region_by_code(s, "aizu")
        hanako = (await directory_repo.resident_wallet(s, region.id, "resident-hanako", Unit.YEN.value))[1]
        taro = (await directory_repo.resident_wallet(s, region.id, "resident-taro", Unit.YEN.value))[1]
        cash = await ledger_repo.system_account(s, region.id, AccountKind.COUNTER_CASH, Unit.YEN.value)

    async def household_topup(first, second) -> None:
        async with sessionmaker() as s, s.begin():
            posted = await ledger.post_journal(
                s, clock, region_id=region.id, kind=JournalKind.TOPUP, actor="test",
                legs=[ledger.Leg(first, 1_000), ledger.Leg(second, 1_000), ledger.Leg(cash, -2_000)],
            )
            for account in (first, second):  # a wallet's balance is its lots
                await lots.issue(s, account=account, amount=1_000, source=LotSource.TOPUP,
                                 journal_id=posted.journal_id, rule=lots.LotRule(), now=clock.now())

    await asyncio.gather(*[household_topup(*((hanako, taro) if i % 2 else (taro, hanako))) for i in range(30)])
    async with sessionmaker() as s:
        assert (await ledger_repo.account(s, hanako.id)).balance == 30_000 + 30 * 1_000
        assert (await ledger_repo.account(s, taro.id)).balance == 12_000 + 30 * 1_000
    assert await ledger_violations(sessionmaker) == []
