"""The wallet's public surface (services/wallet/public.py), as coupons and settlement call it: in
a session of their own, with an explicit actor, against real PostgreSQL. Every outcome is checked
against values worked out by hand; every refusal for its problem type and for leaving nothing
behind even when the caller goes on to commit its session (each write runs in a savepoint)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from app.demo import MERCHANTS
from services.wallet import onboarding, public
from services.wallet.directory import repository as directory_repo
from services.wallet.directory import service as directory
from services.wallet.directory.errors import MerchantNotFound, RegionNotFound
from services.wallet.payments import hooks
from services.wallet.payments import repository as payments_repo
from services.wallet.payments import service as payments
from services.wallet.payments.errors import SponsorBudgetExhausted
from services.wallet.verify import verify_ledger
from shared import emvco
from shared.auth import Role
from shared.errors import Conflict, Problem
from shared.money import Unit
from tests.conftest import START
from tests.helpers import assert_problem, idem, ledger_violations, snapshot
from tests.wallet.test_lots import give

REGION = "aizu"
HANAKO, HANAKO_YEN = "resident-hanako", 30_000  # the demo town's opening balance
TEAHOUSE, FARM = "Tsurugajo Teahouse", "Minato Farm"
COUPONS = public.Actor("coupons:redemption", "resident")
CITY = public.Actor("operator-aizu", "operator")
SETTLEMENT = public.Actor("settlement:run:2026-04", "operator")
DAY = (START - timedelta(hours=1), START + timedelta(days=1))


async def store_of(s, town, merchant: str = TEAHOUSE) -> uuid.UUID:
    return (await payments_repo.stores(s, uuid.UUID(town.merchants[merchant])))[0].id


async def money(sessionmaker, town, merchant: str = TEAHOUSE) -> dict[str, int]:
    """Hanako's wallet, the shop's yen, and the region's fee income and bank clearing (yen), summed from entries."""
    async with sessionmaker() as s:
        rows = (await s.execute(text(
            "SELECT CASE WHEN a.kind = 'resident' THEN 'resident' WHEN a.kind = 'merchant' THEN 'merchant' ELSE a.kind END,"
            " coalesce(sum(e.amount), 0) FROM wallet.accounts a LEFT JOIN wallet.entries e ON e.account_id = a.id"
            " LEFT JOIN wallet.residents r ON r.id = a.resident_id"
            " WHERE a.unit = 'yen' AND (r.subject = :resident OR a.merchant_id = :merchant"
            "   OR a.kind IN ('fee_income', 'bank_clearing')) GROUP BY 1"
        ), {"resident": HANAKO, "merchant": uuid.UUID(town.merchants[merchant])})).all()
    return dict(rows)


async def journals(sessionmaker) -> list[tuple[str, list[tuple[str, int]]]]:
    """Every journal after the demo's top-ups, oldest first: its kind and (account kind, amount) entries."""
    async with sessionmaker() as s:
        rows = (await s.execute(text(
            "SELECT j.id, j.kind, a.kind, e.amount FROM wallet.journals j JOIN wallet.entries e ON e.journal_id = j.id"
            " JOIN wallet.accounts a ON a.id = e.account_id WHERE j.kind <> 'topup' ORDER BY j.id, a.kind, e.amount"
        ))).all()
    found: dict[uuid.UUID, tuple[str, list[tuple[str, int]]]] = {}
    for journal_id, kind, account_kind, amount in rows:
        found.setdefault(journal_id, (kind, []))[1].append((account_kind, amount))
    return list(found.values())


async def lines(sessionmaker, merchant_id: str | None = None, period=DAY) -> list[public.StatementLine]:
    async with sessionmaker() as s:
        return [line async for line in public.statement_lines(
            s, region=REGION, since=period[0], until=period[1],
            merchant_id=uuid.UUID(merchant_id) if merchant_id else None,
        )]


def shape(found: list[public.StatementLine]) -> list[tuple[str, str, int, int, int]]:
    return [(line.kind.value, line.unit, line.amount, line.fee, line.net) for line in found]


async def funded_sponsor(sessionmaker, clock, budget: int, name: str = "Bus bundle campaign") -> public.SponsorBudget:
    async with sessionmaker() as s, s.begin():
        created = await public.create_sponsor(s, clock, region=REGION, actor=CITY, name=name, name_ja="バス連携キャンペーン")
        return await public.fund_sponsor(s, clock, region=REGION, actor=CITY, sponsor_id=created.sponsor_id, amount=budget)


async def pay(sessionmaker, clock, town, price: int, discount: public.Discount | None = None, **more: Any) -> public.PaidPayment:
    async with sessionmaker() as s, s.begin():
        return await public.pay(
            s, clock, region=REGION, actor=COUPONS, payer=HANAKO, store_id=await store_of(s, town), price=price,
            discount=discount, **more,
        )


async def refused(sessionmaker, problem: type[Problem], call) -> Problem:
    """Run `call(session)`, expect `problem`, then commit the session as a careless caller might:
    the savepoint must have taken back everything the call did."""
    async with sessionmaker() as s:
        with pytest.raises(problem) as caught:
            await call(s)
        await s.commit()
    return caught.value


# --- reading a scanned code -----------------------------------------------------------------------


