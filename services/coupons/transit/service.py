"""Transit: bus operators, their fare products, residents' e-tickets and the validators' scans.

**Bus operators.** The operator marks a merchant of the region (a bus company, the on-demand
bus) as a bus operator. Its merchant admin (or the operator) defines fare products in GTFS-Fares
v2 terms: a single ride, a day pass (unlimited rides for 24 h from its first activation) or N
rides, with a fare in yen per rider category (adult, child, elderly), active until retired.

**A ticket is an ordinary payment.** A resident buys a product for a rider category: the fare is
paid to the bus operator at its first store through the wallet's public surface (`public.pay`:
fee, hooks and every refusal as for any payment), and the ticket row is written in the same
transaction, so there is never a ticket without its payment nor a payment without its ticket.
A ticket must be first used within the product's `valid_days` of its purchase.

**Who.** Service functions take the region (its code), an explicit `Actor` and the objects they
work on; who may see or do what is access.py's, which the endpoints ask first.

**Scans.** A validator (an API key scoped to one bus operator) scans the code the app shows
(codes.py). Online, the code's step is checked against the server's clock and the ride is
judged at that time; the ticket row is locked, so two buses scanning one ticket take turns. The
first ride activates the ticket (a day pass then runs 24 h); each ride counts (a multi-ride
ticket has one fewer left). A refusal changes nothing and is not kept: the problem is the
validator's answer, and the same scan sent again is judged again (a refused code stays refused).

**Scan ids.** Each scan carries the validator's own uuid, its idempotency key (scans take no
Idempotency-Key): an accepted scan sent again, online or in a batch, answers its first outcome;
the same scan id with a different scan is refused (scan-id-reused).

**Offline.** A validator without a connection verifies codes itself (`codes.verify`, the
region's public key) and uploads its scans later (`scans/batch`). Each is judged at its own
`scanned_at` (the code's step against that time, not now), in `scanned_at` order. A ride the
validator let happen is accepted even if the ticket had no right left to it (a single ride
taken on two buses while both were offline, a multi-ride ticket past its N rides, a day pass
past its 24 h): it is counted and reported as a conflict (`GET /v1/transit/conflicts`) for the
bus operator to follow up. Offline validation cannot prevent that; it only makes it visible. A
day pass's 24 h run from the earliest ride the server learns of, even when an offline upload
brings an earlier one than the activation it knew.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.coupons.transit import codes
from services.coupons.transit import repository as repo
from services.coupons.transit.codes import ProductKind, RiderCategory, SigningKeys, TicketClaims
from services.coupons.transit.errors import (
    FareProductNameTaken,
    FareProductNotFound,
    FareProductRetired,
    InvalidFareProduct,
    OperatorHasNoStore,
    RiderCategoryNotOffered,
    ScanIdReused,
    ScanInFuture,
    TicketExpired,
    TicketNotFound,
    TicketRefunded,
    TicketRefundPartial,
    TicketReused,
    TicketRidden,
    TicketUsedUp,
    TransitOperatorExists,
    TransitOperatorNotFound,
    ValidatorNotFound,
)
from services.coupons.transit.models import (
    ConflictKind,
    FareProduct,
    ProductStatus,
    Scan,
    ScanOutcome,
    Ticket,
    TicketFunder,
    TransitOperator,
    Validator,
)
from services.wallet import public
from shared import audit
from shared.audit import Actor
from shared.auth import VALIDATOR_KEY_PREFIX, Principal, Role, hash_api_key
from shared.clock import Clock
from shared.errors import Problem
from shared.ids import new_id

DAY_PASS_HOURS = 24
CODE_STEPS = 10  # the current code and the next nine: five minutes without a connection


# --- bus operators ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatorView:
    operator: TransitOperator
    merchant: public.MerchantProfile


async def mark_operator(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, merchant_id: uuid.UUID
) -> OperatorView:
    merchant = await public.merchant(session, region=region, merchant_id=merchant_id)
    marked = await repo.insert_operator(
        session, id=new_id(), region_id=merchant.region_id, merchant_id=merchant.id, created_by=actor.subject,
        created_at=clock.now(),
    )
    if marked is None:
        raise TransitOperatorExists(f"{merchant.name_ja} is a bus operator already.")
    await audit.record(
        session, clock, actor, region_id=merchant.region_id, action="transit_operator.mark",
        target_type="merchant", target_id=merchant.id, after={"transit_operator_id": str(marked.id)},
    )
    return OperatorView(marked, merchant)


async def list_operators(session: AsyncSession, *, region: str) -> list[OperatorView]:
    region_id = await public.region_id(session, region=region)
    return [
        OperatorView(found, await public.merchant(session, region=region, merchant_id=found.merchant_id))
        for found in await repo.operators(session, region_id)
    ]


async def operator_of(session: AsyncSession, *, region: str, merchant_id: uuid.UUID) -> TransitOperator:
    """The bus operator that is this merchant of the region."""
    region_id = await public.region_id(session, region=region)
    found = await repo.operator_of_merchant(session, region_id, merchant_id)
    if found is None:
        raise TransitOperatorNotFound(f"Merchant {merchant_id} is no bus operator of region {region}.")
    return found


# --- fare products ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductView:
    product: FareProduct
    merchant_id: uuid.UUID
    fares: dict[str, int]  # rider category -> yen


async def create_product(
    session: AsyncSession, clock: Clock, *, actor: Actor, owner: TransitOperator, details: dict[str, Any]
) -> ProductView:
    if (details["kind"] == ProductKind.MULTI_RIDE) != (details.get("rides") is not None):
        raise InvalidFareProduct("Give `rides` (2 to 100) for a multi_ride product, and only for one.")
    fares = {str(category): amount for category, amount in details["fares"].items() if amount is not None}
    if not fares:
        raise InvalidFareProduct("Give a fare for at least one rider category.")
    now = clock.now()
    product = await repo.insert_product(
        session, id=new_id(), region_id=owner.region_id, operator_id=owner.id, name=details["name"],
        name_ja=details["name_ja"], kind=details["kind"], rides=details.get("rides"),
        valid_days=details["valid_days"], status=ProductStatus.ACTIVE, created_by=actor.subject, created_at=now,
        retired_at=None,
    )
    if product is None:
        raise FareProductNameTaken(f"This bus operator already has a fare product named {details['name']!r}.")
    await repo.insert_fares(session, [
        {"region_id": owner.region_id, "product_id": product.id, "rider_category": category, "amount": amount}
        for category, amount in fares.items()
    ])
    await audit.record(
        session, clock, actor, region_id=owner.region_id, action="fare_product.create",
        target_type="fare_product", target_id=product.id,
        after={"merchant_id": str(owner.merchant_id), "name": product.name, "kind": product.kind,
               "rides": product.rides, "valid_days": product.valid_days, "fares": fares},
    )
    return ProductView(product, owner.merchant_id, fares)


async def _views(session: AsyncSession, found: list[FareProduct]) -> list[ProductView]:
    fares = await repo.fares(session, [p.id for p in found])
    owners: dict[uuid.UUID, uuid.UUID] = {}
    for p in found:
        if p.operator_id not in owners:
            owner = await repo.operator(session, p.operator_id)
            assert owner is not None, "a product's operator exists (foreign key)"
            owners[p.operator_id] = owner.merchant_id
    return [ProductView(p, owners[p.operator_id], fares[p.id]) for p in found]


async def product(session: AsyncSession, *, region: str, product_id: uuid.UUID) -> ProductView:
    region_id = await public.region_id(session, region=region)
    found = await repo.product(session, product_id)
    if found is None or found.region_id != region_id:
        raise FareProductNotFound(f"No fare product {product_id} in region {region}.")
    return (await _views(session, [found]))[0]


async def list_products(
    session: AsyncSession, *, region: str, merchant_id: uuid.UUID | None, status: str | None,
    after_id: uuid.UUID | None, limit: int,
) -> list[ProductView]:
    region_id = await public.region_id(session, region=region)
    operator_id = None
    if merchant_id is not None:
        found = await repo.operator_of_merchant(session, region_id, merchant_id)
        if found is None:
            return []
        operator_id = found.id
    return await _views(session, await repo.products(
        session, region_id, operator_id=operator_id, status=status, after_id=after_id, limit=limit
    ))


async def retire_product(session: AsyncSession, clock: Clock, *, actor: Actor, view: ProductView) -> ProductView:
    """No longer sold; tickets bought stay valid. Retiring a retired product changes nothing."""
    retired = await repo.retire_product(session, view.product.id, clock.now())
    if view.product.retired_at is None:
        await audit.record(
            session, clock, actor, region_id=retired.region_id, action="fare_product.retire",
            target_type="fare_product", target_id=retired.id, after={"status": retired.status},
        )
    return ProductView(retired, view.merchant_id, view.fares)


# --- tickets ------------------------------------------------------------------------------------


class TicketState(StrEnum):
    UNUSED = "unused"
    ACTIVE = "active"  # a day pass within its 24 h, a multi-ride ticket with rides left
    EXPIRED = "expired"
    USED_UP = "used_up"
    REFUNDED = "refunded"


def valid_until(ticket: Ticket) -> datetime:
    """Until when the ticket may be used: an activated day pass's 24 h, else its first-use deadline."""
    return ticket.active_until if ticket.active_until is not None else ticket.expires_at


