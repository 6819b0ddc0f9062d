"""Transit e-tickets over HTTP: buying one is an ordinary coin payment to the bus operator, its code
rotates every 30 s, a validator's scan activates it and counts the ride, and every refusal
changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from sqlalchemy import text

from services.coupons.transit import codes as ticket_codes
from services.coupons.transit import public as transit
from services.wallet import public as wallet
from tests.conftest import START
from tests.coupons.transit.conftest import (
    BUS,
    OTHER,
    add_product,
    add_validator,
    buy,
    codes,
    mark_operator,
    scan,
    ticket,
)
from tests.helpers import assert_problem, idem, ledger_violations, shop_notices, snapshot


async def balance(client, tokens, subject: str = "resident-hanako") -> int:
    response = await client.get("/v1/wallet", headers=tokens.resident(subject))
    assert response.status_code == 200, response.text
    return response.json()["balance"]


async def test_a_ticket_is_bought_shown_scanned_and_its_ride_counted(client, tokens, town, bus, sessionmaker, clock):
    before = await balance(client, tokens)
    bought = await buy(client, tokens, bus.products["single"], "child")
    assert (bought["fare"], bought["state"], bought["rides"], bought["rides_left"]) == (100, "unused", 1, 1)
    assert bought["expires_at"] == (START + timedelta(days=90)).isoformat().replace("+00:00", "Z")
    assert await balance(client, tokens) == before - 100
    async with sessionmaker() as s:
        payment = (await s.execute(text("SELECT merchant_id, amount FROM wallet.payments WHERE id = :id"),
                                   {"id": uuid.UUID(bought["payment_id"])})).one()
    assert (str(payment.merchant_id), payment.amount) == (town.merchants[BUS], 100)

    shown = await codes(client, tokens, bought)
    assert len(shown) == 10 and len({c["code"] for c in shown}) == 10
    assert [c["step"] for c in shown] == list(range(shown[0]["step"], shown[0]["step"] + 10))
    ride = await scan(client, bus.validator, shown[0]["code"], clock.now(), vehicle_id="aizu-230", route_id="R1")
    assert ride.status_code == 201, ride.text
    assert {k: ride.json()[k] for k in ("outcome", "conflict", "rides_left", "rider_category", "offline")} == {
        "outcome": "activation", "conflict": None, "rides_left": 0, "rider_category": "child", "offline": False,
    }
    after = await ticket(client, tokens, bought["id"])
    assert (after["state"], after["rides_taken"], after["activated_at"] is not None) == ("used_up", 1, True)

    async with sessionmaker() as s:
        counted = await transit.counts(s, region="aizu", since=START.date(), until=START.date() + timedelta(days=1))
    (day,) = counted.products
    assert (day.merchant_id, day.tickets_sold, day.sales, day.activations, day.rides, day.conflicts) == (
        uuid.UUID(town.merchants[BUS]), 1, 100, 1, 1, 0)
    assert counted.payments == []  # the ticket's payment is a ticket sale, not counted twice
    assert counted.monthly_digital_payments() == {(2026, 4): 1}
    assert await ledger_violations(sessionmaker) == []


async def test_a_day_pass_runs_24_hours_from_its_first_ride(client, tokens, bus, clock, sessionmaker):
    bought = await buy(client, tokens, bus.products["day"])
    clock.advance(timedelta(days=3))  # bought days before its first ride
    first = await scan(client, bus.validator, (await codes(client, tokens, bought))[0]["code"], clock.now())
    assert first.json()["outcome"] == "activation"
    activated = clock.now()
    assert first.json()["valid_until"] == (activated + timedelta(hours=24)).isoformat().replace("+00:00", "Z")
    assert (await ticket(client, tokens, bought["id"]))["state"] == "active"

    clock.advance(timedelta(hours=23, minutes=59))
    shown = await codes(client, tokens, bought)
    again = await scan(client, bus.validator, shown[0]["code"], clock.now())
    assert (again.status_code, again.json()["outcome"], again.json()["rides_left"]) == (201, "ride", None)

    clock.advance(timedelta(minutes=1))  # 24 h after activation: the app shows the code of this step
    before = await snapshot(sessionmaker)
    assert_problem(await scan(client, bus.validator, shown[2]["code"], clock.now()), 409, "ticket-expired")
    assert_problem(await client.get(f"/v1/me/transit/tickets/{bought['id']}/code", headers=tokens.resident()),
                   409, "ticket-expired")
    assert (await ticket(client, tokens, bought["id"]))["state"] == "expired"
    assert await snapshot(sessionmaker) == before


async def test_a_multi_ride_ticket_counts_down_and_then_is_used_up(client, tokens, bus, clock, sessionmaker):
    bought = await buy(client, tokens, bus.products["multi"])
    code = (await codes(client, tokens, bought))[0]["code"]
    left = []
    for _ in range(3):
        ride = await scan(client, bus.validator, code, clock.now())
        assert ride.status_code == 201, ride.text
        left.append(ride.json()["rides_left"])
    assert left == [2, 1, 0]
    before = await snapshot(sessionmaker)
    assert_problem(await scan(client, bus.validator, code, clock.now()), 409, "ticket-used-up")
    assert_problem(await client.get(f"/v1/me/transit/tickets/{bought['id']}/code", headers=tokens.resident()),
                   409, "ticket-used-up")
    assert await snapshot(sessionmaker) == before
    assert (await ticket(client, tokens, bought["id"]))["state"] == "used_up"


async def test_a_single_ride_scanned_again_is_refused_as_reused(client, tokens, bus, clock, sessionmaker):
    bought = await buy(client, tokens, bus.products["single"])
    code = (await codes(client, tokens, bought))[0]["code"]
    assert (await scan(client, bus.validator, code, clock.now())).status_code == 201
    before = await snapshot(sessionmaker)
    assert_problem(await scan(client, bus.validator, code, clock.now()), 409, "ticket-reused")
    assert await snapshot(sessionmaker) == before


async def test_forged_codes_are_refused(client, tokens, bus, clock, sessionmaker):
    bought = await buy(client, tokens, bus.products["single"])
    code = (await codes(client, tokens, bought))[0]["code"]
    tampered = code[:-3] + ("AAA" if code[-3:] != "AAA" else "BBB")  # the signature's last bytes
    before = await snapshot(sessionmaker)
    for forged in (tampered, "CKT1.bm90IGEgdGlja2V0", "a-photo-of-a-cat", code.replace("CKT1.", "CKT2.")):
        assert_problem(await scan(client, bus.validator, forged, clock.now()), 422, "ticket-code-forged")
    assert await snapshot(sessionmaker) == before
    assert (await ticket(client, tokens, bought["id"]))["state"] == "unused"


async def test_a_code_goes_stale_after_about_a_minute(client, tokens, bus, clock, sessionmaker):
    bought = await buy(client, tokens, bus.products["single"])
    screenshot = (await codes(client, tokens, bought))[0]  # of START's step (START is on a step's start)
    clock.advance(timedelta(seconds=60))  # two steps later
    before = await snapshot(sessionmaker)
    body = assert_problem(await scan(client, bus.validator, screenshot["code"], clock.now()), 422, "ticket-code-stale")
    assert body["validator_step"] - body["step"] == 2
    assert await snapshot(sessionmaker) == before
    clock.set(START + timedelta(seconds=45))  # one step after the code's: still accepted
    assert (await scan(client, bus.validator, screenshot["code"], clock.now())).status_code == 201


async def test_a_validator_of_another_bus_operator_is_refused(client, tokens, town, bus, clock, sessionmaker):
    shuttle = town.merchants[OTHER]
    await mark_operator(client, tokens, shuttle)
    other = await add_validator(client, tokens, shuttle, "onsen shuttle")
    bought = await buy(client, tokens, bus.products["single"])
    code = (await codes(client, tokens, bought))[0]["code"]
    before = await snapshot(sessionmaker)
    assert_problem(await scan(client, other, code, clock.now()), 403, "ticket-other-operator")
    assert await snapshot(sessionmaker) == before


async def test_a_ticket_not_used_in_time_expires(client, tokens, bus, clock, sessionmaker):
    bought = await buy(client, tokens, bus.products["day"])  # to be first used within 30 days
    clock.advance(timedelta(days=30, seconds=-10))
    code = (await codes(client, tokens, bought))[0]["code"]
    clock.advance(timedelta(seconds=10))
    before = await snapshot(sessionmaker)
    assert_problem(await scan(client, bus.validator, code, clock.now()), 409, "ticket-expired")
    assert_problem(await client.get(f"/v1/me/transit/tickets/{bought['id']}/code", headers=tokens.resident()),
                   409, "ticket-expired")
    assert await snapshot(sessionmaker) == before


async def test_a_scan_id_answers_its_first_outcome_and_refuses_another_scan(client, tokens, bus, clock, sessionmaker):
    bought = await buy(client, tokens, bus.products["multi"])
    code = (await codes(client, tokens, bought))[0]["code"]
    scan_id = uuid.uuid4()
    first = await scan(client, bus.validator, code, clock.now(), scan_id=scan_id)
    clock.advance(timedelta(seconds=5))
    again = await scan(client, bus.validator, code, START, scan_id=scan_id)  # the same body: the same scanned_at
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert (await ticket(client, tokens, bought["id"]))["rides_taken"] == 1
    before = await snapshot(sessionmaker)
    other = await scan(client, bus.validator, code, START, scan_id=scan_id, vehicle_id="aizu-231")
    assert_problem(other, 422, "scan-id-reused")
    assert await snapshot(sessionmaker) == before


async def test_offline_scans_are_reconciled_and_a_double_use_is_a_conflict(client, tokens, town, bus, clock, sessionmaker):
    """A single ride shown to two buses, both offline: each validator let the rider on. Both rides
    happened, so both count; the second is reported as a conflict."""
    bus_b = await add_validator(client, tokens, bus.merchant_id, "bus 102")
    bought = await buy(client, tokens, bus.products["single"])
    shown = await codes(client, tokens, bought)  # fetched at home; the app shows them in turn
    at_a, at_b = START + timedelta(seconds=30), START + timedelta(seconds=150)
    code_at = {c["step"]: c["code"] for c in shown}

    def offline(at, scan_id=None):
        return {"scan_id": str(scan_id or uuid.uuid4()), "code": code_at[int(at.timestamp()) // 30],
                "scanned_at": at.isoformat(), "vehicle_id": "v"}

    clock.advance(timedelta(hours=2))  # the buses come back to the depot
    stale = {**offline(at_b), "scanned_at": (at_b + timedelta(minutes=5)).isoformat()}
    upload_b = [offline(at_b), stale]
    b = await client.post("/v1/transit/scans/batch", json={"scans": upload_b}, headers=bus_b)
    assert b.status_code == 200, b.text
    assert [(r["status"], r["scan"] and r["scan"]["outcome"]) for r in b.json()["results"]] == [
        ("accepted", "activation"), ("refused", None)]
    assert b.json()["results"][1]["problem"]["type"] == "urn:chiikipay:problem:ticket-code-stale"
    a = await client.post("/v1/transit/scans/batch", json={"scans": [offline(at_a)]}, headers=bus.validator)
    (result,) = a.json()["results"]
    assert (result["status"], result["scan"]["conflict"], result["scan"]["outcome"]) == ("conflict", "reused", "ride")

    # Uploading again changes nothing: the accepted scans answer their first outcome.
    before = await snapshot(sessionmaker)
    again = await client.post("/v1/transit/scans/batch", json={"scans": upload_b}, headers=bus_b)
    assert [(r["status"], r["replayed"]) for r in again.json()["results"]] == [("accepted", True), ("refused", False)]
    assert await snapshot(sessionmaker) == before

    conflicts = await client.get("/v1/transit/conflicts", headers=tokens.merchant_admin(bus.merchant_id))
    assert [(c["ticket_id"], c["conflict"], c["scanned_at"]) for c in conflicts.json()["items"]] == [
        (bought["id"], "reused", at_a.isoformat().replace("+00:00", "Z"))]
    assert (await ticket(client, tokens, bought["id"]))["rides_taken"] == 2
    async with sessionmaker() as s:
        (day,) = (await transit.counts(s, region="aizu", since=START.date(), until=START.date() + timedelta(days=1))).products
    assert (day.activations, day.rides, day.conflicts) == (1, 2, 1)


async def test_an_offline_ride_before_a_day_pass_activation_starts_its_24_hours(client, tokens, bus, clock):
    bus_b = await add_validator(client, tokens, bus.merchant_id, "bus 102")
    bought = await buy(client, tokens, bus.products["day"])
    early = (await codes(client, tokens, bought))[0]
    offline_at = clock.now()
    clock.advance(timedelta(hours=1))
    online = await scan(client, bus.validator, (await codes(client, tokens, bought))[0]["code"], clock.now())
    assert online.json()["outcome"] == "activation"
    upload = await client.post("/v1/transit/scans/batch", json={"scans": [
        {"scan_id": str(uuid.uuid4()), "code": early["code"], "scanned_at": offline_at.isoformat()}]}, headers=bus_b)
    (result,) = upload.json()["results"]
    assert (result["status"], result["scan"]["outcome"]) == ("accepted", "ride")
    assert result["scan"]["valid_until"] == (offline_at + timedelta(hours=24)).isoformat().replace("+00:00", "Z")


async def test_buying_is_refused_with_the_wallets_problem_and_nothing_changes(client, tokens, town, bus, sessionmaker):
    costly = await add_product(client, tokens, bus.merchant_id, name="Tour pass", name_ja="観光周遊券", kind="day_pass",
                               fares={"adult": 5_001})
    retire = await client.post(f"/v1/transit/products/{bus.products['multi']['id']}/retire",
                               headers=idem(tokens.merchant_admin(bus.merchant_id)))
    assert retire.json()["status"] == "retired"
    before = await snapshot(sessionmaker)
    cases = [
        ({"product_id": costly["id"], "rider_category": "adult"}, "resident-sachiko", 402, "insufficient-balance"),
        ({"product_id": bus.products["multi"]["id"], "rider_category": "adult"}, "resident-hanako", 409,
         "fare-product-retired"),
        ({"product_id": bus.products["day"]["id"], "rider_category": "elderly"}, "resident-hanako", 422,
         "rider-category-not-offered"),
        ({"product_id": str(uuid.uuid4()), "rider_category": "adult"}, "resident-hanako", 404, "fare-product-not-found"),
    ]
    for body, subject, status, slug in cases:
        response = await client.post("/v1/transit/tickets", json=body, headers=idem(tokens.resident(subject)))
        assert_problem(response, status, slug)
    assert await snapshot(sessionmaker) == before


async def test_a_suspended_bus_operator_sells_no_ticket(client, tokens, town, bus, sessionmaker):
    suspended = await client.patch(f"/v1/merchants/{bus.merchant_id}", json={"status": "suspended"},
                                   headers=idem(tokens.operator()))
    assert suspended.status_code == 200, suspended.text
    before = await snapshot(sessionmaker)
    response = await client.post("/v1/transit/tickets", json={"product_id": bus.products["single"]["id"],
                                                              "rider_category": "adult"}, headers=idem(tokens.resident()))
    assert_problem(response, 409, "merchant-inactive")
    assert await snapshot(sessionmaker) == before


async def test_a_purchase_retried_with_its_key_buys_once(client, tokens, bus, sessionmaker):
    headers = idem(tokens.resident())
    body = {"product_id": bus.products["single"]["id"], "rider_category": "adult"}
    first = await client.post("/v1/transit/tickets", json=body, headers=headers)
    again = await client.post("/v1/transit/tickets", json=body, headers=headers)
    assert (first.status_code, again.status_code, again.json()) == (201, 201, first.json())
    mine = await client.get("/v1/me/transit/tickets", headers=tokens.resident())
    assert [t["id"] for t in mine.json()["items"]] == [first.json()["id"]]


async def test_who_defines_products_and_validators(client, tokens, town, bus, sessionmaker):
    teahouse = town.merchants["Tsurugajo Teahouse"]
    product = {"name": "Ride", "name_ja": "乗車券", "kind": "single_ride", "fares": {"adult": 200}}
    before = await snapshot(sessionmaker)
    refusals = [
        (tokens.resident(), {"merchant_id": bus.merchant_id}, 403, "forbidden"),
        (tokens.merchant_admin(teahouse), {"merchant_id": bus.merchant_id}, 404, "transit-operator-not-found"),
        (tokens.operator(), {"merchant_id": teahouse}, 404, "transit-operator-not-found"),
        (tokens.merchant_admin(bus.merchant_id), {"merchant_id": bus.merchant_id, "name": "Single ride"}, 409,
         "fare-product-name-taken"),
        (tokens.merchant_admin(bus.merchant_id), {"merchant_id": bus.merchant_id, "kind": "multi_ride"}, 422,
         "invalid-fare-product"),
        (tokens.merchant_admin(bus.merchant_id), {"merchant_id": bus.merchant_id, "rides": 5}, 422,
         "invalid-fare-product"),
        (tokens.merchant_admin(bus.merchant_id), {"merchant_id": bus.merchant_id, "fares": {}}, 422,
         "invalid-fare-product"),
    ]
    for headers, details, status, slug in refusals:
        response = await client.post("/v1/transit/products", json={**product, **details}, headers=idem(headers))
        assert_problem(response, status, slug)
    again = await client.post("/v1/transit/operators", json={"merchant_id": bus.merchant_id},
                              headers=idem(tokens.operator()))
    assert_problem(again, 409, "transit-operator-exists")
    assert_problem(await client.post("/v1/transit/validators", json={"merchant_id": bus.merchant_id, "name": "x"},
                                     headers=idem(tokens.merchant_admin(teahouse))), 404, "transit-operator-not-found")
    for path in ("/v1/transit/conflicts", "/v1/transit/validators"):
        listed = await client.get(path, params={"merchant_id": bus.merchant_id}, headers=tokens.merchant_staff(teahouse))
        assert_problem(listed, 404, "transit-operator-not-found")
    assert await snapshot(sessionmaker) == before


async def test_a_revoked_validator_is_refused_at_once(client, tokens, bus, clock, sessionmaker):
    listed = await client.get("/v1/transit/validators", params={"merchant_id": bus.merchant_id},
                              headers=tokens.merchant_admin(bus.merchant_id))
    (validator,) = listed.json()
    revoked = await client.delete(f"/v1/transit/validators/{validator['id']}",
                                  headers=idem(tokens.merchant_admin(bus.merchant_id)))
    assert revoked.json()["revoked_at"] is not None
    bought = await buy(client, tokens, bus.products["single"])
    code = (await codes(client, tokens, bought))[0]["code"]
    before = await snapshot(sessionmaker)
    assert_problem(await scan(client, bus.validator, code, clock.now()), 401, "invalid-token")
    assert await snapshot(sessionmaker) == before


async def test_the_keys_verify_the_codes_offline(client, tokens, bus, clock):
    """What a validator device does: fetch the region's keys once, then check codes with no connection."""
    keys = await client.get("/v1/transit/keys", headers=bus.validator)
    assert keys.status_code == 200, keys.text
    published = {k["key_id"]: ticket_codes.public_key_from_raw(k["public_key"]) for k in keys.json()["keys"]}
    bought = await buy(client, tokens, bus.products["day"], "child")
    shown = await codes(client, tokens, bought)
    claims = ticket_codes.verify(shown[3]["code"], keys=published, region="aizu",
                                 operator_id=uuid.UUID(bus.merchant_id), at=clock.now() + timedelta(seconds=90))
    assert (str(claims.ticket_id), claims.kind, claims.rider_category) == (bought["id"], "day_pass", "child")