async def test_a_scanned_static_code_resolves_to_its_store(sessionmaker, town):
    async with sessionmaker() as s:
        store_id = await store_of(s, town)
        printed = await payments.store_qr(s, *await payments.store_with_merchant(s, store_id))
        scanned = await public.resolve_qr(s, region=REGION, payload=printed.payload)
    assert (scanned.store_id, scanned.merchant_id, scanned.request) == (store_id, uuid.UUID(town.merchants[TEAHOUSE]), None)
    assert (scanned.merchant_name_ja, scanned.mcc) == ("鶴ヶ城茶屋", "5812")


async def test_a_scanned_dynamic_code_carries_the_shops_request_and_paying_it_claims_it(sessionmaker, clock, town):
    staff = public.Actor("shop-clerk", Role.MERCHANT_STAFF.value)
    async with sessionmaker() as s, s.begin():
        store, merchant = await payments.store_with_merchant(s, await store_of(s, town))
        request, payload = await payments.create_payment_request(s, clock, staff, store, merchant, 1_500, "order-7")
    async with sessionmaker() as s:
        scanned = await public.resolve_qr(s, region=REGION, payload=payload)
    assert scanned.request == public.RequestedPayment(request.id, 1_500, "order-7", "open", request.expires_at)

    discount = public.Discount(200, public.DiscountFunder.SHOP)
    paid = await pay(sessionmaker, clock, town, None, discount, payment_request_id=scanned.request.id)
    # The request's ¥1,500 less ¥200 off: the resident pays 1,300 and the fee is 2 % of that.
    assert (paid.price, paid.amount, paid.fee) == (1_500, 1_300, 26)
    async with sessionmaker() as s:
        claimed = await payments_repo.payment_request(s, request.id)
    assert (claimed.status, claimed.payment_id) == ("paid", paid.id)

    before = await snapshot(sessionmaker)
    again = await refused(sessionmaker, Conflict, lambda s: public.pay(
        s, clock, region=REGION, actor=COUPONS, payer=HANAKO, store_id=scanned.store_id, price=None,
        payment_request_id=scanned.request.id,
    ))
    assert again.slug == "payment-request-paid"
    assert await snapshot(sessionmaker) == before


async def test_a_code_naming_no_store_here_is_refused(sessionmaker, town):
    async with sessionmaker() as s:
        printed = await payments.store_qr(s, *await payments.store_with_merchant(s, await store_of(s, town)))
    qr = emvco.parse_payload(printed.payload)

    def code(**changes: str) -> str:  # well formed, with a valid CRC
        fields = dict(guid=qr.guid, store_id=qr.store_id, mcc=qr.mcc, name=qr.name, city=qr.city, name_ja=qr.name_ja,
                      city_ja=qr.city_ja, terminal=qr.terminal, amount=None, bill_number=None)
        return emvco.build_payload(**{**fields, **changes})

    # Another last digit than the real checksum's (a fixed "0" would be the real one 1 time in 16).
    wrong_crc_digit = "1" if printed.payload.endswith("0") else "0"
    before = await snapshot(sessionmaker)
    for payload, status, slug in ((code(store_id=str(uuid.uuid4())), 404, "store-not-found"),
                                  (code(guid="jp.chiikipay.kofu"), 422, "qr-foreign"),
                                  (code(name="Another Shop"), 422, "qr-mismatch"),
                                  (printed.payload[:-1] + wrong_crc_digit, 422, "qr-checksum-mismatch")):
        async with sessionmaker() as s:
            with pytest.raises(Problem) as caught:
                await public.resolve_qr(s, region=REGION, payload=payload)
        assert (caught.value.status, caught.value.slug) == (status, slug), payload
    assert await snapshot(sessionmaker) == before


# --- paying ---------------------------------------------------------------------------------------------


async def test_a_payment_without_discount_is_an_ordinary_payment(sessionmaker, clock, town):
    paid = await pay(sessionmaker, clock, town, 1_000)
    assert (paid.price, paid.amount, paid.fee, paid.point_amount, paid.discount) == (1_000, 1_000, 20, 0, None)
    assert await money(sessionmaker, town) == {"resident": HANAKO_YEN - 1_000, "merchant": 980, "fee_income": 20,
                                               "bank_clearing": 0}
    assert await journals(sessionmaker) == [("payment", [("fee_income", 20), ("merchant", 980), ("resident", -1_000)])]
    async with sessionmaker() as s:
        assert await public.payment_discount(s, region=REGION, payment_id=paid.id) is None
    assert await ledger_violations(sessionmaker) == []


async def test_a_shop_discount_lowers_the_price_and_the_fee_is_on_what_was_paid(sessionmaker, clock, town):
    paid = await pay(sessionmaker, clock, town, 1_000, public.Discount(150, public.DiscountFunder.SHOP, reference="coupon-1"))
    # ¥850 paid; 2 % of 850 is 17; the shop gets 833 and nothing else moves.
    assert (paid.price, paid.amount, paid.fee) == (1_000, 850, 17)
    assert (paid.discount.price, paid.discount.discount, paid.discount.funded_by, paid.discount.sponsor_id,
            paid.discount.credit_journal_id, paid.discount.reference) == (1_000, 150, "shop", None, None, "coupon-1")
    assert await money(sessionmaker, town) == {"resident": HANAKO_YEN - 850, "merchant": 833, "fee_income": 17,
                                               "bank_clearing": 0}
    assert await journals(sessionmaker) == [("payment", [("fee_income", 17), ("merchant", 833), ("resident", -850)])]
    assert shape(await lines(sessionmaker)) == [("payment", "yen", 850, 17, 833)]
    assert await ledger_violations(sessionmaker) == []


