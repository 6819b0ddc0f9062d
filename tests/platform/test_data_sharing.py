"""Payment results to the city's data platform: residents who share (by the city's ID's claim or
their own setting, the later in force) have each payment delivered as an event under their
pseudonym; everyone else appears only in the daily aggregates; a resident who withdraws before
delivery is not sent. The platform is a real HTTP receiver that verifies the signature; every
event it gets is validated against the documented JSON schema."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, date, datetime, timedelta

import httpx
import jsonschema_rs
import jwt
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from app.cli import app as cli
from services.platform.outbox import tasks
from services.platform.outbox.service import RetryPolicy
from services.platform.sharing import events
from services.platform.sharing import service as sharing
from services.wallet import public as wallet
from services.wallet.directory.models import Sector
from shared.auth import KEY_RECHECK_SECONDS
from shared.config import get_settings
from tests.helpers import assert_problem, idem, snapshot
from tests.platform.partner_app import PartnerApp
from tests.wallet.test_payments import store_of

runner = CliRunner()

SECRET = "whsec_test-data-platform"
PSEUDONYM_KEY = b"test-pseudonym-key"
POLICY = RetryPolicy(max_attempts=3, backoff_seconds=2, backoff_cap_seconds=60, timeout_seconds=5)
VALIDATOR = jsonschema_rs.validator_for(events.schema(), validate_formats=True)
HANAKO, TARO = "resident-hanako", "resident-taro"
TEAHOUSE, STORE, FARM = "Tsurugajo Teahouse", "Nanokamachi General Store", "Minato Farm"


@pytest.fixture
def data_platform(clock):
    """The city's data platform, receiving; data sharing configured to send to it."""
    receiver = PartnerApp(SECRET, now=lambda: clock.now().timestamp()).start()
    before = sharing.configured()
    sharing.configure(sharing.DataPlatform(receiver.url, SECRET, PSEUDONYM_KEY, min_payments=2))
    sharing.forget_recorded_claims()
    yield receiver
    sharing.configure(before)
    receiver.stop()


async def deliver(sessionmaker, clock) -> list[tasks.Attempt]:
    async with httpx.AsyncClient() as http:
        return await tasks.deliver_all_due(sessionmaker, clock, http, POLICY)


def received(platform: PartnerApp) -> list[dict]:
    """Every event the platform got, each checked against the schema (and its signature, by the receiver)."""
    assert all(d.verified for d in platform.deliveries)
    for event in platform.events:
        VALIDATOR.validate(event)
    return platform.events


async def pay(client, tokens, town, merchant: str, amount: int, resident: str = HANAKO, headers=None) -> dict:
    shop = await store_of(client, tokens, town, merchant)
    response = await client.post("/v1/payments", json={"qr": shop["payload"], "amount": amount},
                                 headers=idem(headers or tokens.resident(resident)))
    assert response.status_code == 201, response.text
    return response.json()


async def choose(client, tokens, opted_in, resident: str = HANAKO) -> httpx.Response:
    return await client.put("/v1/me/data-sharing", json={"opted_in": opted_in}, headers=idem(tokens.resident(resident)))


def city_id_token(app, clock, subject: str = HANAKO, **claims) -> dict[str, str]:
    """A resident's token carrying the city's ID's opt-in claim and area attribute."""
    now = int(clock.now().timestamp())
    body = {"iss": app.state.settings.jwt_issuer, "aud": app.state.settings.jwt_audience, "sub": subject,
            "iat": now, "exp": now + 600, "role": "resident", "region": "aizu", **claims}
    return {"Authorization": "Bearer " + jwt.encode(body, app.state.dev_issuer.private_key, algorithm="RS256")}


async def outbox_rows(sessionmaker) -> list[tuple]:
    async with sessionmaker() as session:
        return (await session.execute(text(
            "SELECT event_type, status FROM platform.outbox_events ORDER BY seq"))).all()