async def test_coin_payments_on_the_bus_count_as_transit_payments(client, tokens, town, bus, sessionmaker, clock):
    """The on-demand bus takes its fare by QR at its own store: an ordinary payment, which the KPI
    counts beside the ticket purchases, per month (交通チケットのデジタル決済数)."""
    await buy(client, tokens, bus.products["single"])
    async with sessionmaker() as s, s.begin():
        store_id = (await wallet.merchant(s, region="aizu", merchant_id=uuid.UUID(bus.merchant_id))).store_ids[0]
        for price in (300, 450):
            await wallet.pay(s, clock, region="aizu", actor=wallet.Actor("resident-taro", "resident"),
                             payer="resident-taro", store_id=store_id, price=price)
        teahouse = (await wallet.merchant(s, region="aizu", merchant_id=uuid.UUID(town.merchants["Tsurugajo Teahouse"]))
                    ).store_ids[0]
        await wallet.pay(s, clock, region="aizu", actor=wallet.Actor("resident-taro", "resident"),
                         payer="resident-taro", store_id=teahouse, price=800)  # not transit
    clock.advance(timedelta(days=30))  # into May (Tokyo)
    await buy(client, tokens, bus.products["day"])
    async with sessionmaker() as s:
        counted = await transit.counts(s, region="aizu", since=START.date(), until=START.date() + timedelta(days=61))
    assert [(p.day, p.merchant_id, p.payments, p.amount) for p in counted.payments] == [
        (START.date(), uuid.UUID(bus.merchant_id), 2, 750)]
    assert [(p.day, p.tickets_sold, p.sales) for p in counted.products] == [
        (START.date(), 1, 200), (START.date() + timedelta(days=30), 1, 500)]
    assert counted.monthly_digital_payments() == {(2026, 4): 3, (2026, 5): 1}