async def test_a_sponsor_pays_the_shop_the_discount_from_its_funded_budget(sessionmaker, clock, town):
    sponsor = await funded_sponsor(sessionmaker, clock, 1_000)
    assert sponsor.budget == 1_000
    paid = await pay(sessionmaker, clock, town, 1_000, public.Discount(333, public.DiscountFunder.SPONSOR, sponsor.sponsor_id))
    # The resident pays 667, the fee is floor(2 % × 667) = 13; the shop gets 654 from the payment
    # and the 333 of the discount from the sponsor: 987.
    assert (paid.price, paid.amount, paid.fee) == (1_000, 667, 13)
    assert await money(sessionmaker, town) == {"resident": HANAKO_YEN - 667, "merchant": 987, "fee_income": 13,
                                               "bank_clearing": 0}
    assert await journals(sessionmaker) == [
        ("funding", [("campaign_fund", -1_000), ("sponsor_budget", 1_000)]),
        ("payment", [("fee_income", 13), ("merchant", 654), ("resident", -667)]),
        ("sponsor_credit", [("merchant", 333), ("sponsor_budget", -333)]),
    ]
    async with sessionmaker() as s:
        assert (await public.sponsor(s, region=REGION, sponsor_id=sponsor.sponsor_id)).budget == 667
        recorded = await public.payment_discount(s, region=REGION, payment_id=paid.id)
    assert recorded == paid.discount  # its credit journal is the statement line below
    found = await lines(sessionmaker)
    assert shape(found) == [("payment", "yen", 667, 13, 654), ("sponsor_credit", "yen", 333, 0, 333)]
    assert found[1].journal_id == recorded.credit_journal_id and found[1].payment_id == paid.id
    assert found[1].occurred_at == found[0].occurred_at == paid.created_at  # in the payment's period
    assert await ledger_violations(sessionmaker) == []


async def test_a_budget_that_cannot_cover_the_discount_refuses_the_whole_payment(sessionmaker, clock, town, store_id):
    sponsor = await funded_sponsor(sessionmaker, clock, 200)
    before = await snapshot(sessionmaker)
    problem = await refused(sessionmaker, Conflict, lambda s: public.pay(
        s, clock, region=REGION, actor=COUPONS, payer=HANAKO, store_id=store_id, price=1_000,
        discount=public.Discount(300, public.DiscountFunder.SPONSOR, sponsor.sponsor_id),
    ))
    assert (problem.slug, problem.extra) == ("sponsor-budget-exhausted", {"budget": 200, "discount": 300})
    assert await snapshot(sessionmaker) == before  # no payment, no lot taken, the budget untouched


async def test_a_discount_record_naming_a_credit_journal_never_posted_is_refused_at_commit(
    sessionmaker, clock, town, store_id
):
    """wallet.pay writes a sponsor's discount record before the wallet posts the credit journal it
    names, so the record's foreign key to it is checked at the commit: a record whose journal never
    came (a caller of the function that skipped the credit) is refused with everything else."""
    sponsor = await funded_sponsor(sessionmaker, clock, 1_000)
    before = await snapshot(sessionmaker)
    async with sessionmaker() as s:
        region = await directory.region_identity(s, REGION)
        row = (await s.execute(payments.PAY, {
            "region_id": region.id, "account_id": None, "subject": HANAKO, "store_id": store_id, "amount": 700,
            "method": "mpm_static", "order_reference": None, "card_id": None, "now": clock.now(),
            "fiscal_year": 2026, "payment_id": uuid.uuid4(), "journal_id": uuid.uuid4(),
            "entry_ids": [uuid.uuid4() for _ in range(6)], "discount": 300, "discount_funder": "sponsor",
            "sponsor_id": sponsor.sponsor_id, "credit_journal_id": uuid.uuid4(), "discount_reference": None,
            "discount_by": COUPONS.subject,
        })).one()
        assert row.outcome == "ok"  # the payment and its record are written; the credit is not
        with pytest.raises(IntegrityError, match="fk_payment_discounts_credit_journal_id_journals"):
            await s.commit()
    assert await snapshot(sessionmaker) == before


async def test_a_sponsors_budget_never_goes_negative_under_concurrent_payments(sessionmaker, clock, town, store_id):
    sponsor = await funded_sponsor(sessionmaker, clock, 500)
    payers = [subject for subject in town.residents for _ in range(3)]  # three residents, three payments each

    async def attempt(payer: str) -> str:
        async with sessionmaker() as s, s.begin():
            try:
                await public.pay(s, clock, region=REGION, actor=COUPONS, payer=payer, store_id=store_id, price=1_000,
                                 discount=public.Discount(100, public.DiscountFunder.SPONSOR, sponsor.sponsor_id))
            except SponsorBudgetExhausted as exc:
                return exc.slug
        return "paid"

    outcomes = await asyncio.gather(*(attempt(payer) for payer in payers))
    # 500 yen of budget pays five discounts of 100; the four others are refused, whatever the order.
    assert sorted(outcomes) == ["paid"] * 5 + ["sponsor-budget-exhausted"] * 4
    async with sessionmaker() as s:
        assert (await public.sponsor(s, region=REGION, sponsor_id=sponsor.sponsor_id)).budget == 0
        paid = (await s.execute(text("SELECT count(*), sum(amount) FROM wallet.payments"))).one()
    assert tuple(paid) == (5, 4_500)
    assert await ledger_violations(sessionmaker) == []


