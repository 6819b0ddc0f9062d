"""Coupons: issued by a merchant (or by the operator, for a merchant or the whole region),
claimed by residents, redeemed with a payment or, for a free item, by its code at the shop.

Lifecycle. A coupon is a draft until activated: draft → active ⇄ paused → ended (a draft may be
ended too; ended is final). A draft is editable; an active or paused coupon takes only a new
name, image and end of validity: its kind, value, terms, funding, stock and limits are what
residents claimed, so changing them means ending it and issuing another.

The discount. yen_off: `value` yen; percent_off: floor(price × value / 10000) yen, at most
`max_discount`; fixed_price: price − `value` (the resident pays `value`). Each is more than 0 and
less than the price whenever the price reaches the minimum spend, which creation checks (a yen_off
or fixed_price coupon's minimum spend is above its value; a percent_off one's is large enough
for 1 yen): the wallet takes no discount of 0 or of the whole price. A free item is redeemed
without a payment. Who gives the discount up is explicit: the shop (the price is lowered), or a
sponsor, whose budget pays the shop the discount through the wallet (`public.pay`'s `Discount`);
a budget that cannot pay refuses the payment (sponsor-budget-exhausted) and nothing is done.

Claims. One call of coupons.claim_coupon (sql/claim_coupon.sql) checks the coupon, raises the
resident's holding within the per-resident limit and takes one unit of stock from a bucket,
exactly under any concurrency; the request's Idempotency-Key is claimed, and the answer of a
claim made stored for it, in the same statement (coupons.claim_coupon_keyed). A coupon sold out is refused to the rush still trying to claim it
by one statement before the key and the transaction (`refuse_if_sold_out`, asked by the claim's
early answer before the request's dependencies, endpoints.refuse_sold_out_claim), and a claim of a
coupon known to be for all residents is made the same way, by one statement that commits by itself
(`claim_at_once`, sql/claim_coupon_alone.sql, endpoints.claim_early). A segment's coupon
is offered and given only to residents in the segment then (audiences.py, asked before the claim).

Refunds. A payment with a coupon refunded IN FULL reverses its redemption: the claim is released,
the stock gets the unit back and the resident's count drops by one (the wallet gives the sponsor
its discount back by its own pro-rata rule). A partial refund keeps the redemption: the resident
kept part of the purchase the coupon was used on, and the coupon stays used.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.coupons import audiences
from services.coupons import repository as repo
from services.coupons.errors import (
    BelowMinimumSpend,
    ClaimNotFound,
    CouponAlreadyUsed,
    CouponExpired,
    CouponLimitReached,
    CouponNotActive,
    CouponNotEditable,
    CouponNotForPayment,
    CouponNotFound,
    CouponNotValidAtStore,
    CouponNotYetValid,
    CouponOutOfStock,
    InvalidCoupon,
)
from services.coupons.models import (
    Claim,
    ClaimStatus,
    Coupon,
    CouponKind,
    CouponStatus,
    Funder,
    Redemption,
)
from services.wallet import public
from services.wallet.public import Actor
from shared import audit
from shared.clock import Clock
from shared.errors import Problem
from shared.ids import new_id

# Stock buckets per coupon: claims spread over this many row locks (fewer for a smaller stock).
BUCKETS = 16
BASIS = 10_000

TRANSITIONS = {
    CouponStatus.DRAFT: {CouponStatus.ACTIVE, CouponStatus.ENDED},
    CouponStatus.ACTIVE: {CouponStatus.PAUSED, CouponStatus.ENDED},
    CouponStatus.PAUSED: {CouponStatus.ACTIVE, CouponStatus.ENDED},
    CouponStatus.ENDED: set(),
}
EDITABLE_WHEN_LIVE = frozenset({"name", "image_url", "valid_until"})


@dataclass(frozen=True)
class Scope:
    """Whose coupons a caller sees and issues: a merchant's own (merchant roles), or the whole
    region's (operator, auditor). The endpoint decides it from the caller's role."""

    region: str
    merchant_id: uuid.UUID | None


# --- issuing -------------------------------------------------------------------------------------


def _checked(fields: dict[str, Any]) -> None:
    """The rules between fields, on a coupon's whole set of them; InvalidCoupon names the first broken."""
    kind, value, max_discount, min_spend = (
        CouponKind(fields["kind"]), fields["value"], fields["max_discount"], fields["min_spend"]
    )

    def refuse(detail: str) -> None:
        raise InvalidCoupon(detail)

    if kind == CouponKind.FREE_ITEM:
        if value is not None or max_discount is not None:
            refuse("A free item takes no value and no maximum discount.")
        if fields["funded_by"] != Funder.SHOP:
            refuse("A free item is given by the shop: there is no payment for a sponsor to pay into.")
    elif value is None:
        refuse(f"A {kind.value} coupon needs its value.")
    if kind == CouponKind.PERCENT_OFF:
        if not 0 < value < BASIS:
            refuse(f"A percent_off value is in basis points, more than 0 and less than {BASIS}, not {value}.")
        if max_discount is None:
            refuse("A percent_off coupon needs its maximum discount.")
        if min_spend * value < BASIS:
            refuse("The minimum spend must be large enough for the discount to be at least 1 yen.")
    elif max_discount is not None:
        refuse("Only a percent_off coupon takes a maximum discount.")
    if kind in (CouponKind.YEN_OFF, CouponKind.FIXED_PRICE) and min_spend <= value:
        refuse(f"A {kind.value} coupon's minimum spend must be more than its value ({value} yen), so that the "
               "resident always pays something and the discount is more than 0.")
    if fields["valid_from"] >= fields["valid_until"]:
        refuse("valid_from must come before valid_until.")
    if (fields["funded_by"] == Funder.SPONSOR) != (fields["sponsor_id"] is not None):
        refuse("A sponsor's coupon names its sponsor; a shop's names none.")
    store_ids = fields["store_ids"]
    if store_ids is not None and len(set(store_ids)) != len(store_ids):
        refuse("A store is listed twice.")