def rides_left(ticket: Ticket) -> int | None:
    return max(ticket.rides - ticket.rides_taken, 0) if ticket.rides is not None else None


def state_of(ticket: Ticket, now: datetime) -> TicketState:
    if ticket.refunded_at is not None:
        return TicketState.REFUNDED
    if ticket.rides is not None and ticket.rides_taken >= ticket.rides:
        return TicketState.USED_UP
    if now >= valid_until(ticket):
        return TicketState.EXPIRED
    return TicketState.ACTIVE if ticket.rides_taken else TicketState.UNUSED


async def buy_ticket(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, payer: str, product_id: uuid.UUID,
    category: RiderCategory,
) -> tuple[Ticket, public.PaidPayment]:
    """`payer` (a resident's subject) buys the product for a rider category: the ticket and its payment."""
    view, fare = await on_sale(session, region=region, product_id=product_id, category=category)
    found = view.product
    merchant = await public.merchant(session, region=region, merchant_id=view.merchant_id)
    if not merchant.store_ids:
        raise OperatorHasNoStore(f"{merchant.name_ja} has no store to take the fare at.")
    paid = await public.pay(
        session, clock, region=region, actor=actor, payer=payer, store_id=merchant.store_ids[0], price=fare
    )
    now = clock.now()
    ticket = await repo.insert_ticket(
        session, **_new_ticket(found, payer, category, fare, now), funded_by=TicketFunder.RESIDENT, payment_id=paid.id,
        sponsor_id=None, sponsor_journal_id=None, bundle_claim_id=None,
    )
    return ticket, paid