@pytest.fixture
async def store_id(sessionmaker, town) -> uuid.UUID:
    async with sessionmaker() as s:
        return await store_of(s, town)


@pytest.mark.parametrize(("discount", "price", "slug"), [
    (public.Discount(1_000, public.DiscountFunder.SHOP), 1_000, "invalid-discount"),  # nothing left to pay
    (public.Discount(0, public.DiscountFunder.SHOP), 1_000, "invalid-discount"),
    (public.Discount(100, public.DiscountFunder.SPONSOR), 1_000, "invalid-discount"),  # whose budget?
    (public.Discount(100, public.DiscountFunder.SPONSOR, uuid.uuid4()), 1_000, "sponsor-not-found"),
    (None, 30_001, "insufficient-balance"),
])
async def test_a_payment_refused_changes_nothing(sessionmaker, clock, town, store_id, discount, price, slug):
    before = await snapshot(sessionmaker)
    problem = await refused(sessionmaker, Problem, lambda s: public.pay(
        s, clock, region=REGION, actor=COUPONS, payer=HANAKO, store_id=store_id, price=price, discount=discount,
    ))
    assert problem.slug == slug
    assert await snapshot(sessionmaker) == before


async def test_paying_an_unknown_store_is_refused(sessionmaker, clock, town):
    before = await snapshot(sessionmaker)
    problem = await refused(sessionmaker, Problem, lambda s: public.pay(
        s, clock, region=REGION, actor=COUPONS, payer=HANAKO, store_id=uuid.uuid4(), price=500,
    ))
    assert (problem.status, problem.slug) == (404, "store-not-found")
    assert await snapshot(sessionmaker) == before


# --- hooks ------------------------------------------------------------------------------------------------


class Refusal(Conflict):
    slug, title = "coupon-already-used", "The coupon was used meanwhile"


@pytest.fixture
def refusing_hooks():
    """A coupon service's hooks that refuse, registered as the composition root would, and taken
    out again after the test (the registry is the process's)."""
    seen: list[tuple[str, int]] = []

    async def paid(session, clock, *, payment_id, amount, **_):
        # The hook runs in the payment's own transaction: the payment is already there to read.
        stored = await payments_repo.payment(session, payment_id)
        seen.append(("paid", stored.amount))
        raise Refusal("The coupon was used on another payment a moment ago.")

    async def refunded(session, clock, *, payment_id, refunded_total, **_):
        seen.append(("refunded", refunded_total))
        raise Refusal("The redemption cannot be undone.")

    yield paid, refunded, seen
    for registry, hook in ((hooks.on_paid, paid), (hooks.on_refunded, refunded)):
        if hook in registry:
            registry.remove(hook)


async def test_a_hook_that_refuses_takes_the_whole_payment_back(sessionmaker, clock, town, store_id, refusing_hooks):
    paid_hook, _, seen = refusing_hooks
    sponsor = await funded_sponsor(sessionmaker, clock, 1_000)
    public.register_hooks(paid=paid_hook)
    before = await snapshot(sessionmaker)
    problem = await refused(sessionmaker, Refusal, lambda s: public.pay(
        s, clock, region=REGION, actor=COUPONS, payer=HANAKO, store_id=store_id, price=1_000,
        discount=public.Discount(100, public.DiscountFunder.SPONSOR, sponsor.sponsor_id),
    ))
    assert problem.slug == "coupon-already-used" and seen == [("paid", 900)]
    assert await snapshot(sessionmaker) == before  # neither the payment nor the sponsor's credit


async def test_a_hook_that_refuses_takes_the_whole_refund_back(sessionmaker, clock, town, refusing_hooks):
    _, refunded_hook, seen = refusing_hooks
    paid = await pay(sessionmaker, clock, town, 1_000)
    public.register_hooks(refunded=refunded_hook)
    before = await snapshot(sessionmaker)
    await refused(sessionmaker, Refusal, lambda s: public.refund(
        s, clock, region=REGION, actor=COUPONS, payment_id=paid.id, amount=400,
    ))
    assert seen == [("refunded", 400)]
    assert await snapshot(sessionmaker) == before


async def test_a_hook_that_refuses_an_http_payment_is_the_answer_and_nothing_is_committed(
    client, tokens, sessionmaker, clock, town, store_id, refusing_hooks
):
    paid_hook, _, seen = refusing_hooks
    async with sessionmaker() as s:
        printed = await payments.store_qr(s, *await payments.store_with_merchant(s, store_id))
    public.register_hooks(paid=paid_hook)
    before = await snapshot(sessionmaker)
    response = await client.post("/v1/payments", json={"qr": printed.payload, "amount": 700},
                                 headers=idem(tokens.resident(HANAKO)))
    assert_problem(response, 409, "coupon-already-used")
    assert seen == [("paid", 700)]
    assert await snapshot(sessionmaker) == before