async def test_two_buses_scanning_one_single_ride_at_once_take_one_ride(client, tokens, bus, clock, sessionmaker):
    """Online, the ticket's row lock makes the two scans take turns: one rides, the other is refused."""
    bus_b = await add_validator(client, tokens, bus.merchant_id, "bus 102")
    bought = await buy(client, tokens, bus.products["single"])
    code = (await codes(client, tokens, bought))[0]["code"]
    answers = await asyncio.gather(*(scan(client, v, code, clock.now()) for v in (bus.validator, bus_b) * 4))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 7
    for refused in (a for a in answers if a.status_code == 409):
        assert_problem(refused, 409, "ticket-reused")
    assert (await ticket(client, tokens, bought["id"]))["rides_taken"] == 1


async def test_an_upload_refuses_a_reused_scan_id_and_a_scan_after_the_servers_clock(client, tokens, bus, clock,
                                                                                    sessionmaker):
    bought = await buy(client, tokens, bus.products["multi"])
    code = (await codes(client, tokens, bought))[0]["code"]
    scan_id = uuid.uuid4()
    first = await scan(client, bus.validator, code, clock.now(), scan_id=scan_id)
    assert first.status_code == 201, first.text
    before = await snapshot(sessionmaker)
    upload = await client.post("/v1/transit/scans/batch", json={"scans": [
        {"scan_id": str(scan_id), "code": code, "scanned_at": clock.now().isoformat(), "vehicle_id": "other"},
        {"scan_id": str(uuid.uuid4()), "code": code, "scanned_at": (clock.now() + timedelta(minutes=5)).isoformat()},
    ]}, headers=bus.validator)
    assert upload.status_code == 200, upload.text
    assert [(r["status"], r["problem"]["type"].rsplit(":", 1)[1]) for r in upload.json()["results"]] == [
        ("refused", "scan-id-reused"), ("refused", "scan-in-future")]
    assert await snapshot(sessionmaker) == before


