"""Merchants' payout bank accounts, the region's source account and payout settings
(/v1/settlement): who may set and read them, the zengin-code checks, the holder name as the
transfer file carries it; and every refusal leaves everything as it was."""

from __future__ import annotations

import uuid
from datetime import date

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from services.settlement import service, zengin
from services.settlement.errors import BankCodeUnknown, BranchCodeUnknown, PayoutAccountNotFound
from services.settlement.service import HoldReason
from tests.helpers import assert_problem, idem, snapshot
from tests.settlement import zengin_reader

TEAHOUSE, STORE, FARM = "Tsurugajo Teahouse", "Nanokamachi General Store", "Minato Farm"
ACCOUNT = {"bank_code": "0126", "branch_code": "401", "account_type": "ordinary", "account_number": "1234501",
           "holder_name": "ツルガジョウチャヤ"}
SOURCE = {"requester_code": "1234567890", "requester_name": "アイヅ チイキツウカ スイシンキョウギカイ",
          "bank_code": "0126", "branch_code": "416", "account_type": "current", "account_number": "0001234"}


def account_path(merchant_id: str) -> str:
    return f"/v1/settlement/merchants/{merchant_id}/payout-account"


async def put_account(client, headers, merchant_id: str, **changes):
    return await client.put(account_path(merchant_id), json={**ACCOUNT, **changes}, headers=idem(headers))


# --- payout accounts ------------------------------------------------------------------------------