# --- refunding --------------------------------------------------------------------------------------------


async def test_refunds_give_the_fee_and_the_sponsors_share_back_pro_rata(sessionmaker, clock, town):
    sponsor = await funded_sponsor(sessionmaker, clock, 1_000)
    paid = await pay(sessionmaker, clock, town, 1_000, public.Discount(333, public.DiscountFunder.SPONSOR, sponsor.sponsor_id))
    clock.advance(timedelta(hours=2))  # refunds are on their own date
    async with sessionmaker() as s, s.begin():
        first = await public.refund(s, clock, region=REGION, actor=COUPONS, payment_id=paid.id, amount=100, reason="one item")
    # Of the 667 paid: fee back floor(13 × 100/667) = 1 (1.95), the sponsor's floor(333 × 100/667)
    # = 49 (49.93); the shop gives back 100 − 1 + 49 = 148 of its 987.
    assert (first.amount, first.fee_returned, first.sponsor_reversed, first.refunded_total) == (100, 1, 49, 100)
    assert await money(sessionmaker, town) == {"resident": HANAKO_YEN - 567, "merchant": 839, "fee_income": 12,
                                               "bank_clearing": 0}
    async with sessionmaker() as s, s.begin():
        rest = await public.refund(s, clock, region=REGION, actor=COUPONS, payment_id=paid.id, amount=567)
    # Refunded in full: the rest of the fee (12) and of the sponsor's discount (284) come back.
    assert (rest.fee_returned, rest.sponsor_reversed, rest.refunded_total) == (12, 284, 667)
    assert await money(sessionmaker, town) == {"resident": HANAKO_YEN, "merchant": 0, "fee_income": 0, "bank_clearing": 0}
    async with sessionmaker() as s:
        assert (await public.sponsor(s, region=REGION, sponsor_id=sponsor.sponsor_id)).budget == 1_000
        assert (await public.payment_discount(s, region=REGION, payment_id=paid.id)).reversed == 333
    found = await lines(sessionmaker)
    assert shape(found) == [
        ("payment", "yen", 667, 13, 654), ("sponsor_credit", "yen", 333, 0, 333),
        ("refund", "yen", -100, -1, -99), ("sponsor_reversal", "yen", -49, 0, -49),
        ("refund", "yen", -567, -12, -555), ("sponsor_reversal", "yen", -284, 0, -284),
    ]
    assert [line.refund_id for line in found[2:]] == [first.id, first.id, rest.id, rest.id]
    assert [line.journal_id for line in found[2:4]] == [first.journal_id, first.sponsor_journal_id]
    assert found[2].occurred_at == START + timedelta(hours=2)
    # The refunds' own rows carry the merchant (settlement finds them by merchant and date).
    async with sessionmaker() as s:
        merchants = (await s.execute(text("SELECT DISTINCT merchant_id FROM wallet.refunds"))).scalars().all()
        audited = (await s.execute(text(
            "SELECT actor_subject, actor_role, after ->> 'sponsor_reversed' FROM platform.audit_events"
            " WHERE action = 'payment.refund' ORDER BY id"
        ))).all()
    assert merchants == [paid.merchant_id]
    assert audited == [("coupons:redemption", "resident", "49"), ("coupons:redemption", "resident", "284")]
    assert await ledger_violations(sessionmaker) == []


async def test_a_refund_refused_changes_nothing(sessionmaker, clock, town):
    paid = await pay(sessionmaker, clock, town, 1_000)
    before = await snapshot(sessionmaker)

    def refund(amount: int, payment_id: uuid.UUID = paid.id, region: str = REGION):
        return lambda s: public.refund(s, clock, region=region, actor=COUPONS, payment_id=payment_id, amount=amount)

    beyond = await refused(sessionmaker, Problem, refund(1_001))
    assert (beyond.slug, beyond.extra) == ("refund-exceeds-remaining", {"remaining": 1_000})
    assert (await refused(sessionmaker, Problem, refund(0))).slug == "invalid-amount"
    assert (await refused(sessionmaker, Problem, refund(100, uuid.uuid4()))).slug == "payment-not-found"
    clock.advance(timedelta(days=1))  # past the region's refund window: the day of the payment
    assert (await refused(sessionmaker, Problem, refund(100))).slug == "refund-window-closed"
    assert await snapshot(sessionmaker) == before


# --- payouts -----------------------------------------------------------------------------------------------