async def test_a_resident_sees_and_changes_their_choice(client, tokens, town, sessionmaker, data_platform):
    url = "/v1/me/data-sharing"
    assert (await client.get(url, headers=tokens.resident())).json() == {
        "opted_in": False, "source": None, "area": None, "updated_at": None}
    response = await choose(client, tokens, True)
    assert response.status_code == 200, response.text
    assert (response.json()["opted_in"], response.json()["source"]) == (True, "resident")
    assert (await client.get(url, headers=tokens.resident())).json()["opted_in"] is True
    assert (await client.get(url, headers=tokens.resident(TARO))).json()["opted_in"] is False
    response = await choose(client, tokens, False)
    assert (response.json()["opted_in"], response.json()["source"]) == (False, "resident")
    async with sessionmaker() as session:
        trail = (await session.execute(text(
            "SELECT action, after FROM platform.audit_events WHERE action = 'data_sharing.choice' "
            "ORDER BY created_at, id"
        ))).all()
    assert [t.after["opted_in"] for t in trail] == [True, False]


@pytest.mark.parametrize("body", [{"opted_in": "yes"}, {"opted_in": 1}, {}, {"opted_in": True, "area": "kita"}])
async def test_a_bad_choice_is_refused_and_changes_nothing(client, tokens, town, sessionmaker, data_platform, body):
    before = await snapshot(sessionmaker)
    response = await client.put("/v1/me/data-sharing", json=body, headers=idem(tokens.resident()))
    assert_problem(response, 422, "validation-error")
    assert await snapshot(sessionmaker) == before


async def test_only_a_staff_role_is_refused_the_residents_choice(client, tokens, town, sessionmaker, data_platform):
    before = await snapshot(sessionmaker)
    response = await client.put("/v1/me/data-sharing", json={"opted_in": True}, headers=idem(tokens.operator()))
    assert_problem(response, 403, "forbidden")
    assert await snapshot(sessionmaker) == before


async def test_the_payments_of_a_resident_who_shares_reach_the_platform_under_a_pseudonym(
    client, tokens, town, sessionmaker, clock, data_platform
):
    assert (await choose(client, tokens, True)).status_code == 200
    paid = await pay(client, tokens, town, TEAHOUSE, 1_200)
    await pay(client, tokens, town, TEAHOUSE, 800, resident=TARO)  # Taro does not share
    clock.advance(timedelta(minutes=3))
    second = await pay(client, tokens, town, FARM, 2_500)
    attempts = await deliver(sessionmaker, clock)
    assert [a.status.value for a in attempts] == ["delivered", "delivered"]

    got = received(data_platform)
    assert [e["type"] for e in got] == ["payment.result", "payment.result"]
    # Each payment's result is a stream of its own: delivered side by side, in no fixed order.
    results = {e["data"]["payment_id"]: e["data"] for e in got}
    region_id = await _region_id(sessionmaker)
    pseudonym = hmac.new(PSEUDONYM_KEY, f"{region_id}:{HANAKO}".encode(), hashlib.sha256).hexdigest()
    first = results[paid["id"]]
    assert first == {
        "payment_id": paid["id"], "resident": pseudonym, "region": "aizu", "area": None,
        "merchant": {"id": town.merchants[TEAHOUSE], "name": TEAHOUSE, "sector": "food_service"},
        "amount": 1_200, "point_amount": 0, "currency": "JPY", "paid_at": first["paid_at"],
    }
    later = results[second["id"]]
    assert (later["resident"], later["merchant"]["sector"]) == (pseudonym, "agriculture")
    # Nothing identifies the resident but the pseudonym: neither their subject nor their wallet.
    assert HANAKO not in json.dumps(got) and town.residents[HANAKO][0] not in json.dumps(got)


async def refund(client, tokens, town, payment: dict, amount: int) -> None:
    response = await client.post(f"/v1/payments/{payment['id']}/refunds", json={"amount": amount},
                                 headers=idem(tokens.merchant_staff(payment["merchant_id"])))
    assert response.status_code == 201, response.text


async def test_a_shared_payments_refunds_follow_it_and_no_one_elses_are_sent(
    client, tokens, town, sessionmaker, clock, data_platform
):
    assert (await choose(client, tokens, True)).status_code == 200
    shared = await pay(client, tokens, town, TEAHOUSE, 1_200)
    unshared = await pay(client, tokens, town, TEAHOUSE, 800, resident=TARO)
    await refund(client, tokens, town, shared, 200)
    await refund(client, tokens, town, unshared, 800)
    await refund(client, tokens, town, shared, 300)
    await deliver(sessionmaker, clock)
    got = received(data_platform)
    # One stream: the result first, then its refunds in order; Taro's refund is nowhere.
    assert [(e["type"], e["data"]["payment_id"], e["data"].get("refunded_total")) for e in got] == [
        ("payment.result", shared["id"], None), ("payment.refunded", shared["id"], 200),
        ("payment.refunded", shared["id"], 500)]
    assert got[1]["data"]["resident"] == got[0]["data"]["resident"]