def _new_ticket(found: FareProduct, resident: str, category: RiderCategory, fare: int, now: datetime) -> dict[str, Any]:
    return {
        "id": new_id(), "region_id": found.region_id, "operator_id": found.operator_id, "product_id": found.id,
        "resident": resident, "kind": found.kind, "rider_category": category.value, "fare": fare,
        "rides": 1 if found.kind == ProductKind.SINGLE_RIDE else found.rides, "rides_taken": 0, "purchased_at": now,
        "expires_at": now + timedelta(days=found.valid_days), "activated_at": None, "active_until": None,
        "refunded_at": None,
    }


async def on_sale(
    session: AsyncSession, *, region: str, product_id: uuid.UUID, category: RiderCategory
) -> tuple[ProductView, int]:
    """The product and its fare for the rider category, if it is on sale for it (refuses
    fare-product-not-found, fare-product-retired, rider-category-not-offered)."""
    view = await product(session, region=region, product_id=product_id)
    if view.product.status != ProductStatus.ACTIVE:
        raise FareProductRetired(f"{view.product.name_ja} is no longer sold.")
    fare = view.fares.get(category.value)
    if fare is None:
        raise RiderCategoryNotOffered(f"{view.product.name_ja} has no {category.value} fare.", offered=sorted(view.fares))
    return view, fare