def _check_funding(scope: Scope, fields: dict[str, Any]) -> None:
    # A sponsor's budget is the city's to commit: a merchant funds its own coupons.
    if scope.merchant_id is not None and fields["funded_by"] == Funder.SPONSOR:
        raise InvalidCoupon("A merchant's own coupon is funded by the shop; a sponsor's is the operator's to issue.")


async def _check_references(session: AsyncSession, region: str, fields: dict[str, Any]) -> None:
    """The merchant, its stores and the sponsor exist in the region (merchant-not-found and
    sponsor-not-found are the wallet's)."""
    merchant_id = fields["merchant_id"]
    if merchant_id is not None:
        await public.merchant(session, region=region, merchant_id=merchant_id)
    if fields["store_ids"] is not None:
        found = await public.stores(session, region=region, store_ids=fields["store_ids"])
        if len(found) != len(fields["store_ids"]):
            raise InvalidCoupon("A listed store is not a store of this region.")
        if merchant_id is not None and any(s.merchant_id != merchant_id for s in found):
            raise InvalidCoupon("A merchant's coupon is valid only at the merchant's own stores.")
    if fields["sponsor_id"] is not None:
        await public.sponsor(session, region=region, sponsor_id=fields["sponsor_id"])


def _record(coupon: Coupon) -> dict[str, Any]:
    return {
        "name": coupon.name, "kind": coupon.kind, "value": coupon.value, "max_discount": coupon.max_discount,
        "min_spend": coupon.min_spend, "stock": coupon.stock, "per_resident_limit": coupon.per_resident_limit,
        "funded_by": coupon.funded_by, "sponsor_id": str(coupon.sponsor_id) if coupon.sponsor_id else None,
        "valid_from": coupon.valid_from.isoformat(), "valid_until": coupon.valid_until.isoformat(),
        "status": coupon.status, "audience": coupon.audience,
        "segment_id": str(coupon.segment_id) if coupon.segment_id else None,
    }