async def test_the_operator_sets_a_merchants_payout_account_as_the_file_will_carry_it(client, tokens, town, sessionmaker):
    merchant_id = town.merchants[TEAHOUSE]
    response = await put_account(client, tokens.operator(), merchant_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body | {"updated_at": None} == {
        "merchant_id": merchant_id, "bank_code": "0126", "bank_name": "東邦", "branch_code": "401",
        "branch_name": "会津営業部", "account_type": "ordinary", "account_number": "1234501",
        "holder_name": "ﾂﾙｶﾞｼﾞﾖｳﾁﾔﾔ", "payable": True, "updated_by": "operator-aizu", "updated_at": None,
    }
    for reader in (tokens.auditor(), tokens.merchant_admin(merchant_id), tokens.operator()):
        got = await client.get(account_path(merchant_id), headers=reader)
        assert got.status_code == 200 and got.json() == body
    async with sessionmaker() as session:
        (event,) = (await session.execute(text(
            "SELECT actor_subject, before, after FROM platform.audit_events WHERE action = 'payout_account.set'"
        ))).all()
    assert event.actor_subject == "operator-aizu" and event.before is None
    assert event.after == {"bank_code": "0126", "branch_code": "401", "account_type": "ordinary",
                           "account_number": "1234501", "holder_name": "ﾂﾙｶﾞｼﾞﾖｳﾁﾔﾔ"}


async def test_a_merchant_admin_sets_its_own_and_replaces_it(client, tokens, town, sessionmaker):
    merchant_id = town.merchants[STORE]
    admin = tokens.merchant_admin(merchant_id)
    assert (await put_account(client, admin, merchant_id, holder_name="ｶ)ﾅﾉｶﾏﾁﾖﾛｽﾞﾔ")).status_code == 200
    replaced = await put_account(client, admin, merchant_id, bank_code="9900", branch_code="019",
                                 account_type="savings", account_number="7654321", holder_name="ﾅﾉｶﾏﾁ ﾖﾛｽﾞﾔ")
    assert replaced.status_code == 200
    assert (replaced.json()["bank_name"], replaced.json()["branch_name"]) == ("ゆうちょ", "〇一九")
    assert replaced.json()["updated_by"] == "shop-owner"
    async with sessionmaker() as session:
        before, after = (await session.execute(text(
            "SELECT before ->> 'bank_code', after ->> 'bank_code' FROM platform.audit_events "
            "WHERE action = 'payout_account.set' ORDER BY id DESC LIMIT 1"
        ))).one()
    assert (before, after) == ("0126", "9900")


async def test_unknown_bank_or_branch_codes_are_refused_and_nothing_is_stored(client, tokens, town, sessionmaker):
    merchant_id = town.merchants[TEAHOUSE]
    await put_account(client, tokens.operator(), merchant_id)
    before = await snapshot(sessionmaker)
    body = assert_problem(await put_account(client, tokens.operator(), merchant_id, bank_code="0002"), 422,
                          "bank-code-unknown")
    assert body["bank_code"] == "0002"
    body = assert_problem(await put_account(client, tokens.operator(), merchant_id, branch_code="999"), 422,
                          "branch-code-unknown")
    assert (body["bank_code"], body["branch_code"]) == ("0126", "999")
    assert await snapshot(sessionmaker) == before
    assert (await client.get(account_path(merchant_id), headers=tokens.operator())).json()["branch_code"] == "401"


async def test_a_holder_name_the_file_cannot_carry_is_refused_with_its_characters(client, tokens, town, sessionmaker):
    merchant_id = town.merchants[TEAHOUSE]
    before = await snapshot(sessionmaker)
    body = assert_problem(await put_account(client, tokens.operator(), merchant_id, holder_name="鶴ヶ城茶屋"), 422,
                          "holder-name-invalid")
    assert body["characters"] == ["鶴", "城", "茶", "屋"]
    assert_problem(await put_account(client, tokens.operator(), merchant_id, holder_name="ア" * 31), 422,
                   "holder-name-invalid")
    body = assert_problem(await put_account(client, tokens.operator(), merchant_id, holder_name="\u200bア\u2060"),
                          422, "holder-name-invalid")
    assert body["characters"] == ["U+200B", "U+2060"]  # invisible characters are named by number
    assert_problem(await put_account(client, tokens.operator(), merchant_id, holder_name="　"), 422,
                   "validation-error")
    for field, value in [("bank_code", "126"), ("branch_code", "4010"), ("account_number", "123456"),
                         ("account_type", "futsu")]:
        assert_problem(await put_account(client, tokens.operator(), merchant_id, **{field: value}), 422,
                       "validation-error")
    assert await snapshot(sessionmaker) == before
    assert_problem(await client.get(account_path(merchant_id), headers=tokens.operator()), 404,
                   "payout-account-not-found")


async def test_who_may_not_set_or_read_an_account(client, tokens, town, sessionmaker):
    teahouse, store = town.merchants[TEAHOUSE], town.merchants[STORE]
    await put_account(client, tokens.operator(), store)
    before = await snapshot(sessionmaker)
    assert_problem(await put_account(client, tokens.merchant_admin(teahouse), store), 404, "merchant-not-found")
    assert_problem(await put_account(client, tokens.merchant_staff(teahouse), teahouse), 403, "forbidden")
    assert_problem(await put_account(client, tokens.auditor(), teahouse), 403, "forbidden")
    assert_problem(await put_account(client, tokens.resident(), teahouse), 403, "forbidden")
    assert_problem(await put_account(client, tokens.operator(), str(uuid.uuid4())), 404, "merchant-not-found")
    assert_problem(await put_account(client, tokens.operator(region="other"), teahouse), 404, "region-not-found")
    assert await snapshot(sessionmaker) == before
    assert_problem(await client.get(account_path(store), headers=tokens.merchant_admin(teahouse)), 404,
                   "merchant-not-found")
    assert_problem(await client.get(account_path(store), headers=tokens.merchant_staff(store)), 403, "forbidden")
    assert_problem(await client.get("/v1/settlement/payout-accounts", headers=tokens.merchant_admin(store)), 403,
                   "forbidden")


async def test_a_retry_with_the_same_key_sets_nothing_twice(client, tokens, town, sessionmaker):
    merchant_id = town.merchants[TEAHOUSE]
    headers = idem(tokens.operator())
    first = await client.put(account_path(merchant_id), json=ACCOUNT, headers=headers)
    before = await snapshot(sessionmaker)
    again = await client.put(account_path(merchant_id), json=ACCOUNT, headers=headers)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await client.put(account_path(merchant_id), json={**ACCOUNT, "account_number": "7777777"}, headers=headers)
    assert_problem(other, 422, "idempotency-key-reused")
    assert await snapshot(sessionmaker) == before
    assert_problem(await client.put(account_path(merchant_id), json=ACCOUNT, headers=tokens.operator()), 400,
                   "idempotency-key-missing")


async def test_the_operator_lists_the_regions_accounts_page_by_page(client, tokens, town):
    for name in (TEAHOUSE, STORE, FARM):
        assert (await put_account(client, tokens.operator(), town.merchants[name])).status_code == 200
    first = await client.get("/v1/settlement/payout-accounts?limit=2", headers=tokens.auditor())
    assert first.status_code == 200 and len(first.json()["items"]) == 2 and first.json()["next_cursor"]
    rest = await client.get(f"/v1/settlement/payout-accounts?limit=2&cursor={first.json()['next_cursor']}",
                            headers=tokens.auditor())
    listed = [a["merchant_id"] for a in first.json()["items"] + rest.json()["items"]]
    assert rest.json()["next_cursor"] is None
    assert listed == sorted({town.merchants[n] for n in (TEAHOUSE, STORE, FARM)}, reverse=True)


async def test_the_database_refuses_an_account_the_file_could_not_carry(town, sessionmaker):
    """Whichever code writes the row: the table's checks repeat the service's rules."""
    merchant_id = town.merchants[TEAHOUSE]
    insert = text(
        "INSERT INTO settlement.payout_accounts VALUES (:region, :merchant, '0126', '401', 'ordinary', '1234501', "
        ":holder, 'test', now())"
    )
    async with sessionmaker() as session:
        region = (await session.execute(text("SELECT id FROM wallet.regions WHERE code = 'aizu'"))).scalar_one()
    for holder, stored in [("ﾂﾙｶﾞｼﾞﾖｳ ﾁﾔﾔ(ｶ", True), ("ﾂﾙｶﾞｼﾞｮｳ", False), ("ﾐﾅﾄﾌｱｰﾑ", False), ("tsuru", False),
                           ("ツル", False), ("ｱ" * 31, False), ("", False)]:
        async with sessionmaker() as session:
            try:
                await session.execute(insert, {"region": region, "merchant": merchant_id, "holder": holder})
            except IntegrityError:
                assert not stored, holder
            else:
                assert stored, holder
            await session.rollback()


# --- what a run reads ------------------------------------------------------------------------------------


async def test_a_run_gets_every_merchant_either_payable_or_held_back_with_the_reason(client, tokens, town, sessionmaker):
    teahouse, store, farm, bus = (town.merchants[n] for n in (TEAHOUSE, STORE, FARM, "Aizu Bus"))
    await put_account(client, tokens.operator(), teahouse)
    await put_account(client, tokens.operator(), store, holder_name="ﾅﾉｶﾏﾁ")
    await put_account(client, tokens.operator(), farm, holder_name="ﾐﾅﾄ")
    async with sessionmaker() as session, session.begin():
        # Bank data moves on: the store's bank and the farm's branch are no longer in the data.
        await session.execute(text("UPDATE settlement.payout_accounts SET bank_code = '0002' WHERE merchant_id = :m"),
                              {"m": store})
        await session.execute(text("UPDATE settlement.payout_accounts SET branch_code = '999' WHERE merchant_id = :m"),
                              {"m": farm})
    ids = [uuid.UUID(m) for m in (teahouse, store, farm, bus)]
    async with sessionmaker() as session:
        payees = await service.accounts_for(session, region="aizu", merchant_ids=ids)
        assert set(payees.payable) == {ids[0]}
        assert payees.held_back == {ids[1]: HoldReason.BANK_UNKNOWN, ids[2]: HoldReason.BRANCH_UNKNOWN,
                                    ids[3]: HoldReason.NO_ACCOUNT}
        payee = payees.payable[ids[0]]
        assert payee.account == zengin.Account("0126", "ﾄｳﾎｳ", "401", "ｱｲﾂﾞ", zengin.AccountType.ORDINARY, "1234501")
        assert payee.holder_name == "ﾂﾙｶﾞｼﾞﾖｳﾁﾔﾔ"
        assert await service.account_of(session, region="aizu", merchant_id=ids[0]) == payee
        for merchant_id, refusal in [(ids[1], BankCodeUnknown), (ids[2], BranchCodeUnknown),
                                     (ids[3], PayoutAccountNotFound)]:
            try:
                await service.account_of(session, region="aizu", merchant_id=merchant_id)
            except refusal:
                pass
            else:
                raise AssertionError(f"{merchant_id} was not refused with {refusal.slug}")
    shown = (await client.get(account_path(farm), headers=tokens.operator())).json()
    assert (shown["payable"], shown["branch_name"]) == (False, None)


async def test_what_a_run_reads_writes_a_transfer_file_the_independent_reader_accepts(client, tokens, town, sessionmaker):
    teahouse, store = town.merchants[TEAHOUSE], town.merchants[STORE]
    await client.put("/v1/settlement/source-account", json=SOURCE, headers=idem(tokens.operator()))
    await put_account(client, tokens.operator(), teahouse)
    await put_account(client, tokens.operator(), store, bank_code="9900", branch_code="019", holder_name="ﾅﾉｶﾏﾁ")
    async with sessionmaker() as session:
        requester = await service.requester(session, region="aizu")
        payees = await service.accounts_for(session, region="aizu", merchant_ids=[uuid.UUID(teahouse), uuid.UUID(store)])
    content = zengin.write(requester, date(2026, 11, 16), [
        zengin.Transfer(p.account, p.holder_name, amount) for p, amount in zip(payees.payable.values(), (98_000, 1_500))
    ])
    parsed = zengin_reader.read(content)
    assert (parsed.header["requester_name"], parsed.header["bank_name"], parsed.header["branch_name"],
            parsed.header["account_type"]) == ("ｱｲﾂﾞ ﾁｲｷﾂｳｶ ｽｲｼﾝｷﾖｳｷﾞｶｲ", "ﾄｳﾎｳ", "ｱｲﾂﾞﾜｶﾏﾂｼﾔｸｼﾖ", "2")
    assert [(d["bank_name"], d["payee_name"], int(d["amount"])) for d in parsed.data] == [
        ("ﾄｳﾎｳ", "ﾂﾙｶﾞｼﾞﾖｳﾁﾔﾔ", 98_000), ("ﾕｳﾁﾖ", "ﾅﾉｶﾏﾁ", 1_500)]
    assert int(parsed.trailer["total"]) == 99_500


# --- the source account ----------------------------------------------------------------------------------


async def test_the_operator_sets_the_source_account_and_the_auditor_reads_it(client, tokens, town, sessionmaker):
    assert_problem(await client.get("/v1/settlement/source-account", headers=tokens.auditor()), 404,
                   "source-account-not-found")
    response = await client.put("/v1/settlement/source-account", json=SOURCE, headers=idem(tokens.operator()))
    assert response.status_code == 200, response.text
    assert response.json() | {"updated_at": None} == {
        "requester_code": "1234567890", "requester_name": "ｱｲﾂﾞ ﾁｲｷﾂｳｶ ｽｲｼﾝｷﾖｳｷﾞｶｲ", "bank_code": "0126",
        "bank_name": "東邦", "branch_code": "416", "branch_name": "会津若松市役所", "account_type": "current",
        "account_number": "0001234", "updated_by": "operator-aizu", "updated_at": None,
    }
    assert (await client.get("/v1/settlement/source-account", headers=tokens.auditor())).json() == response.json()
    before = await snapshot(sessionmaker)
    source = "/v1/settlement/source-account"
    assert_problem(await client.put(source, json={**SOURCE, "requester_name": "会津地域通貨推進協議会"},
                                    headers=idem(tokens.operator())), 422, "requester-name-invalid")
    assert_problem(await client.put(source, json={**SOURCE, "requester_name": "ア" * 41},
                                    headers=idem(tokens.operator())), 422, "requester-name-invalid")
    assert_problem(await client.put(source, json={**SOURCE, "bank_code": "0003"}, headers=idem(tokens.operator())),
                   422, "bank-code-unknown")
    assert_problem(await client.put(source, json={**SOURCE, "branch_code": "000"}, headers=idem(tokens.operator())),
                   422, "branch-code-unknown")
    assert_problem(await client.put(source, json={**SOURCE, "requester_code": "12345"},
                                    headers=idem(tokens.operator())), 422, "validation-error")
    for caller in (tokens.auditor(), tokens.merchant_admin(town.merchants[TEAHOUSE])):
        assert_problem(await client.put(source, json=SOURCE, headers=idem(caller)), 403, "forbidden")
    assert await snapshot(sessionmaker) == before
    assert_problem(await client.get(source, headers=tokens.merchant_admin(town.merchants[TEAHOUSE])), 403, "forbidden")


async def test_a_run_without_a_source_account_writes_no_file(town, sessionmaker):
    async with sessionmaker() as session:
        try:
            await service.requester(session, region="aizu")
        except service.SourceAccountNotFound:
            return
    raise AssertionError("a requester without a source account")


# --- payout settings ---------------------------------------------------------------------------------------


async def test_payout_settings_default_to_none_and_the_operator_sets_them(client, tokens, town, sessionmaker):
    path = "/v1/settlement/payout-settings"
    shop = tokens.merchant_staff(town.merchants[TEAHOUSE])
    assert (await client.get(path, headers=shop)).json() == {
        "on_demand_fee": 0, "minimum_payout": 0, "updated_by": None, "updated_at": None}
    response = await client.put(path, json={"on_demand_fee": 200, "minimum_payout": 3_000}, headers=idem(tokens.operator()))
    assert response.status_code == 200
    assert (await client.get(path, headers=shop)).json() == response.json()
    assert response.json()["on_demand_fee"] == 200 and response.json()["updated_by"] == "operator-aizu"
    before = await snapshot(sessionmaker)
    for body in ({"on_demand_fee": -1, "minimum_payout": 0}, {"on_demand_fee": 1.5, "minimum_payout": 0},
                 {"on_demand_fee": 100, "minimum_payout": False}, {"on_demand_fee": "100", "minimum_payout": 0},
                 {"on_demand_fee": 100}, {"on_demand_fee": 100, "minimum_payout": 0, "extra": 1}):
        assert_problem(await client.put(path, json=body, headers=idem(tokens.operator())), 422, "validation-error")
    assert_problem(await client.put(path, json={"on_demand_fee": 0, "minimum_payout": 0},
                                    headers=idem(tokens.merchant_admin(town.merchants[TEAHOUSE]))), 403, "forbidden")
    assert await snapshot(sessionmaker) == before
    async with sessionmaker() as session:
        assert (await service.payout_settings(session, region="aizu")).on_demand_fee == 200


@hypothesis_settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(alphabet=st.sampled_from(sorted(zengin.ZENGIN_CHARACTERS | set("ｧｰｯabcアあ山@\\~_"))),
                    max_size=32) | st.text(max_size=32).filter(lambda s: "\x00" not in s))
async def test_the_tables_holder_name_check_is_the_files_character_set(sessionmaker, name):
    """The database's check on holder names (as the database holds it) and zengin.ZENGIN_CHARACTERS
    agree on every name: no stored name the file could not carry, none the service makes refused."""
    async with sessionmaker() as session:
        definition = (await session.execute(text(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'ck_payout_accounts_holder_name'"
        ))).scalar_one()
        pattern = definition.split("'")[1]
        accepted = (await session.execute(text("SELECT CAST(:name AS text) ~ :pattern"),
                                          {"name": name, "pattern": pattern})).scalar_one()
    assert accepted == (1 <= len(name) <= 30 and set(name) <= zengin.ZENGIN_CHARACTERS)
