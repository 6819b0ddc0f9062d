"""Point grants: one at a time and by CSV, from the campaign's budget, idempotent per row key;
partner keys scoped to one campaign; every refusal changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import text

from services.wallet import access, onboarding
from services.wallet.grants import service as grants_service
from services.wallet.grants import tasks
from shared.audit import Actor
from shared.auth import Principal, Role
from tests.helpers import assert_problem, idem, ledger_violations, snapshot

HANAKO, TARO, SACHIKO = "resident-hanako", "resident-taro", "resident-sachiko"
TODAY = "2026-04-01"  # START in tests/conftest.py, in Tokyo
HEADER = "row_key,wallet_id,amount,category,event_id,activity_date,memo\n"


@pytest.fixture(autouse=True)
async def no_worker_left_behind():
    yield
    await tasks.drain()


async def other_region(sessionmaker, clock, settings) -> None:

    async with sessionmaker() as session, session.begin():
        await onboarding.create_region(session, clock, settings, code="sapporo", name="Sapporo", name_ja="札幌市")


async def make_campaign(client, tokens, *, budget: int = 100_000, kind: str = "grant", name: str = "Health points",
                        **rules: Any) -> dict[str, Any]:
    created = await client.post(
        "/v1/campaigns", json={"kind": kind, "name": name, "name_ja": "健康ポイント", **rules},
        headers=idem(tokens.operator()),
    )
    assert created.status_code == 201, created.text
    campaign = created.json()
    if budget:
        funded = await client.post(f"/v1/campaigns/{campaign['id']}/funding", json={"amount": budget},
                                   headers=idem(tokens.operator()))
        assert funded.status_code == 201, funded.text
    return campaign


async def budget_of(client, tokens, campaign: dict[str, Any]) -> int:
    return (await client.get(f"/v1/campaigns/{campaign['id']}", headers=tokens.operator())).json()["budget"]


async def points_of(client, tokens, subject: str = HANAKO) -> int:
    return (await client.get("/v1/wallet", headers=tokens.resident(subject))).json()["points"]


def wallet_id(town, subject: str = HANAKO) -> str:
    return town.residents[subject][0]


def grant_body(town, subject: str = HANAKO, **overrides: Any) -> dict[str, Any]:
    return {"wallet_id": wallet_id(town, subject), "amount": 500, "category": "health_event",
            "event_id": "walk-2026-03", "activity_date": "2026-03-29", "row_key": f"row-{uuid.uuid4()}",
            **overrides}


async def values(sessionmaker) -> dict[str, Any]:
    """Everything that holds or records value (balances, journals, entries, lots, grants), without
    the audit trail, idempotency records and the upload's own record (its file, status, progress
    and errors) that a refused upload rightly leaves behind."""
    snap = await snapshot(sessionmaker)
    for table in ("platform.audit_events", "platform.idempotency_keys"):
        snap["counts"].pop(table)
    for table in ("wallet.grant_uploads", "wallet.grant_upload_files", "wallet.grant_upload_errors"):
        snap["rows"].pop(table)
    return snap


async def upload(client, headers, campaign, body: str | bytes, key: str | None = None):
    content = body.encode() if isinstance(body, str) else body
    return await client.post(
        f"/v1/campaigns/{campaign['id']}/grant-uploads", content=content,
        headers={**idem(headers, key), "Content-Type": "text/csv"},
    )


async def finished(client, headers, location: str) -> dict[str, Any]:
    for _ in range(2_000):
        response = await client.get(location, headers=headers)
        assert response.status_code == 200, response.text
        if response.json()["status"] not in ("validating", "granting"):
            return response.json()
        await asyncio.sleep(0.01)
    raise AssertionError(f"upload still {response.json()['status']}")


async def upload_and_wait(client, headers, campaign, body: str | bytes) -> dict[str, Any]:
    accepted = await upload(client, headers, campaign, body)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["status"] == "validating"
    return await finished(client, headers, accepted.headers["Location"])


def csv_rows(*rows: tuple[Any, ...]) -> str:
    return HEADER + "".join(",".join(str(v) for v in row) + "\n" for row in rows)


# --- single grants ----------------------------------------------------------------------------


async def test_a_grant_gives_points_in_a_lot_with_the_campaign_rules_and_draws_on_the_budget(
    client, tokens, town, sessionmaker
):
    campaign = await make_campaign(client, tokens, budget=10_000, expiry_months=6, restriction=["shotengai"])
    body = grant_body(town, amount=1_200, memo="Tsuruga Castle walk")
    response = await client.post(f"/v1/campaigns/{campaign['id']}/grants", json=body,
                                 headers={**idem(tokens.operator()), "X-Request-ID": "req-grant-1"})
    assert response.status_code == 201, response.text
    grant = response.json()
    assert grant["amount"] == 1_200 and grant["row_key"] == body["row_key"] and grant["wallet_id"] == body["wallet_id"]
    assert grant["category"] == "health_event" and grant["activity_date"] == "2026-03-29"
    assert grant["fiscal_year"] == 2026 and grant["actor"] == "operator-aizu"
    # Granted on 1 April 2026 with a six-month rule: usable until the end of October (Tokyo).
    assert grant["expires_at"] == "2026-10-31T15:00:00Z"

    assert await points_of(client, tokens) == 1_200
    assert (await client.get("/v1/wallet", headers=tokens.resident())).json()["balance"] == 30_000  # coin untouched
    assert await budget_of(client, tokens, campaign) == 8_800
    async with sessionmaker() as session:
        lot = (await session.execute(text(
            "SELECT unit, source, campaign_id, journal_id, restriction, expires_at, amount, remaining "
            "FROM wallet.lots WHERE id = :id"), {"id": grant["lot_id"]})).one()
    assert lot.unit == "point" and lot.source == "grant" and str(lot.campaign_id) == campaign["id"]
    assert str(lot.journal_id) == grant["journal_id"] and lot.restriction == ["shotengai"]
    assert lot.amount == lot.remaining == 1_200 and lot.expires_at.isoformat() == "2026-10-31T15:00:00+00:00"

    history = (await client.get("/v1/wallet/history", headers=tokens.resident())).json()["items"]
    assert (history[0]["kind"], history[0]["unit"], history[0]["amount"], history[0]["balance_after"]) == (
        "grant", "point", 1_200, 1_200)
    assert history[0]["journal_id"] == grant["journal_id"] and history[0]["memo"] == "Tsuruga Castle walk"

    event = (await client.get("/v1/audit-events", headers=tokens.auditor())).json()["items"][0]
    assert event["action"] == "grant.create" and event["target_id"] == grant["id"]
    assert event["actor_role"] == "operator" and event["request_id"] == "req-grant-1"
    assert event["after"]["amount"] == 1_200 and event["after"]["budget_after"] == 8_800

    listed = (await client.get(f"/v1/campaigns/{campaign['id']}/grants", headers=tokens.auditor())).json()
    assert [g["id"] for g in listed["items"]] == [grant["id"]]
    one = await client.get(f"/v1/campaigns/{campaign['id']}/grants/{grant['id']}", headers=tokens.operator())
    assert one.json() == grant
    assert await ledger_violations(sessionmaker) == []


async def test_points_are_not_held_to_the_yen_balance_cap(client, tokens, town, sessionmaker):
    campaign = await make_campaign(client, tokens, budget=500_000)
    response = await client.post(f"/v1/campaigns/{campaign['id']}/grants",
                                 json=grant_body(town, amount=150_000), headers=idem(tokens.operator()))
    assert response.status_code == 201, response.text
    assert await points_of(client, tokens) == 150_000
    assert await ledger_violations(sessionmaker) == []


async def test_a_row_key_grants_once_and_refuses_other_content(client, tokens, town, sessionmaker):
    campaign = await make_campaign(client, tokens)
    body = grant_body(town)
    first = await client.post(f"/v1/campaigns/{campaign['id']}/grants", json=body, headers=idem(tokens.operator()))
    assert first.status_code == 201
    before = await snapshot(sessionmaker)

    # Same row key and content under a new Idempotency-Key (a partner's retry after a timeout).
    again = await client.post(f"/v1/campaigns/{campaign['id']}/grants", json={**body, "memo": "retry"},
                              headers=idem(tokens.operator()))
    assert again.status_code == 200, again.text
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    after_replay = await snapshot(sessionmaker)
    assert after_replay["accounts"] == before["accounts"]
    assert after_replay["rows"]["wallet.journals"] == before["rows"]["wallet.journals"]

    for change in ({"amount": 501}, {"event_id": "other-event"}, {"activity_date": "2026-03-30"},
                   {"category": "volunteering"}, {"wallet_id": wallet_id(town, TARO)}):
        before = await snapshot(sessionmaker)
        refused = await client.post(f"/v1/campaigns/{campaign['id']}/grants", json={**body, **change},
                                    headers=idem(tokens.operator()))
        problem = assert_problem(refused, 409, "row-key-reused")
        assert problem["grant_id"] == first.json()["id"] and problem["differs"] == list(change)
        assert await snapshot(sessionmaker) == before
    assert await points_of(client, tokens) == 500


async def test_the_same_row_key_sent_at_once_grants_exactly_once(client, tokens, town, sessionmaker):
    campaign = await make_campaign(client, tokens)
    body = grant_body(town, amount=700)
    responses = await asyncio.gather(*[
        client.post(f"/v1/campaigns/{campaign['id']}/grants", json=body, headers=idem(tokens.operator()))
        for _ in range(12)
    ])
    assert sorted(r.status_code for r in responses) == [200] * 11 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await points_of(client, tokens) == 700
    assert await budget_of(client, tokens, campaign) == 100_000 - 700
    async with sessionmaker() as session:
        assert (await session.execute(text("SELECT count(*) FROM wallet.journals WHERE kind = 'grant'"))).scalar_one() == 1
    assert await ledger_violations(sessionmaker) == []


async def test_concurrent_grants_never_overdraw_the_budget(client, tokens, town, sessionmaker):
    campaign = await make_campaign(client, tokens, budget=5_000)
    responses = await asyncio.gather(*[
        client.post(f"/v1/campaigns/{campaign['id']}/grants", json=grant_body(town, subject, amount=1_000),
                    headers=idem(tokens.operator()))
        for subject in (HANAKO, TARO, SACHIKO) * 3
    ])
    assert sorted(r.status_code for r in responses) == [201] * 5 + [402] * 4
    assert await budget_of(client, tokens, campaign) == 0
    assert sum([await points_of(client, tokens, s) for s in (HANAKO, TARO, SACHIKO)]) == 5_000
    assert await ledger_violations(sessionmaker) == []


async def test_a_grant_to_an_unknown_resident_is_refused_and_changes_nothing(client, tokens, town, sessionmaker):
    campaign = await make_campaign(client, tokens)
    teahouse_account = None
    async with sessionmaker() as session:
        teahouse_account = (await session.execute(text(
            "SELECT id FROM wallet.accounts WHERE merchant_id = :m AND unit = 'yen'"),
            {"m": town.merchants["Tsurugajo Teahouse"]})).scalar_one()
    before = await snapshot(sessionmaker)
    for unknown in (str(uuid.uuid4()), str(teahouse_account)):  # no such wallet; a merchant's account
        response = await client.post(f"/v1/campaigns/{campaign['id']}/grants",
                                     json=grant_body(town, wallet_id=unknown), headers=idem(tokens.operator()))
        assert_problem(response, 404, "unknown-resident")
    assert await snapshot(sessionmaker) == before


async def test_a_grant_beyond_the_budget_is_refused_and_changes_nothing(client, tokens, town, sessionmaker):
    campaign = await make_campaign(client, tokens, budget=1_000)
    before = await snapshot(sessionmaker)
    response = await client.post(f"/v1/campaigns/{campaign['id']}/grants", json=grant_body(town, amount=1_001),
                                 headers=idem(tokens.operator()))
    problem = assert_problem(response, 402, "budget-exhausted")
    assert problem["budget"] == 1_000 and problem["required"] == 1_001
    assert await snapshot(sessionmaker) == before

    exact = await client.post(f"/v1/campaigns/{campaign['id']}/grants", json=grant_body(town, amount=1_000),
                              headers=idem(tokens.operator()))
    assert exact.status_code == 201
    before = await snapshot(sessionmaker)
    one_more = await client.post(f"/v1/campaigns/{campaign['id']}/grants", json=grant_body(town, amount=1),
                                 headers=idem(tokens.operator()))
    assert_problem(one_more, 402, "budget-exhausted")
    assert await snapshot(sessionmaker) == before
    assert await ledger_violations(sessionmaker) == []


@pytest.mark.parametrize("case", ["closed", "premium-campaign", "suspended-wallet", "closed-wallet",
                                  "future-activity", "window-over", "other-region"])
async def test_grants_that_cannot_be_are_refused_and_change_nothing(
    client, tokens, town, sessionmaker, clock, settings, case
):
    from datetime import timedelta

    campaign = await make_campaign(client, tokens, kind="premium" if case == "premium-campaign" else "grant",
                                   usable_until="2026-05-01T00:00:00+09:00" if case == "window-over" else None)
    body = grant_body(town)
    headers = tokens.operator()
    expected = {
        "closed": (409, "campaign-closed"), "premium-campaign": (409, "campaign-kind-mismatch"),
        "suspended-wallet": (409, "account-inactive"), "closed-wallet": (409, "account-inactive"),
        "future-activity": (422, "activity-date-in-future"), "window-over": (409, "campaign-window-over"),
        "other-region": (404, "campaign-not-found"),
    }[case]
    if case == "closed":
        closed = await client.post(f"/v1/campaigns/{campaign['id']}/close", headers=idem(headers))
        assert closed.status_code == 200
    elif case.endswith("-wallet"):
        status = case.split("-")[0]
        changed = await client.patch(f"/v1/wallets/{body['wallet_id']}", json={"status": status}, headers=idem(headers))
        assert changed.status_code == 200
    elif case == "future-activity":
        body["activity_date"] = "2026-04-02"  # tomorrow in Tokyo
    elif case == "window-over":
        clock.advance(timedelta(days=31))
        headers = tokens.operator()
    elif case == "other-region":
        await other_region(sessionmaker, clock, settings)
        headers = tokens.operator(region="sapporo")
    before = await snapshot(sessionmaker)
    response = await client.post(f"/v1/campaigns/{campaign['id']}/grants", json=body, headers=idem(headers))
    assert_problem(response, *expected)
    assert await snapshot(sessionmaker) == before


async def test_only_operators_and_partners_grant(client, tokens, town, sessionmaker):
    campaign = await make_campaign(client, tokens)
    before = await snapshot(sessionmaker)
    for headers in (tokens.resident(), tokens.auditor(), tokens.merchant_admin(town.merchants["Minato Farm"])):
        response = await client.post(f"/v1/campaigns/{campaign['id']}/grants", json=grant_body(town),
                                     headers=idem(headers))
        assert_problem(response, 403, "forbidden")
    assert await snapshot(sessionmaker) == before


# --- partner keys -----------------------------------------------------------------------------


async def partner_key(client, tokens, campaign) -> dict[str, Any]:
    created = await client.post(f"/v1/campaigns/{campaign['id']}/partner-keys", json={"name": "Aizu volunteer centre"},
                                headers=idem(tokens.operator()))
    assert created.status_code == 201, created.text
    return created.json()


async def test_a_partner_key_grants_in_its_own_campaign_only_and_reads_only_its_own(
    client, tokens, town, sessionmaker, clock
):
    campaign = await make_campaign(client, tokens)
    other = await make_campaign(client, tokens, name="Clean river points")
    key = await partner_key(client, tokens, campaign)
    assert key["secret"].startswith("ckgrant_") and key["campaign_id"] == campaign["id"]
    listed = (await client.get(f"/v1/campaigns/{campaign['id']}/partner-keys", headers=tokens.auditor())).json()
    assert [k["id"] for k in listed] == [key["id"]] and "secret" not in listed[0]
    async with sessionmaker() as session:  # only a hash of the secret is stored
        stored = (await session.execute(text("SELECT secret_hash FROM wallet.partner_keys"))).scalar_one()
    assert key["secret"] not in stored
    partner = {"X-API-Key": key["secret"]}

    granted = await client.post(f"/v1/campaigns/{campaign['id']}/grants", json=grant_body(town, amount=300),
                                headers={**idem(partner), "X-Request-ID": "req-partner-1"})
    assert granted.status_code == 201, granted.text
    assert granted.json()["partner_key_id"] == key["id"] and granted.json()["actor"] == f"api_key:{key['id']}"
    assert await points_of(client, tokens) == 300
    by_operator = await client.post(f"/v1/campaigns/{campaign['id']}/grants", json=grant_body(town, TARO),
                                    headers=idem(tokens.operator()))
    assert by_operator.status_code == 201

    seen = (await client.get(f"/v1/campaigns/{campaign['id']}/grants", headers=partner)).json()["items"]
    assert [g["id"] for g in seen] == [granted.json()["id"]]
    hidden = await client.get(f"/v1/campaigns/{campaign['id']}/grants/{by_operator.json()['id']}", headers=partner)
    assert_problem(hidden, 404, "grant-not-found")
    assert len((await client.get(f"/v1/campaigns/{campaign['id']}/grants", headers=tokens.operator())).json()["items"]) == 2

    event = (await client.get("/v1/audit-events", headers=tokens.auditor())).json()["items"][1]
    assert event["action"] == "grant.create" and event["actor_subject"] == f"api_key:{key['id']}"
    assert event["actor_role"] == "partner" and event["request_id"] == "req-partner-1"

    before = await snapshot(sessionmaker)
    elsewhere = await client.post(f"/v1/campaigns/{other['id']}/grants", json=grant_body(town), headers=idem(partner))
    assert_problem(elsewhere, 403, "forbidden")
    assert_problem(await upload(client, partner, other, csv_rows()), 403, "forbidden")
    for method, path in (("GET", f"/v1/campaigns/{other['id']}/grants"), ("GET", "/v1/region"),
                         ("GET", "/v1/merchant-classes"), ("GET", "/v1/campaigns"), ("GET", f"/v1/campaigns/{campaign['id']}"),
                         ("GET", "/v1/wallets"), ("GET", f"/v1/wallets/{wallet_id(town)}"), ("GET", "/v1/wallet"),
                         ("GET", "/v1/terminal"), ("GET", "/v1/grants/summary"), ("GET", "/v1/audit-events"),
                         ("GET", f"/v1/campaigns/{campaign['id']}/partner-keys"),
                         ("POST", f"/v1/campaigns/{campaign['id']}/partner-keys"),
                         ("POST", f"/v1/campaigns/{campaign['id']}/funding"),
                         ("POST", f"/v1/wallets/{wallet_id(town)}/topups")):
        response = await client.request(method, path, json={"amount": 1_000, "name": "x"}, headers=idem(partner))
        assert_problem(response, 403, "forbidden")
    assert (await snapshot(sessionmaker))["accounts"] == before["accounts"]

    revoked = await client.delete(f"/v1/campaigns/{campaign['id']}/partner-keys/{key['id']}",
                                  headers=idem(tokens.operator()))
    assert revoked.status_code == 200
    assert datetime.fromisoformat(revoked.json()["revoked_at"].replace("Z", "+00:00")) == clock.now()
    before = await snapshot(sessionmaker)
    after_revoke = await client.post(f"/v1/campaigns/{campaign['id']}/grants", json=grant_body(town),
                                     headers=idem(partner))
    assert_problem(after_revoke, 401, "invalid-token")
    assert await snapshot(sessionmaker) == before
    actions = [e["action"] for e in (await client.get("/v1/audit-events", headers=tokens.auditor())).json()["items"]]
    assert actions[0] == "partner_key.revoke" and "partner_key.create" in actions


async def test_partner_keys_are_for_active_grant_campaigns_and_tokens_cannot_claim_the_role(
    client, tokens, town, sessionmaker, app, clock
):
    premium = await make_campaign(client, tokens, kind="premium", name="Premium sets")
    before = await snapshot(sessionmaker)
    refused = await client.post(f"/v1/campaigns/{premium['id']}/partner-keys", json={"name": "x"},
                                headers=idem(tokens.operator()))
    assert_problem(refused, 409, "campaign-kind-mismatch")
    forged = tokens.mint(Role.PARTNER, "partner-x")
    assert_problem(await client.get("/v1/region", headers=forged), 401, "invalid-token")
    unknown = await client.get("/v1/region", headers={"X-API-Key": "ckgrant_" + "A" * 43})
    assert_problem(unknown, 401, "invalid-token")
    assert await snapshot(sessionmaker) == before


# --- CSV uploads ------------------------------------------------------------------------------


async def test_a_csv_upload_grants_every_row_in_one_go(client, tokens, town, sessionmaker):
    campaign = await make_campaign(client, tokens, budget=10_000, expiry_months=12)
    body = csv_rows(
        ("r1", wallet_id(town, HANAKO), 500, "health_checkup", "kenshin-2026", "2026-03-20", "特定健診"),
        ("r2", wallet_id(town, TARO), 300, "environmental_activity", "river-cleanup", "2026-03-22", ""),
        ("r3", wallet_id(town, SACHIKO), 200, "volunteering", "snow-help", "2026-03-25", ""),
        ("r4", wallet_id(town, HANAKO), 100, "walking", "steps-march", TODAY, ""),  # a resident may appear twice
    )
    accepted = await upload(client, tokens.operator(), campaign, body)
    assert accepted.status_code == 202, accepted.text
    assert accepted.headers["Location"] == f"/v1/campaigns/{campaign['id']}/grant-uploads/{accepted.json()['id']}"
    done = await finished(client, tokens.operator(), accepted.headers["Location"])
    assert done["status"] == "done", done
    assert (done["total_rows"], done["validated_rows"], done["granted_rows"], done["skipped_rows"], done["points"]) == (
        4, 4, 4, 0, 1_100)
    assert done["errors"] == [] and done["error_count"] == 0 and done["finished_at"]

    assert [await points_of(client, tokens, s) for s in (HANAKO, TARO, SACHIKO)] == [600, 300, 200]
    assert await budget_of(client, tokens, campaign) == 10_000 - 1_100
    grants = (await client.get(f"/v1/campaigns/{campaign['id']}/grants?upload_id={done['id']}",
                               headers=tokens.operator())).json()["items"]
    assert sorted(g["row_key"] for g in grants) == ["r1", "r2", "r3", "r4"]
    assert {g["expires_at"] for g in grants} == {"2027-04-30T15:00:00Z"}
    history = (await client.get("/v1/wallet/history", headers=tokens.resident())).json()["items"]
    assert sorted((h["kind"], h["unit"], h["amount"], h["balance_after"]) for h in history if h["kind"] == "grant") == [
        ("grant", "point", 100, 600), ("grant", "point", 500, 500)]
    assert "特定健診" in {h["memo"] for h in history}
    actions = [e["action"] for e in (await client.get("/v1/audit-events", headers=tokens.auditor())).json()["items"]]
    assert actions[:2] == ["grant_upload.grant", "grant_upload.create"]
    listed = (await client.get(f"/v1/campaigns/{campaign['id']}/grant-uploads", headers=tokens.auditor())).json()
    assert [u["id"] for u in listed["items"]] == [done["id"]]
    assert await ledger_violations(sessionmaker) == []


async def test_a_csv_with_bad_rows_is_rejected_whole_listing_every_bad_row(client, tokens, town, sessionmaker):
    campaign = await make_campaign(client, tokens)
    taken = await client.post(f"/v1/campaigns/{campaign['id']}/grants",
                              json=grant_body(town, row_key="already", amount=100), headers=idem(tokens.operator()))
    assert taken.status_code == 201
    hanako, taro = wallet_id(town, HANAKO), wallet_id(town, TARO)
    body = (
        "wallet_id,row_key,amount,category,event_id,activity_date\n"  # any column order
        f"{hanako},ok-1,500,health_event,e1,2026-03-01\n"             # line 2: fine
        f"{uuid.uuid4()},r-3,500,health_event,e1,2026-03-01\n"        # 3: unknown resident
        f"{taro},r-4,12.5,health_event,e1,2026-03-01\n"               # 4: not a whole number
        f"{taro},r-5,500,shopping,e1,2026-03-01\n"                    # 5: unknown category
        f"{taro},ok-1,500,health_event,e1,2026-03-01\n"               # 6: duplicate row key in the file
        f"{taro},r-7,500,health_event,e1,2026-04-02\n"                # 7: activity tomorrow
        f"not-a-wallet,r-8,500,health_event,e1,2026-03-01\n"          # 8: not a wallet id
        f"{taro},r-9,500,health_event\n"                              # 9: fields missing
        f"{hanako},already,999,health_event,e1,2026-03-01\n"          # 10: row key granted with other content
        f"{taro},r 11,0,volunteering,e1,2026-02-30\n"                 # 11: three problems at once
        "\n"                                                          # 12: a blank line is ignored
        f"{taro},ok-13,500,health_event,e1,2026-03-01\n"              # 13: fine
    )
    before = await values(sessionmaker)
    done = await upload_and_wait(client, tokens.operator(), campaign, body)
    assert done["status"] == "rejected", done
    problems = [(e["line"], e["code"]) for e in done["errors"]]
    assert problems == [
        (3, "unknown-resident"), (4, "invalid-amount"), (5, "unknown-category"), (6, "duplicate-row-key"),
        (7, "activity-date-in-future"), (8, "invalid-wallet-id"), (9, "wrong-field-count"), (10, "row-key-reused"),
        (11, "invalid-row-key"), (11, "invalid-amount"), (11, "invalid-activity-date"),
    ]
    assert done["error_count"] == 11 and done["total_rows"] == 11 and done["granted_rows"] == 0
    by_line = {e["line"]: e for e in done["errors"]}
    assert by_line[6]["row_key"] == "ok-1" and "line 2" in by_line[6]["detail"]
    assert by_line[10]["field"] == "row_key" and "amount" in by_line[10]["detail"]
    assert await values(sessionmaker) == before

    # The whole list, page by page.
    first = (await client.get(f"/v1/campaigns/{campaign['id']}/grant-uploads/{done['id']}/errors?limit=5",
                              headers=tokens.operator())).json()
    rest = (await client.get(f"/v1/campaigns/{campaign['id']}/grant-uploads/{done['id']}/errors"
                             f"?limit=50&cursor={first['next_cursor']}", headers=tokens.operator())).json()
    assert [(e["line"], e["code"]) for e in first["items"] + rest["items"]] == problems and rest["next_cursor"] is None


@pytest.mark.parametrize(("body", "code"), [
    (b"", "empty-file"),
    (HEADER.encode(), "no-rows"),
    (b"row_key,wallet,amount\nx,y,1\n", "invalid-header"),
    ("row_key,wallet_id,amount,category,event_id,activity_date\nr1,\xff".encode("latin-1"), "not-utf-8"),
    (b'row_key,wallet_id,amount,category,event_id,activity_date\n"r1,x\n', "malformed-csv"),
])
async def test_an_unreadable_csv_is_rejected_as_a_whole(client, tokens, town, sessionmaker, body, code):
    campaign = await make_campaign(client, tokens)
    before = await values(sessionmaker)
    done = await upload_and_wait(client, tokens.operator(), campaign, body)
    assert done["status"] == "rejected" and [e["code"] for e in done["errors"]] == [code], done
    assert await values(sessionmaker) == before


async def test_a_csv_beyond_the_budget_is_rejected_and_changes_nothing(client, tokens, town, sessionmaker):
    campaign = await make_campaign(client, tokens, budget=1_000)
    body = csv_rows(*[(f"r{i}", wallet_id(town, s), 400, "volunteering", "snow-help", "2026-03-25", "")
                      for i, s in enumerate((HANAKO, TARO, SACHIKO))])
    before = await values(sessionmaker)
    done = await upload_and_wait(client, tokens.operator(), campaign, body)
    assert done["status"] == "rejected"
    assert [(e["line"], e["code"]) for e in done["errors"]] == [(None, "budget-exhausted")]
    assert "1200" in done["errors"][0]["detail"] and "1000" in done["errors"][0]["detail"]
    assert await values(sessionmaker) == before


async def test_uploading_a_file_again_grants_nothing_twice(client, tokens, town, sessionmaker):
    campaign = await make_campaign(client, tokens, budget=10_000)
    body = csv_rows(
        ("r1", wallet_id(town, HANAKO), 500, "health_event", "e1", "2026-03-01", ""),
        ("r2", wallet_id(town, TARO), 300, "health_event", "e1", "2026-03-01", ""),
    )
    first = await upload_and_wait(client, tokens.operator(), campaign, body)
    assert first["status"] == "done" and first["granted_rows"] == 2
    before = await values(sessionmaker)

    again = await upload_and_wait(client, tokens.operator(), campaign, body)
    assert again["id"] != first["id"]
    assert (again["status"], again["granted_rows"], again["skipped_rows"], again["points"]) == ("done", 0, 2, 0)
    assert await values(sessionmaker) == before

    # The same Idempotency-Key replays the first answer (the same upload), and queues nothing new.
    key = f"upload-{uuid.uuid4()}"
    one = await upload(client, tokens.operator(), campaign, body, key)
    two = await upload(client, tokens.operator(), campaign, body, key)
    assert two.status_code == 202 and two.json()["id"] == one.json()["id"] and two.headers["Idempotent-Replayed"] == "true"
    await finished(client, tokens.operator(), one.headers["Location"])

    # A file with the old rows and one new: only the new row is granted.
    grown = body + f"r3,{wallet_id(town, SACHIKO)},200,health_event,e1,2026-03-01,\n"
    third = await upload_and_wait(client, tokens.operator(), campaign, grown)
    assert (third["status"], third["granted_rows"], third["skipped_rows"], third["points"]) == ("done", 1, 2, 200)
    assert [await points_of(client, tokens, s) for s in (HANAKO, TARO, SACHIKO)] == [500, 300, 200]
    assert await ledger_violations(sessionmaker) == []


async def test_progress_is_visible_and_never_shows_half_a_grant(client, tokens, town, sessionmaker):
    """Held up twice: by a slow database while it checks the rows, then by a resident paying (who
    holds their account's lock) while it grants. Watched meanwhile, the upload shows where it is,
    and nothing of it is visible until the whole of it commits."""
    campaign = await make_campaign(client, tokens, budget=10_000)
    body = csv_rows(*[(f"r{i}", wallet_id(town, s), 100, "health_event", "e1", "2026-03-01", "")
                      for i, s in enumerate((HANAKO, TARO, SACHIKO, HANAKO))])
    before = await values(sessionmaker)

    async def blocked_on_a_lock() -> None:
        """Until the worker's transaction is seen waiting for a lock held by this test (a new
        transaction each look: pg_stat_activity is a snapshot per transaction)."""
        for _ in range(500):
            async with sessionmaker() as observer:
                waiting = (await observer.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                ))).scalar_one()
            if waiting:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the upload's worker never waited for the test's lock")

    async def status(location: str, wanted: str) -> dict[str, Any]:
        for _ in range(500):
            seen = (await client.get(location, headers=tokens.operator())).json()
            if seen["status"] == wanted:
                return seen
            await asyncio.sleep(0.01)
        raise AssertionError(f"never {wanted}: {seen}")

    async with sessionmaker() as paying, sessionmaker() as slow:
        await paying.execute(text(
            "SELECT 1 FROM wallet.accounts WHERE id = (SELECT p.id FROM wallet.accounts y JOIN wallet.accounts p "
            "ON p.resident_id = y.resident_id AND p.unit = 'point' WHERE y.id = :w) FOR UPDATE"),
            {"w": wallet_id(town, TARO)})
        await slow.execute(text("LOCK TABLE wallet.grants IN ACCESS EXCLUSIVE MODE"))
        accepted = await upload(client, tokens.operator(), campaign, body)
        location = accepted.headers["Location"]
        await blocked_on_a_lock()  # the worker has read the file and waits for the grants table
        seen = await status(location, "validating")
        assert (seen["total_rows"], seen["validated_rows"], seen["granted_rows"]) == (4, 0, 0)
        await slow.rollback()

        seen = await status(location, "granting")
        assert (seen["total_rows"], seen["validated_rows"], seen["granted_rows"]) == (4, 4, 0)
        await blocked_on_a_lock()  # the worker waits for Taro's account, which `paying` holds
        assert (await client.get(location, headers=tokens.operator())).json()["status"] == "granting"
        assert await values(sessionmaker) == before  # watched mid-way: nothing half applied
        await paying.rollback()
    done = await finished(client, tokens.operator(), location)
    assert (done["status"], done["granted_rows"], done["points"]) == ("done", 4, 400)
    assert await ledger_violations(sessionmaker) == []


async def test_an_upload_whose_worker_died_is_taken_up_again(client, tokens, town, sessionmaker, clock):
    """The server stopped after accepting the file: the next status read starts a new worker."""
    campaign = await make_campaign(client, tokens)
    body = csv_rows(("r1", wallet_id(town, HANAKO), 400, "recycling", "e1", "2026-03-01", ""))
    operator = Principal(subject="operator-aizu", role=Role.OPERATOR, region_code="aizu")
    async with sessionmaker() as session, session.begin():
        to = grants_service.campaign_to_upload_to(await access.grant_campaign(session, operator, uuid.UUID(campaign["id"])))
        accepted = await grants_service.accept_upload(
            session, clock, Actor.of(operator), to, body.encode(), "lost.csv", partner_key_id=None
        )
        # ... and it had begun granting when the process died (its transaction rolled back).
        await session.execute(text("UPDATE wallet.grant_uploads SET status = 'granting', total_rows = 1, "
                                   "validated_rows = 1, granted_rows = 1 WHERE id = :id"), {"id": accepted.id})
    done = await finished(client, tokens.operator(), f"/v1/campaigns/{campaign['id']}/grant-uploads/{accepted.id}")
    assert (done["status"], done["granted_rows"], done["filename"]) == ("done", 1, "lost.csv")
    assert await points_of(client, tokens) == 400
    async with sessionmaker() as session:
        assert (await session.execute(text("SELECT attempts FROM wallet.grant_uploads"))).scalar_one() == 1


async def test_a_partner_uploads_to_its_campaign_and_sees_only_its_uploads(client, tokens, town, sessionmaker):
    campaign = await make_campaign(client, tokens)
    key = await partner_key(client, tokens, campaign)
    partner = {"X-API-Key": key["secret"]}
    mine = await upload_and_wait(client, partner, campaign, csv_rows(
        ("p1", wallet_id(town, TARO), 250, "volunteering", "snow-help", "2026-03-02", "")))
    assert mine["status"] == "done" and mine["partner_key_id"] == key["id"]
    theirs = await upload_and_wait(client, tokens.operator(), campaign, csv_rows(
        ("o1", wallet_id(town, TARO), 50, "volunteering", "snow-help", "2026-03-02", "")))
    listed = (await client.get(f"/v1/campaigns/{campaign['id']}/grant-uploads", headers=partner)).json()["items"]
    assert [u["id"] for u in listed] == [mine["id"]]
    hidden = await client.get(f"/v1/campaigns/{campaign['id']}/grant-uploads/{theirs['id']}", headers=partner)
    assert_problem(hidden, 404, "grant-upload-not-found")
    assert await points_of(client, tokens, TARO) == 300
    event = next(e for e in (await client.get("/v1/audit-events", headers=tokens.auditor())).json()["items"]
                 if e["action"] == "grant_upload.grant" and e["target_id"] == mine["id"])
    assert event["actor_role"] == "partner" and event["actor_subject"].startswith("api_key:")


async def test_uploads_take_large_csv_bodies_but_only_there(client, tokens, town, sessionmaker, settings):
    campaign = await make_campaign(client, tokens, budget=1_000_000)
    rows = [(f"row-{i:06d}-{'x' * 60}", wallet_id(town, (HANAKO, TARO, SACHIKO)[i % 3]), 1, "walking", "steps", TODAY, "")
            for i in range(1_500)]
    body = csv_rows(*rows)
    assert len(body) > settings.max_body_bytes
    done = await upload_and_wait(client, tokens.operator(), campaign, body)
    assert (done["status"], done["granted_rows"], done["points"]) == ("done", 1_500, 1_500), done
    assert await ledger_violations(sessionmaker) == []

    before = await values(sessionmaker)
    too_big = await client.post(
        f"/v1/campaigns/{campaign['id']}/grant-uploads", content=b"x" * (settings.max_upload_bytes + 1),
        headers={**idem(tokens.operator()), "Content-Type": "text/csv"},
    )
    assert_problem(too_big, 413, "payload-too-large")
    not_csv = await client.post(f"/v1/campaigns/{campaign['id']}/grant-uploads", json={"rows": []},
                                headers=idem(tokens.operator()))
    assert_problem(not_csv, 415, "unsupported-media-type")
    big_json = await client.post(f"/v1/campaigns/{campaign['id']}/grants", content=b" " * (settings.max_body_bytes + 1),
                                 headers={**idem(tokens.operator()), "Content-Type": "application/json"})
    assert_problem(big_json, 413, "payload-too-large")
    assert await values(sessionmaker) == before


async def test_uploads_to_a_closed_or_foreign_campaign_are_refused(client, tokens, town, sessionmaker, clock, settings):
    await other_region(sessionmaker, clock, settings)
    campaign = await make_campaign(client, tokens)
    closed = await client.post(f"/v1/campaigns/{campaign['id']}/close", headers=idem(tokens.operator()))
    assert closed.status_code == 200
    body = csv_rows(("r1", wallet_id(town), 1, "walking", "steps", TODAY, ""))
    before = await snapshot(sessionmaker)
    assert_problem(await upload(client, tokens.operator(), campaign, body), 409, "campaign-closed")
    assert_problem(await upload(client, tokens.operator("sapporo"), campaign, body), 404, "campaign-not-found")
    assert_problem(await upload(client, tokens.auditor(), campaign, body), 403, "forbidden")
    assert await snapshot(sessionmaker) == before


async def test_the_city_reports_points_and_grants_per_fiscal_year(client, tokens, town, sessionmaker, clock):
    from datetime import timedelta

    campaign = await make_campaign(client, tokens)
    for subject, amount, category in ((HANAKO, 500, "health_event"), (TARO, 300, "health_event"),
                                      (HANAKO, 200, "volunteering")):
        ok = await client.post(f"/v1/campaigns/{campaign['id']}/grants",
                               json=grant_body(town, subject, amount=amount, category=category),
                               headers=idem(tokens.operator()))
        assert ok.status_code == 201
    clock.advance(timedelta(days=365))  # FY2027
    late = await client.post(f"/v1/campaigns/{campaign['id']}/grants", json=grant_body(town, amount=50),
                             headers=idem(tokens.operator()))
    assert late.status_code == 201 and late.json()["fiscal_year"] == 2027
    fy2026 = (await client.get("/v1/grants/summary?fiscal_year=2026", headers=tokens.auditor())).json()
    assert (fy2026["grants"], fy2026["points"], fy2026["residents"]) == (3, 1_000, 2)
    assert fy2026["by_category"] == [{"category": "health_event", "grants": 2, "points": 800},
                                     {"category": "volunteering", "grants": 1, "points": 200}]
    current = (await client.get("/v1/grants/summary", headers=tokens.operator())).json()
    assert (current["fiscal_year"], current["grants"], current["points"]) == (2027, 1, 50)


async def _post_unread(app, path: str, headers: dict[str, str], size: int, chunk: int = 1 << 20) -> tuple[int, int]:
    """POST a `size`-byte body straight to the ASGI app, chunk by chunk as a socket would deliver
    it; the answer's status and how many body bytes the app took before answering."""
    taken = 0
    status = 0

    async def receive():
        nonlocal taken
        if taken >= size:
            return {"type": "http.disconnect"}
        part = min(chunk, size - taken)
        taken += part
        return {"type": "http.request", "body": b"x" * part, "more_body": taken < size}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "headers": raw,
             "client": ("203.0.113.7", 50000), "server": ("chiikipay.test", 80), "root_path": "", "app": app}
    await app(scope, receive, send)
    return status, taken


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_large_upload_is_not_read_before_the_caller_is_authenticated_and_authorised(
    app, client, tokens, town, sessionmaker, settings, declared
):
    campaign = await make_campaign(client, tokens)
    other = await make_campaign(client, tokens, name="Volunteer points")
    foreign_partner = {"X-API-Key": (await partner_key(client, tokens, other))["secret"]}
    path = f"/v1/campaigns/{campaign['id']}/grant-uploads"
    size = settings.max_upload_bytes  # 32 MB, the largest file the route takes
    base = {"content-type": "text/csv", "idempotency-key": "big-upload-1"} | ({"content-length": str(size)} if declared else {})
    before = await values(sessionmaker)
    for headers, status in (
        (base, 401),  # no credentials
        (base | {"authorization": "Bearer not-a-token"}, 401),
        (base | tokens.resident(), 403),  # a role that may not upload
        (base | foreign_partner, 403),  # a partner key of another campaign
    ):
        answered, taken = await _post_unread(app, path, headers, size)
        assert answered == status
        # Nothing beyond what the small-body guard reads before it knows the route takes uploads.
        assert taken <= (0 if declared else settings.max_body_bytes + (1 << 20)), (headers, taken)
    assert await values(sessionmaker) == before