async def test_a_result_of_a_resident_who_withdrew_before_delivery_is_not_sent(
    client, tokens, town, sessionmaker, clock, data_platform
):
    assert (await choose(client, tokens, True)).status_code == 200
    await pay(client, tokens, town, TEAHOUSE, 1_200)
    assert await outbox_rows(sessionmaker) == [("payment.result", "pending")]
    assert (await choose(client, tokens, False)).json()["opted_in"] is False
    before = await snapshot(sessionmaker)

    attempts = await deliver(sessionmaker, clock)
    assert [(a.status.value, a.error) for a in attempts] == [
        ("withdrawn", "withdrawn by its destination before delivery")]
    assert data_platform.deliveries == []
    # Nothing else changed: only the event's own state, withdrawn, never to be sent.
    after = await snapshot(sessionmaker)
    changed = {t for t in after["rows"] if after["rows"][t] != before["rows"][t]}
    assert changed == {"platform.outbox_events"} and after["accounts"] == before["accounts"]
    assert await outbox_rows(sessionmaker) == [("payment.result", "withdrawn")]
    # And once withdrawn, a later delivery pass sends nothing either.
    assert await deliver(sessionmaker, clock) == [] and data_platform.deliveries == []


async def test_the_city_ids_claim_opts_in_and_the_later_choice_wins(
    client, app, tokens, town, sessionmaker, clock, data_platform
):
    url = "/v1/me/data-sharing"
    consent = city_id_token(app, clock, data_sharing=True, area="kitamachi")
    shown = (await client.get(url, headers=consent)).json()
    assert (shown["opted_in"], shown["source"], shown["area"]) == (True, "city_id", "kitamachi")
    await pay(client, tokens, town, STORE, 600, headers=consent)

    # The resident stops in the app: in force, though the same claim comes with every request.
    clock.advance(timedelta(seconds=10))
    stopped = (await choose(client, tokens, False)).json()
    assert (stopped["opted_in"], stopped["source"], stopped["area"]) == (False, "resident", "kitamachi")
    assert [a.status.value for a in await deliver(sessionmaker, clock)] == ["withdrawn"]
    clock.advance(timedelta(seconds=KEY_RECHECK_SECONDS + 10))
    assert (await client.get(url, headers=city_id_token(app, clock, data_sharing=True, area="kitamachi"))
            ).json()["opted_in"] is False
    await pay(client, tokens, town, STORE, 700)

    # At the city's ID they withdraw and consent again: a new choice there, later than the app's.
    clock.advance(timedelta(seconds=10))
    await client.get(url, headers=city_id_token(app, clock, data_sharing=False))
    clock.advance(timedelta(seconds=10))
    again = await client.get(url, headers=city_id_token(app, clock, data_sharing=True))
    assert (again.json()["opted_in"], again.json()["source"], again.json()["area"]) == (True, "city_id", "kitamachi")
    await pay(client, tokens, town, STORE, 800)

    await deliver(sessionmaker, clock)
    got = received(data_platform)
    # The first payment was withdrawn (the resident stopped before it was delivered), the second
    # never written (they did not share); the third is sent, tagged with the city's ID's area.
    assert [(e["data"]["amount"], e["data"]["area"]) for e in got] == [(800, "kitamachi")]


async def test_a_city_id_claim_of_a_staff_token_or_without_change_writes_nothing(
    client, app, town, sessionmaker, clock, data_platform
):
    consent = city_id_token(app, clock, data_sharing=True)
    await client.get("/v1/wallet", headers=consent)
    before = await snapshot(sessionmaker)
    for _ in range(3):  # the same claim again: remembered, no write
        assert (await client.get("/v1/wallet", headers=consent)).status_code == 200
    operator = city_id_token(app, clock, subject="operator-aizu", role="operator", data_sharing=True)
    assert (await client.get("/v1/accounts", headers=operator)).status_code == 200
    assert await snapshot(sessionmaker) == before