async def test_a_payout_takes_the_merchants_yen_to_bank_clearing(sessionmaker, clock, town):
    paid = await pay(sessionmaker, clock, town, 1_000)
    async with sessionmaker() as s, s.begin():
        payout = await public.post_payout(s, clock, region=REGION, actor=SETTLEMENT, merchant_id=paid.merchant_id,
                                          amount=500, reference="2026-04 transfer file")
    assert (payout.amount, payout.merchant_id, payout.reference) == (500, paid.merchant_id, "2026-04 transfer file")
    assert await money(sessionmaker, town) == {"resident": HANAKO_YEN - 1_000, "merchant": 480, "fee_income": 20,
                                               "bank_clearing": 500}
    assert (await journals(sessionmaker))[-1] == ("payout", [("bank_clearing", 500), ("merchant", -500)])
    found = await lines(sessionmaker, str(paid.merchant_id))
    assert shape(found) == [("payment", "yen", 1_000, 20, 980), ("payout", "yen", -500, 0, -500)]
    assert found[1].journal_id == payout.journal_id
    assert await ledger_violations(sessionmaker) == []

    before = await snapshot(sessionmaker)

    def payout_of(amount: int, merchant_id: uuid.UUID = paid.merchant_id):
        return lambda s: public.post_payout(s, clock, region=REGION, actor=SETTLEMENT, merchant_id=merchant_id, amount=amount)

    beyond = await refused(sessionmaker, Problem, payout_of(481))
    assert (beyond.status, beyond.slug, beyond.extra) == (409, "payout-exceeds-balance", {"balance": 480, "requested": 481})
    assert (await refused(sessionmaker, Problem, payout_of(0))).slug == "invalid-amount"
    assert (await refused(sessionmaker, Problem, payout_of(1, uuid.uuid4()))).slug == "merchant-not-found"
    assert await snapshot(sessionmaker) == before


# --- statement lines ------------------------------------------------------------------------------------


async def test_statement_lines_cover_every_movement_of_a_period_once(sessionmaker, clock, town):
    teahouse, farm = town.merchants[TEAHOUSE], town.merchants[FARM]
    async with sessionmaker() as s, s.begin():  # shops may refund for a week
        await directory.update_region_settings(s, clock, CITY, await directory.hosted_region(s, REGION), {"refund_window_days": 7})
    yesterday = await pay(sessionmaker, clock, town, 400)  # before the period
    clock.advance(timedelta(days=1))
    period = (clock.now(), clock.now() + timedelta(days=1))
    paid = await pay(sessionmaker, clock, town, 2_000)
    admin = public.Actor("shop-owner", Role.MERCHANT_ADMIN.value)
    async with sessionmaker() as s, s.begin():
        payer = await directory.merchant(s, uuid.UUID(teahouse))
        sent = await payments.transfer(s, clock, admin, payer, uuid.UUID(farm), 700, "vegetables")
        await public.refund(s, clock, region=REGION, actor=COUPONS, payment_id=yesterday.id, amount=400)
        await public.post_payout(s, clock, region=REGION, actor=SETTLEMENT, merchant_id=uuid.UUID(farm), amount=700)

    found = await lines(sessionmaker, period=period)
    by_merchant = {m: shape([line for line in found if str(line.merchant_id) == m]) for m in (teahouse, farm)}
    # The teahouse: today's ¥2,000 (fee 40); yesterday's payment refunded today, on today's
    # statement (fee 8 back); 700 sent to the farm. The farm: 700 in (0 % transfer fee), paid out.
    assert by_merchant == {
        teahouse: [("payment", "yen", 2_000, 40, 1_960), ("transfer_out", "yen", -700, 0, -700),
                   ("refund", "yen", -400, -8, -392)],
        farm: [("transfer_in", "yen", 700, 0, 700), ("payout", "yen", -700, 0, -700)],
    }
    assert len(found) == 5 and len({(line.journal_id, line.merchant_id, line.unit) for line in found}) == 5
    transfer_lines = [line for line in found if line.kind in (public.LineKind.TRANSFER_IN, public.LineKind.TRANSFER_OUT)]
    assert {line.journal_id for line in transfer_lines} == {sent.journal_id}
    assert {(str(line.merchant_id), str(line.counterparty_merchant_id)) for line in transfer_lines} == {
        (teahouse, farm), (farm, teahouse)}
    assert [line.payment_id for line in found if line.kind is public.LineKind.PAYMENT] == [paid.id]
    # Yesterday's statement holds only yesterday's payment; the two together hold every movement.
    assert shape(await lines(sessionmaker, period=(period[0] - timedelta(days=1), period[0]))) == [
        ("payment", "yen", 400, 8, 392)]
    assert await money(sessionmaker, town) == {"resident": HANAKO_YEN - 2_000, "merchant": 1_960 - 700 + 392 - 392,
                                               "fee_income": 40, "bank_clearing": 700}
    assert await ledger_violations(sessionmaker) == []


async def test_a_payment_partly_in_points_has_a_line_per_unit(sessionmaker, clock, town):
    await give(sessionmaker, clock, HANAKO, 300, Unit.POINT)
    paid = await pay(sessionmaker, clock, town, 1_000)
    async with sessionmaker() as s, s.begin():
        await public.refund(s, clock, region=REGION, actor=COUPONS, payment_id=paid.id, amount=500)
    # Points pay first: 300 points and 700 yen. The fee of 20 is split in proportion, the points'
    # share rounded down: 20 × 300/1,000 = 6 in points, 14 in yen. The refund restores the lots
    # last taken first, so 500 yen come back, with floor(14 × 500/700) = 10 yen of fee.
    assert paid.point_amount == 300
    assert shape(await lines(sessionmaker)) == [
        ("payment", "point", 300, 6, 294), ("payment", "yen", 700, 14, 686), ("refund", "yen", -500, -10, -490)]
    assert await ledger_violations(sessionmaker) == []