async def grant_ticket(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, resident: str, product_id: uuid.UUID,
    category: RiderCategory, sponsor_id: uuid.UUID | None, bundle_claim_id: uuid.UUID,
) -> Ticket:
    """A ticket given to `resident` in a bundle, with no payment of theirs: without a sponsor the
    bus operator gives the ride (fare 0 recorded); with one, the sponsor's budget pays the bus
    operator the fare through the wallet (`public.sponsor_pays`, refusing sponsor-budget-exhausted
    before anything moves). It rides as a bought ticket does; it is never refunded (no payment)."""
    view, fare = await on_sale(session, region=region, product_id=product_id, category=category)
    values = _new_ticket(view.product, resident, category, fare if sponsor_id is not None else 0, clock.now())
    journal_id = None
    if sponsor_id is not None:
        paid = await public.sponsor_pays(
            session, clock, region=region, actor=actor, sponsor_id=sponsor_id, merchant_id=view.merchant_id,
            amount=fare, reference=f"ticket:{values['id']}",
        )
        journal_id = paid.journal_id
    return await repo.insert_ticket(
        session, **values, funded_by=TicketFunder.SPONSOR if sponsor_id is not None else TicketFunder.OPERATOR,
        payment_id=None, sponsor_id=sponsor_id, sponsor_journal_id=journal_id, bundle_claim_id=bundle_claim_id,
    )


async def void_on_refund(
    session: AsyncSession, clock: Clock, *, payment_id: uuid.UUID, region_id: uuid.UUID, amount: int,
    refunded_total: int, points: Any,
) -> int:
    """OnRefunded (registered by app/wiring.py): a ticket's fare is given back only whole and only
    while the ticket has carried no ride, and the refund voids the ticket, so no refunded ticket
    rides on. A partial refund (a ticket cannot be part used) or the refund of a ridden ticket is
    refused, and the wallet's refund with it. A ride made offline before the refund but uploaded
    after it is still accepted, as a conflict (`refunded`): offline validation cannot prevent
    it (README). Takes no points back."""
    ticket = await repo.ticket_of_payment(session, region_id, payment_id, lock=True)
    if ticket is None:
        return 0
    if ticket.rides_taken:
        raise TicketRidden(f"The ticket has carried {ticket.rides_taken} ride(s); its fare is not refunded.")
    if refunded_total < amount:
        raise TicketRefundPartial(f"Refund the whole fare of {amount} yen, or none of it.", fare=amount)
    await repo.mark_refunded(session, ticket.id, clock.now())
    return 0


async def ticket(session: AsyncSession, *, region: str, ticket_id: uuid.UUID) -> Ticket:
    region_id = await public.region_id(session, region=region)
    found = await repo.ticket(session, ticket_id)
    if found is None or found.region_id != region_id:
        raise TicketNotFound(f"No ticket {ticket_id} in region {region}.")
    return found


async def tickets_of(
    session: AsyncSession, *, region: str, resident: str, after_id: uuid.UUID | None, limit: int
) -> list[Ticket]:
    region_id = await public.region_id(session, region=region)
    return await repo.tickets(session, region_id, resident, after_id=after_id, limit=limit)


async def merchant_of(session: AsyncSession, ticket: Ticket) -> uuid.UUID:
    """The bus operator's merchant id."""
    owner = await repo.operator(session, ticket.operator_id)
    assert owner is not None, "a ticket's operator exists (foreign key)"
    return owner.merchant_id


@dataclass(frozen=True)
class TicketCodes:
    ticket: Ticket
    key_id: str
    codes: list[codes.StepCode]


async def ticket_codes(
    session: AsyncSession, clock: Clock, keys: SigningKeys, *, region: str, ticket: Ticket
) -> TicketCodes:
    """The current step's code and the next ones', for a ticket that can still be ridden."""
    now = clock.now()
    state = state_of(ticket, now)
    if state is TicketState.REFUNDED:
        raise TicketRefunded("The ticket's fare was refunded; there is no code to show.")
    if state is TicketState.USED_UP:
        raise TicketUsedUp("The ticket has no rides left; there is no code to show.")
    if state is TicketState.EXPIRED:
        raise TicketExpired(f"The ticket was valid until {valid_until(ticket).isoformat()}.",
                            valid_until=valid_until(ticket).isoformat())
    claims = TicketClaims(
        ticket.id, region, await merchant_of(session, ticket), ProductKind(ticket.kind),
        RiderCategory(ticket.rider_category), valid_until(ticket), codes.step_of(now),
    )
    return TicketCodes(ticket, keys.key_id, codes.codes_from(keys, claims, CODE_STEPS))


# --- validators ---------------------------------------------------------------------------------