async def test_no_event_is_written_without_a_configured_platform(client, tokens, town, sessionmaker):
    assert sharing.configured().url is None
    assert (await choose(client, tokens, True)).status_code == 200
    await pay(client, tokens, town, TEAHOUSE, 500)
    assert await outbox_rows(sessionmaker) == []


async def test_the_daily_aggregate_counts_everyone_and_leaves_small_sectors_out(
    client, tokens, town, sessionmaker, clock, data_platform
):
    assert (await choose(client, tokens, True)).status_code == 200
    for resident, merchant, amount in [(HANAKO, TEAHOUSE, 1_000), (TARO, TEAHOUSE, 700), (TARO, TEAHOUSE, 300),
                                       (TARO, FARM, 2_000)]:
        await pay(client, tokens, town, merchant, amount, resident=resident)
    day = date(2026, 4, 1)
    async with sessionmaker() as session, session.begin():
        with pytest.raises(sharing.DayNotEnded):
            await sharing.write_daily_aggregate(session, clock, region="aizu", day=day)
    clock.advance(timedelta(days=1))
    async with sessionmaker() as session, session.begin():
        assert await sharing.write_daily_aggregate(session, clock, region="aizu", day=day) is True
    async with sessionmaker() as session, session.begin():  # once per day, whoever runs it again
        assert await sharing.write_daily_aggregate(session, clock, region="aizu", day=day) is False
    await deliver(sessionmaker, clock)
    got = received(data_platform)
    daily = [e["data"] for e in got if e["type"] == "payments.daily"]
    # Three payments at the teahouse (Hanako's too); the farm's one payment is below the minimum of 2.
    assert daily == [{"region": "aizu", "day": "2026-04-01", "currency": "JPY", "min_payments": 2,
                      "sectors": [{"sector": "food_service", "payments": 3, "amount": 2_000}]}]
    assert [e["data"]["amount"] for e in got if e["type"] == "payment.result"] == [1_000]


def test_the_schema_names_every_sector_and_refuses_what_is_not_an_event():
    assert set(events.schema()["$defs"]["sector"]["enum"]) == {s.value for s in Sector}
    good = {"id": "0190a0a0-0000-7000-8000-000000000000", "type": "payment.result",
            "created_at": "2026-04-01T00:30:00+00:00",
            "data": events.payment_result(
                payment_id=uuid.UUID(int=1), resident="a" * 64, region="aizu", area=None, merchant_id=uuid.UUID(int=2),
                merchant_name="Shop", sector="retail", amount=100, point_amount=0,
                paid_at=datetime(2026, 4, 1, tzinfo=UTC),
            )}
    assert VALIDATOR.is_valid(good)
    for broken in ({**good, "data": {**good["data"], "resident": "resident-hanako"}},
                   {**good, "data": {**good["data"], "subject": "resident-hanako"}},
                   {**good, "type": "payments.daily"},
                   {**good, "data": {**good["data"], "amount": 1.5}}):
        assert not VALIDATOR.is_valid(broken)


async def _region_id(sessionmaker):
    async with sessionmaker() as session:
        return await wallet.region_id(session, region="aizu")




@pytest.fixture
def cli_env(settings, sessionmaker, monkeypatch, data_platform):
    """The CLI pointed at the test database and Redis, and at the data platform."""
    for name, value in {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
                        "DATA_DIR": str(settings.data_dir), "DATA_PLATFORM_URL": data_platform.url}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    configured = sharing.configured()
    yield settings
    sharing.configure(configured)  # the command configures data sharing from the environment
    get_settings.cache_clear()


def test_the_aggregate_command_writes_each_region_and_day_once(cli_env, town):
    """`chiikipay data-platform aggregate`, as cron runs it (on the system clock the demo's day has ended)."""
    first = runner.invoke(cli, ["data-platform", "aggregate", "--day", "2026-04-01"])
    assert first.exit_code == 0, first.output
    assert "aggregates written for 1 region(s): aizu" in first.output
    again = runner.invoke(cli, ["data-platform", "aggregate", "--day", "2026-04-01"])
    assert again.exit_code == 0 and "aggregates written for 0 region(s)" in again.output
    bad = runner.invoke(cli, ["data-platform", "aggregate", "--day", "yesterday"])
    assert bad.exit_code != 0 and "not a date" in bad.output