async def refund(client, tokens, bought: dict, amount: int):
    return await client.post(f"/v1/payments/{bought['payment_id']}/refunds", json={"amount": amount},
                             headers=idem(tokens.merchant_admin(bought["merchant_id"])))


async def test_a_refunded_ticket_rides_no_more(client, tokens, bus, clock, sessionmaker):
    """The bus operator refunds an unridden ticket's whole fare: the coin is back in the wallet, the
    ticket shows `refunded`, shows no code, and a validator refuses a code fetched before."""
    bought = await buy(client, tokens, bus.products["single"])
    shown = (await codes(client, tokens, bought))[0]["code"]
    paid = await balance(client, tokens)
    response = await refund(client, tokens, bought, bought["fare"])
    assert response.status_code == 201, response.text
    assert await balance(client, tokens) == paid + bought["fare"]
    after = await ticket(client, tokens, bought["id"])
    assert (after["state"], after["refunded_at"] is not None) == ("refunded", True)

    before = await snapshot(sessionmaker)
    assert_problem(await scan(client, bus.validator, shown, clock.now()), 409, "ticket-refunded")
    assert_problem(await client.get(f"/v1/me/transit/tickets/{bought['id']}/code",
                                    headers=tokens.resident("resident-hanako")), 409, "ticket-refunded")
    assert await snapshot(sessionmaker) == before
    assert await ledger_violations(sessionmaker) == []