async def resolve_validator_key(session: AsyncSession, secret: str) -> Principal | None:
    """The validator behind a presented key (app/wiring.py asks), scoped to its bus operator."""
    found = await repo.active_validator(session, hash_api_key(secret))
    if found is None:
        return None
    key, merchant_id = found
    return Principal(
        subject=f"api_key:{key.id}", role=Role.VALIDATOR, region_code=key.region_code, merchant_id=merchant_id,
        api_key_id=key.id,
    )


async def create_validator(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, owner: TransitOperator, name: str
) -> tuple[Validator, str]:
    secret = VALIDATOR_KEY_PREFIX + secrets.token_urlsafe(32)
    made = await repo.insert_validator(
        session, id=new_id(), region_id=owner.region_id, region_code=region, operator_id=owner.id,
        name=name, secret_hash=hash_api_key(secret), created_by=actor.subject, created_at=clock.now(),
    )
    await audit.record(
        session, clock, actor, region_id=owner.region_id, action="validator.create", target_type="validator",
        target_id=made.id, after={"merchant_id": str(owner.merchant_id), "name": name},
    )
    return made, secret


async def list_validators(session: AsyncSession, *, owner: TransitOperator) -> list[Validator]:
    return await repo.validators(session, owner.id)


async def validator(session: AsyncSession, *, region: str, validator_id: uuid.UUID) -> tuple[Validator, TransitOperator]:
    """A validator of the region and its bus operator."""
    region_id = await public.region_id(session, region=region)
    found = await repo.validator(session, validator_id)
    owner = await repo.operator(session, found.operator_id) if found is not None else None
    if found is None or owner is None or found.region_id != region_id:
        raise ValidatorNotFound(f"No validator {validator_id} in region {region}.")
    return found, owner


async def revoke_validator(session: AsyncSession, clock: Clock, *, actor: Actor, found: Validator) -> Validator:
    """Revoked at once; revoking again changes nothing."""
    revoked = await repo.revoke_validator(session, found.id, clock.now())
    if found.revoked_at is None:
        await audit.record(
            session, clock, actor, region_id=found.region_id, action="validator.revoke", target_type="validator",
            target_id=found.id, after={"revoked_at": revoked.revoked_at.isoformat() if revoked.revoked_at else None},
        )
    return revoked