async def test_ledger_verify_names_a_merchant_movement_no_statement_line_shows(sessionmaker, clock, town):
    """The completeness check can fail: a journal of a kind that statements do not know, moving a
    shop's yen, and a payout that pays a resident instead of the bank."""
    paid = await pay(sessionmaker, clock, town, 1_000)
    async with sessionmaker() as s, s.begin():
        merchant = await directory_repo.merchant_account(s, paid.merchant_id, "yen")
        fee_income = (await s.execute(text(
            "SELECT id FROM wallet.accounts WHERE kind = 'fee_income' AND unit = 'yen'"))).scalar_one()
        for kind, other in (("adjustment", fee_income), ("payout", paid.wallet_account_id)):
            journal = uuid.uuid4()
            await s.execute(text("INSERT INTO wallet.journals VALUES (:id, :region, :kind, 'raw-sql', NULL, NULL, now())"),
                            {"id": journal, "region": paid.region_id, "kind": kind})
            for account, amount in ((merchant.id, -10), (other, 10)):
                await s.execute(text("INSERT INTO wallet.entries VALUES (:id, :j, :a, :r, 'yen', :amount, NULL, now())"),
                                {"id": uuid.uuid4(), "j": journal, "a": account, "r": paid.region_id, "amount": amount})
    async with sessionmaker() as s:
        found = await verify_ledger(s)
    details = {(v.invariant, v.detail) for v in found}
    assert ("payments", f"merchant {paid.merchant_id} moved -10 yen; its 0 statement line(s) say 0") in details
    assert (4, "a payout journal moves merchant -yen, resident +yen, not merchant to bank_clearing in yen") in details


# --- regions, residents and notices -----------------------------------------------------------------------


async def test_residents_are_the_regions_active_wallets(sessionmaker, clock, town):
    async with sessionmaker() as s:
        assert await public.residents(s, region=REGION) == ["resident-hanako", "resident-sachiko", "resident-taro"]
        assert await public.residents(s, region=REGION, among=["resident-taro", "nobody"]) == ["resident-taro"]
        assert await public.residents(s, region=REGION, among=[]) == []
        region = await directory_repo.region_by_code(s, REGION)
        assert await public.region_id(s, region=REGION) == region.id
    async with sessionmaker() as s, s.begin():
        _, taro = await directory_repo.resident_wallet(s, region.id, "resident-taro", Unit.YEN.value)
        await s.execute(text("UPDATE wallet.accounts SET status = 'suspended' WHERE id = :id"), {"id": taro.id})
    async with sessionmaker() as s:
        assert await public.residents(s, region=REGION) == ["resident-hanako", "resident-sachiko"]


async def test_payers_are_those_asked_about_who_paid_in_the_period_at_the_sectors(sessionmaker, clock, town):
    everyone = ["resident-hanako", "resident-sachiko", "resident-taro"]

    async def pay_as(payer: str, merchant: str, price: int) -> public.PaidPayment:
        async with sessionmaker() as s, s.begin():
            return await public.pay(s, clock, region=REGION, actor=COUPONS, payer=payer,
                                    store_id=await store_of(s, town, merchant), price=price)

    await pay_as("resident-taro", TEAHOUSE, 500)  # food_service
    clock.advance(timedelta(hours=2))
    await pay_as("resident-sachiko", FARM, 300)  # agriculture
    refunded = await pay_as(HANAKO, TEAHOUSE, 400)
    async with sessionmaker() as s, s.begin():
        await public.refund(s, clock, region=REGION, actor=COUPONS, payment_id=refunded.id, amount=400)
    since, until = START, START + timedelta(days=1)
    async with sessionmaker() as s:
        assert await public.payers(s, region=REGION, since=since, until=until, among=everyone) == [
            "resident-sachiko", "resident-taro"]
        assert await public.payers(s, region=REGION, since=since, until=until, among=everyone,
                                   sectors=[public.Sector.FOOD_SERVICE]) == ["resident-taro"]
        assert await public.payers(s, region=REGION, since=since, until=until, among=everyone,
                                   sectors=[public.Sector.FOOD_SERVICE, public.Sector.AGRICULTURE]) == [
            "resident-sachiko", "resident-taro"]
        # Only those asked about are answered for; the period is [since, until).
        assert await public.payers(s, region=REGION, since=since, until=until, among=["resident-sachiko"]) == [
            "resident-sachiko"]
        assert await public.payers(s, region=REGION, since=since, until=until, among=[]) == []
        assert await public.payers(s, region=REGION, since=START + timedelta(hours=1), until=until,
                                   among=everyone) == ["resident-sachiko"]
        assert await public.payers(s, region=REGION, since=since, until=START, among=everyone) == []