async def create_coupon(
    session: AsyncSession, clock: Clock, *, scope: Scope, actor: Actor, fields: dict[str, Any]
) -> Coupon:
    """A draft coupon. A merchant issues for itself only; the operator for any merchant or, with
    no merchant, for the whole region."""
    if scope.merchant_id is not None:
        if fields.get("merchant_id") not in (None, scope.merchant_id):
            raise InvalidCoupon("A merchant issues coupons for itself only.")
        fields = {**fields, "merchant_id": scope.merchant_id}
    fields = {"value": None, "max_discount": None, "store_ids": None, "sponsor_id": None, "image_url": None,
              "merchant_id": None, "segment_id": None, **fields}
    _check_funding(scope, fields)
    _checked(fields)
    await _check_references(session, scope.region, fields)
    await audiences.check_fields(session, region=scope.region, issued_by_merchant=scope.merchant_id is not None,
                                 fields=fields)
    region_id = await public.region_id(session, region=scope.region)
    now = clock.now()
    coupon = await repo.insert_coupon(
        session, id=new_id(), region_id=region_id, status=CouponStatus.DRAFT.value, created_by=actor.subject,
        created_at=now, updated_at=now, **_stored(fields),
    )
    await audit.record(session, clock, actor, region_id=region_id, action="coupon.create", target_type="coupon",
                       target_id=coupon.id, after=_record(coupon))
    return coupon


def _stored(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if k == "image_url" and v is not None else v) for k, v in fields.items()}


async def _coupon_in_scope(session: AsyncSession, scope: Scope, coupon_id: uuid.UUID, *, lock: bool = False) -> Coupon:
    region_id = await public.region_id(session, region=scope.region)
    coupon = await repo.coupon(session, coupon_id, lock=lock)
    if coupon is None or coupon.region_id != region_id or (
        scope.merchant_id is not None and coupon.merchant_id != scope.merchant_id
    ):
        raise CouponNotFound(f"No coupon {coupon_id} here.")
    return coupon


async def coupon(session: AsyncSession, *, scope: Scope, coupon_id: uuid.UUID) -> Coupon:
    return await _coupon_in_scope(session, scope, coupon_id)


async def coupons(
    session: AsyncSession, *, scope: Scope, status: CouponStatus | None, after_id: uuid.UUID | None, limit: int
) -> list[Coupon]:
    region_id = await public.region_id(session, region=scope.region)
    return await repo.coupons(session, region_id, merchant_id=scope.merchant_id,
                              status=status.value if status else None, after_id=after_id, limit=limit)


async def stock_left(session: AsyncSession, coupon: Coupon) -> int:
    """What is left to claim: a coupon never activated has all of it."""
    if coupon.status == CouponStatus.DRAFT and not await repo.has_stock_buckets(session, coupon.id):
        return coupon.stock
    return await repo.stock_left(session, coupon.id)


async def update_coupon(
    session: AsyncSession, clock: Clock, *, scope: Scope, actor: Actor, coupon_id: uuid.UUID, changes: dict[str, Any]
) -> Coupon:
    found = await _coupon_in_scope(session, scope, coupon_id, lock=True)
    status = CouponStatus(found.status)
    if status == CouponStatus.ENDED:
        raise CouponNotEditable("An ended coupon cannot be changed.")
    if status != CouponStatus.DRAFT and (locked := sorted(set(changes) - EDITABLE_WHEN_LIVE)):
        raise CouponNotEditable(
            f"An {status.value} coupon's {', '.join(locked)} cannot be changed: end it and issue a new one.",
            fields=locked,
        )
    before = _record(found)
    merged = {
        "merchant_id": found.merchant_id, "name": found.name, "kind": found.kind, "value": found.value,
        "max_discount": found.max_discount, "min_spend": found.min_spend, "store_ids": found.store_ids,
        "valid_from": found.valid_from, "valid_until": found.valid_until, "stock": found.stock,
        "per_resident_limit": found.per_resident_limit, "audience": found.audience, "segment_id": found.segment_id,
        "terms": found.terms,
        "image_url": found.image_url, "funded_by": found.funded_by, "sponsor_id": found.sponsor_id, **changes,
    }
    _check_funding(scope, merged)
    _checked(merged)
    await _check_references(session, scope.region, merged)
    await audiences.check_fields(session, region=scope.region, issued_by_merchant=scope.merchant_id is not None,
                                 fields=merged)
    updated = await repo.update_coupon(session, coupon_id, updated_at=clock.now(), **_stored(changes))
    await audit.record(session, clock, actor, region_id=updated.region_id, action="coupon.update",
                       target_type="coupon", target_id=coupon_id, before=before, after=_record(updated))
    return updated