# --- scans --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanRequest:
    scan_id: uuid.UUID
    code: str
    scanned_at: datetime
    vehicle_id: str | None
    route_id: str | None

    def fingerprint(self) -> str:
        """What tells a retry (same scan) from another scan under the same id."""
        canonical = json.dumps(
            [str(self.scan_id), self.code, self.scanned_at.timestamp(), self.vehicle_id, self.route_id],
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ValidatorScope:
    """The validator a scan comes from: its region, its own id, its bus operator's merchant id."""

    region: str
    validator_id: uuid.UUID
    merchant_id: uuid.UUID


@dataclass(frozen=True)
class ScanResult:
    scan: Scan
    ticket: Ticket
    replayed: bool  # the scan id's first outcome, answered again


async def scan(
    session: AsyncSession, clock: Clock, keys: SigningKeys, validator: ValidatorScope, request: ScanRequest,
    *, offline: bool,
) -> ScanResult:
    """Judge one scan: online at the server's time, offline at its own `scanned_at`. Refuses
    (raising, nothing written) ticket-code-forged, ticket-other-operator, ticket-code-stale,
    ticket-expired, and online also ticket-reused and ticket-used-up; offline, a ride beyond the
    ticket's rights is accepted as a conflict."""
    region_id = await public.region_id(session, region=validator.region)
    fingerprint = request.fingerprint()
    if (earlier := await _earlier(session, region_id, validator.validator_id, request, fingerprint)) is not None:
        return earlier
    now = clock.now()
    at = request.scanned_at if offline else now
    claims = codes.verify(
        request.code, keys=keys.accepted, region=validator.region, operator_id=validator.merchant_id, at=at
    )
    ticket = await repo.ticket(session, claims.ticket_id, lock=True)
    if ticket is None or ticket.region_id != region_id:
        raise TicketNotFound(f"No ticket {claims.ticket_id} (a code signed for a ticket that does not exist).")
    # Behind the ticket's lock: a twin with the same scan id has committed or not started.
    if (earlier := await _earlier(session, region_id, validator.validator_id, request, fingerprint)) is not None:
        return earlier
    conflict = _beyond_rights(ticket, at, offline=offline)
    first = ticket.activated_at is None
    activated_at = at if first or at < ticket.activated_at else ticket.activated_at
    active_until = activated_at + timedelta(hours=DAY_PASS_HOURS) if ticket.kind == ProductKind.DAY_PASS else None
    ridden = await repo.record_ride(session, ticket.id, activated_at=activated_at, active_until=active_until)
    made = await repo.insert_scan(
        session, id=new_id(), region_id=region_id, validator_id=validator.validator_id, scan_id=request.scan_id,
        request_hash=fingerprint, operator_id=ticket.operator_id, ticket_id=ticket.id, product_id=ticket.product_id,
        scanned_at=at, received_at=now, offline=offline, vehicle_id=request.vehicle_id, route_id=request.route_id,
        outcome=ScanOutcome.ACTIVATION if first else ScanOutcome.RIDE, conflict=conflict,
        rides_left=rides_left(ridden), valid_until=valid_until(ridden),
    )
    if made is None:  # a twin under the same scan id but for another ticket committed first
        raise ScanIdReused("This scan id was already used for a different scan; use a new one for a new scan.")
    return ScanResult(made, ridden, False)


async def _earlier(
    session: AsyncSession, region_id: uuid.UUID, validator_id: uuid.UUID, request: ScanRequest, fingerprint: str
) -> ScanResult | None:
    found = await repo.scan(session, region_id, validator_id, request.scan_id)
    if found is None:
        return None
    if found.request_hash != fingerprint:
        raise ScanIdReused("This scan id was already used for a different scan; use a new one for a new scan.")
    ticket = await repo.ticket(session, found.ticket_id)
    assert ticket is not None, "a scan's ticket exists (foreign key)"
    return ScanResult(found, ticket, True)


def _beyond_rights(ticket: Ticket, at: datetime, *, offline: bool) -> str | None:
    """What right the ticket lacks for a ride at `at`: online a refusal, offline a conflict."""
    if ticket.refunded_at is not None:
        if not offline:
            raise TicketRefunded("The ticket's fare was refunded.")
        return ConflictKind.REFUNDED
    if ticket.rides is not None and ticket.rides_taken >= ticket.rides:
        if not offline:
            if ticket.kind == ProductKind.SINGLE_RIDE:
                raise TicketReused("This single-ride ticket was already used.")
            raise TicketUsedUp(f"All {ticket.rides} rides of this ticket were taken.")
        return ConflictKind.REUSED if ticket.kind == ProductKind.SINGLE_RIDE else ConflictKind.USED_UP
    if at >= valid_until(ticket):
        if not offline:
            raise TicketExpired(f"The ticket was valid until {valid_until(ticket).isoformat()}.",
                                valid_until=valid_until(ticket).isoformat())
        return ConflictKind.EXPIRED
    return None


@dataclass(frozen=True)
class Uploaded:
    """One scan of an offline upload: accepted (perhaps as a conflict, perhaps answered again), or refused."""

    request: ScanRequest
    result: ScanResult | None
    refusal: Problem | None


async def upload_scans(
    session: AsyncSession, clock: Clock, keys: SigningKeys, validator: ValidatorScope, requests: list[ScanRequest]
) -> list[Uploaded]:
    """Reconcile scans a validator made offline, in `scanned_at` order, each in a savepoint: a
    refused one leaves nothing and the others stand."""
    latest = clock.now() + timedelta(seconds=codes.STEP_SECONDS)
    found = []
    for request in sorted(requests, key=lambda r: (r.scanned_at, str(r.scan_id))):
        try:
            if request.scanned_at > latest:
                raise ScanInFuture(
                    f"Scanned at {request.scanned_at.isoformat()}, after the server's clock: is the validator's clock right?"
                )
            async with session.begin_nested():
                found.append(Uploaded(request, await scan(session, clock, keys, validator, request, offline=True), None))
        except Problem as refusal:
            found.append(Uploaded(request, None, refusal))
    return found


async def conflicts(
    session: AsyncSession, *, region: str, owner: TransitOperator | None, after_id: uuid.UUID | None, limit: int
) -> list[Scan]:
    """Rides accepted offline beyond a ticket's rights: the region's, or one bus operator's."""
    region_id = await public.region_id(session, region=region)
    return await repo.conflicts(session, region_id, owner.id if owner else None, after_id=after_id, limit=limit)