async def test_post_notices_makes_one_per_active_resident_and_is_audited_once(sessionmaker, clock, town):
    async with sessionmaker() as s, s.begin():
        region = await directory_repo.region_by_code(s, REGION)
        _, taro = await directory_repo.resident_wallet(s, region.id, "resident-taro", Unit.YEN.value)
        await s.execute(text("UPDATE wallet.accounts SET status = 'closed' WHERE id = :id"), {"id": taro.id})
    async with sessionmaker() as s, s.begin():
        made = await public.post_notices(
            s, clock, region=REGION, actor=CITY, subjects=[HANAKO, "resident-taro", "nobody", "resident-sachiko"],
            kind="announcement", payload={"title": "桜まつり"},
        )
    assert made == 2
    async with sessionmaker() as s:
        rows = (await s.execute(text(
            "SELECT r.subject, n.kind, n.payload, n.lot_id FROM wallet.notices n"
            " JOIN wallet.residents r ON r.id = n.resident_id ORDER BY r.subject"))).all()
        events = (await s.execute(text(
            "SELECT actor_subject, action, target_id, after FROM platform.audit_events WHERE action = 'notices.post'"
        ))).all()
    assert [tuple(r) for r in rows] == [(HANAKO, "announcement", {"title": "桜まつり"}, None),
                                        ("resident-sachiko", "announcement", {"title": "桜まつり"}, None)]
    assert [tuple(e) for e in events] == [("operator-aizu", "notices.post", "announcement", {"recipients": 2})]
    async with sessionmaker() as s, s.begin():
        assert await public.post_notices(s, clock, region=REGION, actor=CITY, subjects=["nobody"], kind="x",
                                         payload={}) == 0


async def test_a_merchant_is_read_with_its_stores_and_only_in_its_region(sessionmaker, clock, town, settings):
    async with sessionmaker() as s:
        region_id = await public.region_id(s, region=REGION)
        found = await public.merchant(s, region=REGION, merchant_id=uuid.UUID(town.merchants[FARM]))
        stores = await payments_repo.stores(s, uuid.UUID(town.merchants[FARM]))
    assert (found.region_id, found.name, found.name_ja, found.sector, found.status) == (
        region_id, FARM, "湊ファーム", "agriculture", "active")
    assert found.store_ids == tuple(store.id for store in stores) and found.store_ids
    async with sessionmaker() as s, s.begin():
        await onboarding.create_region(s, clock, settings, code="kitakata", name="Kitakata", name_ja="喜多方市")
    async with sessionmaker() as s:
        with pytest.raises(MerchantNotFound):
            await public.merchant(s, region="kitakata", merchant_id=found.id)
        with pytest.raises(MerchantNotFound):
            await public.merchant(s, region=REGION, merchant_id=uuid.uuid4())
        with pytest.raises(RegionNotFound):
            await public.region_id(s, region="nowhere")


async def test_merchants_are_read_with_the_bank_account_they_gave_at_onboarding(sessionmaker, clock, town, settings):
    async with sessionmaker() as s:
        found = await public.onboarded_bank_accounts(s, region=REGION)
    assert [f.merchant_id for f in found] == [uuid.UUID(town.merchants[m["name"]]) for m in MERCHANTS]  # oldest first
    farm = found[[m["name"] for m in MERCHANTS].index(FARM)]
    assert (farm.name_ja, farm.status, farm.bank_code, farm.branch_code, farm.account_type, farm.account_number,
            farm.holder_kana) == ("湊ファーム", "active", "0126", "401", 1, "1234504", "ﾐﾅﾄﾌｱｰﾑ")
    async with sessionmaker() as s, s.begin():
        await onboarding.create_region(s, clock, settings, code="kitakata", name="Kitakata", name_ja="喜多方市")
    async with sessionmaker() as s:
        assert await public.onboarded_bank_accounts(s, region="kitakata") == []
        with pytest.raises(RegionNotFound):
            await public.onboarded_bank_accounts(s, region="nowhere")


# --- stores --------------------------------------------------------------------------------------------------


async def test_stores_are_read_with_their_merchants_for_another_services_checks(sessionmaker, town):
    teahouse, farm = uuid.UUID(town.merchants[TEAHOUSE]), uuid.UUID(town.merchants[FARM])
    async with sessionmaker() as s:
        tea_store, farm_store = await store_of(s, town), await store_of(s, town, FARM)
        found = await public.stores(s, region=REGION, store_ids=[farm_store, uuid.uuid4(), tea_store])
    # Unknown ids are left out; each store comes with its merchant.
    assert sorted((f.store_id, f.merchant_id, f.merchant_active) for f in found) == sorted(
        [(tea_store, teahouse, True), (farm_store, farm, True)])


async def test_a_suspended_merchants_store_reads_as_not_active_and_another_regions_as_none(
    client, tokens, sessionmaker, town
):
    teahouse = uuid.UUID(town.merchants[TEAHOUSE])
    response = await client.patch(f"/v1/merchants/{teahouse}", headers=idem(tokens.operator()), json={"status": "suspended"})
    assert response.status_code == 200, response.text
    platform = tokens.mint(Role.PLATFORM_OPERATOR, "platform-ops", "*")
    created = await client.post("/v1/regions", headers=idem(platform),
                                json={"code": "kitakata", "name": "Kitakata", "name_ja": "喜多方市"})
    assert created.status_code == 201, created.text
    async with sessionmaker() as s:
        store_id = await store_of(s, town)
        assert [f.merchant_active for f in await public.stores(s, region=REGION, store_ids=[store_id])] == [False]
        assert await public.stores(s, region="kitakata", store_ids=[store_id]) == []