async def move(
    session: AsyncSession, clock: Clock, *, scope: Scope, actor: Actor, coupon_id: uuid.UUID, to: CouponStatus
) -> Coupon:
    """Activate, pause or end a coupon. Its stock buckets are made when it is first activated."""
    found = await _coupon_in_scope(session, scope, coupon_id, lock=True)
    status = CouponStatus(found.status)
    if to not in TRANSITIONS[status]:
        raise CouponNotEditable(f"A {status.value} coupon cannot become {to.value}.", coupon_status=status.value)
    if to == CouponStatus.ACTIVE and not await repo.has_stock_buckets(session, coupon_id):
        buckets = min(BUCKETS, found.stock)
        await repo.insert_stock_buckets(
            session, coupon_id, [found.stock // buckets + (1 if i < found.stock % buckets else 0) for i in range(buckets)]
        )
    moved = await repo.update_coupon(session, coupon_id, status=to.value, updated_at=clock.now())
    await audit.record(session, clock, actor, region_id=moved.region_id, action=f"coupon.{to.value}",
                       target_type="coupon", target_id=coupon_id, before={"status": status.value},
                       after={"status": to.value})
    return moved


# --- claiming --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimView:
    claim: Claim
    coupon_name: str
    kind: str
    valid_from: datetime
    valid_until: datetime


_CLAIM_REFUSALS: dict[str, type[Problem]] = {
    "not_found": CouponNotFound, "not_active": CouponNotActive, "not_yet_valid": CouponNotYetValid,
    "expired": CouponExpired, "out_of_stock": CouponOutOfStock, "limit_reached": CouponLimitReached,
}
_CLAIM_DETAILS = {
    "not_found": "No such coupon here.", "not_active": "The coupon is not being offered now.",
    "not_yet_valid": "The coupon cannot be claimed before its validity begins.",
    "expired": "The coupon's validity is over.", "out_of_stock": "Every one of this coupon has been claimed.",
    "limit_reached": "You already hold as many of this coupon as one resident may.",
}


def new_code() -> str:
    """80 random bits in base32: unguessable, and short enough to type at the register."""
    return base64.b32encode(secrets.token_bytes(10)).decode()


async def available(
    session: AsyncSession, clock: Clock, *, region: str, subject: str, after_id: uuid.UUID | None, limit: int
) -> list[Coupon]:
    """Up to `limit` coupons the resident may claim now, newest first; a segment's only while the
    resident is in it (audiences.py), so pages are filled past the coupons left out."""
    region_id, now = await public.region_id(session, region=region), clock.now()
    found: list[Coupon] = []
    while True:
        batch = await repo.available(session, region_id, subject, now, after_id=after_id, limit=limit)
        found += await audiences.offered(session, region=region, subject=subject, coupons=batch, at=now)
        if len(batch) < limit or len(found) >= limit:
            return found[:limit]
        after_id = batch[-1].id


# Coupons this process has seen refused as out of stock: a hint of where the sold-out check below
# is worth its statement, never an answer (a coupon restocked since is found so by the check).
_seen_sold_out: set[uuid.UUID] = set()


def may_be_sold_out(coupon_id: uuid.UUID) -> bool:
    """Whether `refuse_if_sold_out` would look at this coupon at all (no statement is run)."""
    return coupon_id in _seen_sold_out


def _refusal(outcome: str, coupon_id: uuid.UUID) -> Problem:
    return _CLAIM_REFUSALS[outcome](_CLAIM_DETAILS[outcome], coupon_id=str(coupon_id))


async def refuse_if_sold_out(
    session: AsyncSession, clock: Clock, *, region: str, coupon_id: uuid.UUID, caller: str, key: str
) -> None:
    """When a coupon sells out, thousands of residents are still trying to claim it: refuse them
    (409 coupon-out-of-stock, the claim's own refusal) before the Idempotency-Key is claimed and the
    request's transaction begun, at the cost of one statement, which reads what the claim function
    would read: the coupon active and in its window, no stock left, and no record of this key (a
    key that has an answer, a claim that succeeded among them, is answered as ever). Nothing is
    cached but where to look: a restocked coupon is claimable at once. Anything else (stock left,
    another refusal, a key seen before) goes the claim's own way."""
    if not may_be_sold_out(coupon_id):
        return
    region_id = await public.region_id(session, region=region)
    if await repo.sold_out(session, coupon_id=coupon_id, region_id=region_id, now=clock.now(), caller=caller, key=key):
        raise _refusal("out_of_stock", coupon_id)
    _seen_sold_out.discard(coupon_id)


@dataclass(frozen=True)
class FirstAnswer:
    """The answer an earlier request with the same Idempotency-Key stored (to replay)."""

    request_hash: str
    status_code: int
    response: Any


@dataclass(frozen=True)
class StoredAnswer:
    """A claim made, as the answer its Idempotency-Key now stores (sql/claim_coupon_keyed.sql)."""

    response: Any


async def claim(
    session: AsyncSession, clock: Clock, *, region: str, subject: str, coupon_id: uuid.UUID,
    key: dict[str, str] | None = None,
) -> ClaimView | StoredAnswer | FirstAnswer:
    """With `key` (`Idempotency.claim`, not yet claimed), the key's claim, the claim and its answer
    in one statement (sql/claim_coupon_keyed.sql): the answer stored for the claim made, or the
    key's first answer to replay. Without, the claim alone (a caller that claimed its key already)."""
    region_id = await public.region_id(session, region=region)
    now, claim_id, code = clock.now(), new_id(), new_code()
    await audiences.check_claim(session, region=region, region_id=region_id, coupon_id=coupon_id, subject=subject, at=now)
    values = {"region_id": region_id, "coupon_id": coupon_id, "subject": subject, "now": now,
              "start": secrets.randbelow(BUCKETS), "claim_id": claim_id, "code": code}
    if key is None:
        found = await repo.claim_coupon(session, **values)
    else:
        found = await repo.claim_coupon_keyed(session, **key, **values)
    if found.outcome == "replay":
        return FirstAnswer(found.first_hash, found.first_status, found.first_response)
    if found.outcome != "ok":
        if found.outcome == "out_of_stock":
            _seen_sold_out.add(coupon_id)
        raise _refusal(found.outcome, coupon_id)
    if key is not None:
        return StoredAnswer(found.first_response)
    # The function kept the code for a free item only (sql/claim_coupon.sql).
    made = Claim(id=claim_id, region_id=region_id, coupon_id=coupon_id, subject=subject,
                 code=code if found.kind == CouponKind.FREE_ITEM else None,
                 status=ClaimStatus.CLAIMED.value, claimed_at=now, redeemed_at=None, released_at=None)
    return ClaimView(made, found.name, found.kind, found.valid_from, found.valid_until)


def may_claim_at_once(coupon_id: uuid.UUID) -> bool:
    """Whether `claim_at_once` may make this claim: a coupon known to be offered to all residents
    (its audience asks nothing then; a segment's, or one not seen yet, is `claim`'s)."""
    return audiences.offered_to_all(coupon_id)


async def claim_at_once(
    session: AsyncSession, clock: Clock, *, region: str, subject: str, coupon_id: uuid.UUID, key: dict[str, str]
) -> StoredAnswer | FirstAnswer:
    """`claim` with its key, as one statement on its own, outside the request's transaction
    (sql/claim_coupon_alone.sql): the statement commits by itself, and undoes the key's claim on a
    refusal as a rollback would. For the claim answered before the request's dependencies
    (endpoints.answer_claim_early), only where `may_claim_at_once`: the same outcomes, the same
    refusals, the same answer stored for the key as `claim`'s."""
    assert may_claim_at_once(coupon_id), "a coupon whose audience asks nothing"
    region_id = await public.region_id(session, region=region)
    now, claim_id, code = clock.now(), new_id(), new_code()
    found = await repo.claim_coupon_alone(
        session, **key, region_id=region_id, coupon_id=coupon_id, subject=subject, now=now,
        start=secrets.randbelow(BUCKETS), claim_id=claim_id, code=code,
    )
    if found["outcome"] == "replay":
        return FirstAnswer(found["first_hash"], found["first_status"], found["first_response"])
    if found["outcome"] != "ok":
        if found["outcome"] == "out_of_stock":
            _seen_sold_out.add(coupon_id)
        raise _refusal(found["outcome"], coupon_id)
    return StoredAnswer(found["first_response"])


async def claims(
    session: AsyncSession, *, region: str, subject: str, after_id: uuid.UUID | None, limit: int
) -> list[ClaimView]:
    region_id = await public.region_id(session, region=region)
    return [
        ClaimView(c, coupon.name, coupon.kind, coupon.valid_from, coupon.valid_until)
        for c, coupon in await repo.claims_of(session, region_id, subject, after_id=after_id, limit=limit)
    ]


# --- redeeming ---------------------------------------------------------------------------------------


def discount_of(coupon: Coupon | repo.CouponTerms, price: int) -> int:
    """The yen off `price` (which has reached the minimum spend); rounding down, the shop or the
    sponsor never gives more than the coupon says."""
    kind = CouponKind(coupon.kind)
    assert coupon.value is not None, "a free item has no discount"
    if kind == CouponKind.YEN_OFF:
        return coupon.value
    if kind == CouponKind.PERCENT_OFF:
        assert coupon.max_discount is not None
        return min(price * coupon.value // BASIS, coupon.max_discount)
    return price - coupon.value  # fixed price


def _check_usable(claim_row: Claim | repo.ClaimInUse, coupon_row: Coupon | repo.CouponTerms, now: datetime) -> None:
    if claim_row.status != ClaimStatus.CLAIMED:
        raise CouponAlreadyUsed("This claimed coupon was already used.", claim_id=str(claim_row.id))
    if coupon_row.status != CouponStatus.ACTIVE:
        raise CouponNotActive("The coupon is not being honoured now (paused or ended).")
    if now < coupon_row.valid_from:
        raise CouponNotYetValid("The coupon's validity has not begun.", valid_from=coupon_row.valid_from.isoformat())
    if now >= coupon_row.valid_until:
        raise CouponExpired("The coupon's validity is over.", valid_until=coupon_row.valid_until.isoformat())


def _check_store(coupon_row: Coupon | repo.CouponTerms, merchant_id: uuid.UUID, store_id: uuid.UUID) -> None:
    if (coupon_row.merchant_id is not None and coupon_row.merchant_id != merchant_id) or (
        coupon_row.store_ids is not None and store_id not in coupon_row.store_ids
    ):
        raise CouponNotValidAtStore("The coupon is not valid at this store.", store_id=str(store_id))


async def _holders_claim(
    session: AsyncSession, region_id: uuid.UUID, subject: str, claim_id: uuid.UUID, *, lock: bool
) -> tuple[repo.ClaimInUse, repo.CouponTerms]:
    found = await repo.claim_in_use(session, claim_id, lock=lock)
    # Someone else's claim is answered as no claim at all: its existence is not the caller's to know.
    if found is None or found[0].region_id != region_id or found[0].subject != subject:
        raise ClaimNotFound(f"You hold no claimed coupon {claim_id}.")
    return found


@dataclass(frozen=True)
class Quote:
    claim: repo.ClaimInUse
    coupon: repo.CouponTerms
    store: public.ScannedStore
    price: int
    discount: int


async def _quote(
    session: AsyncSession, clock: Clock, *, region: str, subject: str, qr: str, price: int, claim_id: uuid.UUID,
    lock: bool,
) -> Quote:
    region_id = await public.region_id(session, region=region)
    claim_row, coupon_row = await _holders_claim(session, region_id, subject, claim_id, lock=lock)
    _check_usable(claim_row, coupon_row, clock.now())
    if coupon_row.kind == CouponKind.FREE_ITEM:
        raise CouponNotForPayment("Show the coupon's code to the shop instead: a free item needs no payment.")
    scanned = await public.resolve_qr(session, region=region, payload=qr)
    _check_store(coupon_row, scanned.merchant_id, scanned.store_id)
    if price < coupon_row.min_spend:
        raise BelowMinimumSpend(
            f"The coupon applies from {coupon_row.min_spend} yen; the price is {price}.",
            min_spend=coupon_row.min_spend, price=price,
        )
    return Quote(claim_row, coupon_row, scanned, price, discount_of(coupon_row, price))


async def preview(
    session: AsyncSession, clock: Clock, *, region: str, subject: str, qr: str, price: int, claim_id: uuid.UUID
) -> Quote:
    """What paying with the coupon would come to; nothing is claimed, paid or redeemed."""
    return await _quote(session, clock, region=region, subject=subject, qr=qr, price=price, claim_id=claim_id,
                        lock=False)


async def pay_with_coupon(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, subject: str, qr: str, price: int,
    claim_id: uuid.UUID,
) -> tuple[public.PaidPayment, Redemption]:
    """The payment, its discount and the redemption, in the caller's one transaction. The claim is
    locked first, so two payments with one claim take turns and the second finds it used. Any
    refusal, the wallet's included, ends the whole transaction (the request rolls back), so the
    payment needs no savepoint of its own."""
    quote = await _quote(session, clock, region=region, subject=subject, qr=qr, price=price, claim_id=claim_id,
                         lock=True)
    coupon_row, redemption_id = quote.coupon, new_id()
    funder = public.DiscountFunder(coupon_row.funded_by)
    paid = await public.pay(
        session, clock, region=region, actor=actor, payer=subject, store_id=quote.store.store_id, price=price,
        payment_request_id=quote.store.request.id if quote.store.request else None,
        discount=public.Discount(quote.discount, funder, coupon_row.sponsor_id, reference=str(redemption_id)),
        savepoint=False,
    )
    redemption = await repo.redeem(
        session, id=redemption_id, region_id=coupon_row.region_id, coupon_id=coupon_row.id, claim_id=claim_id,
        merchant_id=paid.merchant_id, store_id=paid.store_id, payment_id=paid.id, price=paid.price,
        discount=quote.discount, paid=paid.amount, funded_by=coupon_row.funded_by, sponsor_id=coupon_row.sponsor_id,
        redeemed_by=actor.subject, redeemed_at=paid.created_at, reversed_at=None,
    )
    return paid, redemption


async def redeem_code(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, merchant_id: uuid.UUID, code: str,
    store_id: uuid.UUID,
) -> Redemption:
    """The shop scans a free item's code at one of its stores and hands the item over: once."""
    region_id = await public.region_id(session, region=region)
    found = await repo.claim_by_code(session, code)
    if found is None or found[0].region_id != region_id:
        raise ClaimNotFound("No claimed coupon has this code.")
    claim_row, coupon_row = found
    _check_usable(claim_row, coupon_row, clock.now())
    stores = await public.stores(session, region=region, store_ids=[store_id])
    if not stores or stores[0].merchant_id != merchant_id:
        raise CouponNotValidAtStore("This is not one of your stores.", store_id=str(store_id))
    _check_store(coupon_row, merchant_id, store_id)
    now = clock.now()
    return await repo.redeem(
        session, id=new_id(), region_id=region_id, coupon_id=coupon_row.id, claim_id=claim_row.id,
        merchant_id=merchant_id, store_id=store_id, payment_id=None, price=None, discount=0, paid=None,
        funded_by=coupon_row.funded_by, sponsor_id=None, redeemed_by=actor.subject, redeemed_at=now, reversed_at=None,
    )


# --- the wallet's refund hook -----------------------------------------------------------------------------


async def release_on_full_refund(
    session: AsyncSession, clock: Clock, *, payment_id: uuid.UUID, region_id: uuid.UUID, amount: int,
    refunded_total: int, points: Any,
) -> int:
    """OnRefunded (registered by app/wiring.py): a payment with a coupon refunded in full gives
    the coupon back: the redemption is reversed, the claim released, the stock and the resident's
    count restored. A partial refund keeps the redemption (module docstring). Takes no points."""
    if refunded_total < amount:
        return 0
    redemption = await repo.redemption_of_payment(session, payment_id)
    if redemption is None or redemption.reversed_at is not None:
        return 0
    found = await repo.claim_with_coupon(session, redemption.claim_id, lock=True)
    assert found is not None, "a redemption's claim exists"
    claim_row = found[0]
    now = clock.now()
    await repo.mark_reversed(session, redemption.id, now)
    await repo.mark_claim(session, claim_row.id, status=ClaimStatus.RELEASED.value, released_at=now)
    # The holding before the stock, as a claim takes them, so a refund and a claim never wait on
    # each other in opposite orders.
    await repo.release_holding(session, claim_row.coupon_id, claim_row.subject)
    await repo.restock(session, claim_row.coupon_id, claim_row.bucket)
    return 0