async def test_a_ridden_or_partly_refunded_ticket_keeps_its_fare(client, tokens, bus, clock, sessionmaker):
    """A ticket that has carried a ride is not refunded, and no ticket is refunded in part: the
    shop's refund is refused with the ticket's problem and neither coin nor ticket moves."""
    ridden = await buy(client, tokens, bus.products["multi"])
    code = (await codes(client, tokens, ridden))[0]["code"]
    assert (await scan(client, bus.validator, code, clock.now())).status_code == 201
    unridden = await buy(client, tokens, bus.products["day"])

    before = await snapshot(sessionmaker)
    assert_problem(await refund(client, tokens, ridden, ridden["fare"]), 409, "ticket-ridden")
    assert_problem(await refund(client, tokens, unridden, unridden["fare"] - 1), 422, "ticket-refund-partial")
    assert await snapshot(sessionmaker) == before
    assert (await ticket(client, tokens, unridden["id"]))["state"] == "unused"


async def test_an_offline_ride_before_the_refund_is_a_conflict(client, tokens, bus, clock, sessionmaker):
    """The rider boards an offline bus, then has the fare refunded before the bus uploads: the
    ride happened, so it counts, as a `refunded` conflict (offline validation cannot prevent it)."""
    bought = await buy(client, tokens, bus.products["single"])
    shown = (await codes(client, tokens, bought))[0]
    boarded = clock.now()
    assert (await refund(client, tokens, bought, bought["fare"])).status_code == 201
    clock.advance(timedelta(hours=1))
    upload = await client.post("/v1/transit/scans/batch", headers=bus.validator, json={"scans": [
        {"scan_id": str(uuid.uuid4()), "code": shown["code"], "scanned_at": boarded.isoformat()}]})
    assert upload.status_code == 200, upload.text
    (result,) = upload.json()["results"]
    assert (result["status"], result["scan"]["conflict"]) == ("conflict", "refunded")
    assert (await ticket(client, tokens, bought["id"]))["rides_taken"] == 1


async def test_a_ticket_purchase_tells_the_bus_operator(app, client, tokens, bus):
    """The bus operator's terminals hear the fare's payment as any payment."""
    bought = []

    async def act():
        bought.append(await buy(client, tokens, bus.products["single"]))

    notices = await shop_notices(app, bus.merchant_id, act)
    assert [(n["id"], n["amount"]) for n in notices] == [(bought[0]["payment_id"], bought[0]["fare"])]
