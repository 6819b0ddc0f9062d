"""Transit (/v1/transit, /v1/me/transit): bus operators, fare products, residents' e-tickets and
their rotating codes, validators and their scans, offline uploads and their conflicts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Query
from fastapi.responses import JSONResponse

from services.coupons.transit import access, codes, service
from services.coupons.transit.models import Scan, Ticket, Validator
from services.coupons.transit.schemas import (
    BatchIn,
    BatchItemOut,
    BatchOut,
    CodeOut,
    ConflictOut,
    KeyOut,
    KeysOut,
    OperatorCreate,
    OperatorOut,
    ProductCreate,
    ProductOut,
    ScanIn,
    ScanOut,
    TicketBuy,
    TicketCodesOut,
    TicketOut,
    ValidatorCreate,
    ValidatorCreated,
    ValidatorOut,
)
from services.coupons.transit.service import OperatorView, ProductView, ScanRequest, ScanResult
from services.wallet import public as wallet
from shared.audit import Actor
from shared.auth import Principal, Role, require
from shared.db import SessionDep
from shared.deps import ClockDep, RedisDep, SettingsDep
from shared.idempotency import IdempotencyDep
from shared.observability import allow_large_body
from shared.openapi import INSUFFICIENT_BALANCE, PROBLEMS
from shared.pagination import CursorParam, LimitParam, Page, decode_cursor, page_of

router = APIRouter(tags=["transit"])

Operator = Annotated[Principal, require(Role.OPERATOR)]
Definer = Annotated[Principal, require(Role.OPERATOR, Role.MERCHANT_ADMIN)]
Overseer = Annotated[Principal, require(Role.OPERATOR, Role.AUDITOR, Role.MERCHANT_ADMIN, Role.MERCHANT_STAFF)]
Anyone = Annotated[Principal, require(*Role)]  # every role of the region (not partner or validator keys)
Resident = Annotated[Principal, require(Role.RESIDENT)]
KeyReader = Annotated[Principal, require(
    Role.RESIDENT, Role.MERCHANT_STAFF, Role.MERCHANT_ADMIN, Role.OPERATOR, Role.AUDITOR, Role.TERMINAL, Role.VALIDATOR,
)]
Validating = Annotated[Principal, require(Role.VALIDATOR)]

SCAN_DESCRIPTION = (
    " Scans carry no Idempotency-Key: the body's `scan_id` (the validator's own uuid) is the scan's "
    "idempotency key. An accepted scan sent again answers its first outcome (200); the same scan id with a "
    "different scan is refused (422 scan-id-reused). A refused scan is not kept and changes nothing."
)


def operator_out(found: OperatorView) -> OperatorOut:
    return OperatorOut(
        merchant_id=found.merchant.id, name=found.merchant.name, name_ja=found.merchant.name_ja,
        merchant_status=found.merchant.status, created_by=found.operator.created_by,
        created_at=found.operator.created_at,
    )


def product_out(found: ProductView) -> ProductOut:
    p = found.product
    return ProductOut(
        id=p.id, merchant_id=found.merchant_id, name=p.name, name_ja=p.name_ja, kind=p.kind, rides=p.rides,
        valid_days=p.valid_days, fares=found.fares, status=p.status, created_at=p.created_at, retired_at=p.retired_at,
    )


def ticket_out(ticket: Ticket, merchant_id: uuid.UUID, now: datetime) -> TicketOut:
    return TicketOut(
        id=ticket.id, product_id=ticket.product_id, merchant_id=merchant_id, kind=ticket.kind,
        rider_category=ticket.rider_category, fare=ticket.fare, funded_by=ticket.funded_by,
        payment_id=ticket.payment_id, bundle_claim_id=ticket.bundle_claim_id,
        state=service.state_of(ticket, now), rides=ticket.rides, rides_taken=ticket.rides_taken,
        rides_left=service.rides_left(ticket), purchased_at=ticket.purchased_at, expires_at=ticket.expires_at,
        activated_at=ticket.activated_at, valid_until=service.valid_until(ticket), refunded_at=ticket.refunded_at,
    )


def validator_out(found: Validator, merchant_id: uuid.UUID) -> ValidatorOut:
    return ValidatorOut(
        id=found.id, merchant_id=merchant_id, name=found.name, created_by=found.created_by,
        created_at=found.created_at, revoked_at=found.revoked_at,
    )


def scan_out(found: ScanResult) -> ScanOut:
    s, t = found.scan, found.ticket
    return ScanOut(
        scan_id=s.scan_id, ticket_id=s.ticket_id, kind=t.kind, rider_category=t.rider_category, outcome=s.outcome,
        conflict=s.conflict, rides_left=s.rides_left, valid_until=s.valid_until, scanned_at=s.scanned_at,
        received_at=s.received_at, offline=s.offline,
    )


def conflict_out(found: Scan) -> ConflictOut:
    return ConflictOut(
        scan_id=found.scan_id, ticket_id=found.ticket_id, product_id=found.product_id,
        validator_id=found.validator_id, conflict=found.conflict, scanned_at=found.scanned_at,
        received_at=found.received_at, vehicle_id=found.vehicle_id, route_id=found.route_id,
    )


def _request(body: ScanIn) -> ScanRequest:
    return ScanRequest(body.scan_id, body.code, body.scanned_at, body.vehicle_id, body.route_id)


# --- bus operators ------------------------------------------------------------------------------


@router.post("/v1/transit/operators", status_code=201, response_model=OperatorOut, responses=PROBLEMS)
async def mark_transit_operator(
    body: OperatorCreate, principal: Operator, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """Mark a merchant of the region as a bus operator (operator; audited)."""
    if replay := await idem.replay():
        return replay
    marked = await service.mark_operator(
        session, clock, region=principal.region_code, actor=Actor.of(principal), merchant_id=body.merchant_id
    )
    return await idem.respond(201, operator_out(marked))


@router.get("/v1/transit/operators", response_model=list[OperatorOut], responses=PROBLEMS)
async def list_transit_operators(principal: Anyone, session: SessionDep) -> list[OperatorOut]:
    return [operator_out(found) for found in await service.list_operators(session, region=principal.region_code)]


# --- fare products ------------------------------------------------------------------------------


@router.post("/v1/transit/products", status_code=201, response_model=ProductOut, responses=PROBLEMS)
async def create_fare_product(
    body: ProductCreate, principal: Definer, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """Define a fare product (the bus operator's merchant admin, or the operator; audited)."""
    if replay := await idem.replay():
        return replay
    owner = await access.operator(session, principal, body.merchant_id)
    found = await service.create_product(session, clock, actor=Actor.of(principal), owner=owner, details=body.model_dump())
    return await idem.respond(201, product_out(found))


@router.get("/v1/transit/products", response_model=Page[ProductOut], responses=PROBLEMS)
async def list_fare_products(
    principal: Anyone, session: SessionDep,
    merchant_id: Annotated[uuid.UUID | None, Query(description="only this bus operator's")] = None,
    status: Annotated[Literal["active", "retired"] | None, Query(description="only products in this status")] = None,
    cursor: CursorParam = None, limit: LimitParam = 50,
) -> Page[ProductOut]:
    """The region's fare products, newest first."""
    found = await service.list_products(
        session, region=principal.region_code, merchant_id=merchant_id, status=status, after_id=decode_cursor(cursor), limit=limit + 1
    )
    return page_of([product_out(p) for p in found], [p.product.id for p in found], limit)


@router.get("/v1/transit/products/{product_id}", response_model=ProductOut, responses=PROBLEMS)
async def get_fare_product(product_id: uuid.UUID, principal: Anyone, session: SessionDep) -> ProductOut:
    return product_out(await service.product(session, region=principal.region_code, product_id=product_id))


@router.post("/v1/transit/products/{product_id}/retire", response_model=ProductOut, responses=PROBLEMS)
async def retire_fare_product(
    product_id: uuid.UUID, principal: Definer, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """Stop selling a product; tickets already bought stay valid (audited)."""
    if replay := await idem.replay():
        return replay
    view = await service.product(session, region=principal.region_code, product_id=product_id)
    await access.operator(session, principal, view.merchant_id)  # a merchant admin retires only its own
    return await idem.respond(200, product_out(await service.retire_product(session, clock, actor=Actor.of(principal),
                                                                            view=view)))


# --- tickets ------------------------------------------------------------------------------------


@router.post(
    "/v1/transit/tickets", status_code=201, response_model=TicketOut, responses={**PROBLEMS, **INSUFFICIENT_BALANCE}
)
async def buy_ticket(
    body: TicketBuy, principal: Resident, session: SessionDep, clock: ClockDep, idem: IdempotencyDep,
    redis: RedisDep, background: BackgroundTasks,
):
    """Buy a fare product for a rider category with the coin: an ordinary payment of the fare to
    the bus operator and the e-ticket, in one transaction. The wallet's refusals (402
    insufficient-balance, 409 merchant-inactive, …) leave nothing. The bus operator's terminals
    are told of the payment once committed."""
    if replay := await idem.replay():
        return replay
    ticket, paid = await service.buy_ticket(
        session, clock, region=principal.region_code, actor=Actor.of(principal), payer=principal.subject,
        product_id=body.product_id, category=body.rider_category,
    )
    background.add_task(wallet.publish_paid, redis, paid)  # runs after the commit and the response
    return await idem.respond(201, ticket_out(ticket, await service.merchant_of(session, ticket), clock.now()))


@router.get("/v1/me/transit/tickets", response_model=Page[TicketOut], responses=PROBLEMS)
async def my_tickets(
    principal: Resident, session: SessionDep, clock: ClockDep, cursor: CursorParam = None, limit: LimitParam = 50
) -> Page[TicketOut]:
    """Your tickets, newest first, with their state: unused, active (until, rides left), expired, used up."""
    found = await service.tickets_of(
        session, region=principal.region_code, resident=principal.subject, after_id=decode_cursor(cursor),
        limit=limit + 1,
    )
    now = clock.now()
    return page_of([ticket_out(t, await service.merchant_of(session, t), now) for t in found], [t.id for t in found],
                   limit)


@router.get("/v1/me/transit/tickets/{ticket_id}", response_model=TicketOut, responses=PROBLEMS)
async def my_ticket(ticket_id: uuid.UUID, principal: Resident, session: SessionDep, clock: ClockDep) -> TicketOut:
    ticket = await access.own_ticket(session, principal, ticket_id)
    return ticket_out(ticket, await service.merchant_of(session, ticket), clock.now())


@router.get("/v1/me/transit/tickets/{ticket_id}/code", response_model=TicketCodesOut, responses=PROBLEMS)
async def ticket_code(
    ticket_id: uuid.UUID, principal: Resident, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> JSONResponse:
    """The ticket's code for the current 30-second step and the next ones', each with the window
    in which a validator accepts it: show them in turn, even offline, for a few minutes. Refused
    for a ticket that is expired (409 ticket-expired), used up (409 ticket-used-up) or refunded
    (409 ticket-refunded)."""
    ticket = await access.own_ticket(session, principal, ticket_id)
    found = await service.ticket_codes(
        session, clock, codes.signing_keys(settings), region=principal.region_code, ticket=ticket
    )
    body = TicketCodesOut(
        ticket_id=found.ticket.id, key_id=found.key_id, step_seconds=codes.STEP_SECONDS,
        codes=[CodeOut(code=c.code, step=c.step, valid_from=c.valid_from, valid_until=c.valid_until)
               for c in found.codes],
    )
    # A code is a bearer credential for a minute: no cache may keep it.
    return JSONResponse(body.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


@router.get("/v1/transit/keys", response_model=KeysOut, responses=PROBLEMS)
async def transit_keys(principal: KeyReader, settings: SettingsDep) -> KeysOut:
    """The public keys a validator checks ticket codes with, by key id (offline, with `codes.verify`)."""
    keys = codes.signing_keys(settings)
    return KeysOut(
        region=principal.region_code, step_seconds=codes.STEP_SECONDS, tolerated_steps=codes.TOLERATED_STEPS,
        keys=[KeyOut(key_id=kid, algorithm="Ed25519", public_key=codes.raw_public_key(key), current=kid == keys.key_id)
              for kid, key in keys.accepted.items()],
    )


# --- validators ---------------------------------------------------------------------------------


@router.post("/v1/transit/validators", status_code=201, response_model=ValidatorCreated, responses=PROBLEMS)
async def create_validator(
    body: ValidatorCreate, principal: Definer, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """A bus validator device's API key, scoped to one bus operator: it scans that operator's
    tickets only. The secret is shown once (audited)."""
    if replay := await idem.replay():
        return replay
    owner = await access.operator(session, principal, body.merchant_id)
    made, secret = await service.create_validator(
        session, clock, region=principal.region_code, actor=Actor.of(principal), owner=owner, name=body.name
    )
    out = validator_out(made, body.merchant_id)
    return await idem.respond(201, ValidatorCreated(**out.model_dump(), secret=secret))


@router.get("/v1/transit/validators", response_model=list[ValidatorOut], responses=PROBLEMS)
async def list_validators(
    merchant_id: Annotated[uuid.UUID, Query(description="the bus operator")], principal: Overseer, session: SessionDep
) -> list[ValidatorOut]:
    owner = await access.operator(session, principal, merchant_id)
    return [validator_out(v, merchant_id) for v in await service.list_validators(session, owner=owner)]


@router.delete("/v1/transit/validators/{validator_id}", response_model=ValidatorOut, responses=PROBLEMS)
async def revoke_validator(
    validator_id: uuid.UUID, principal: Definer, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """Revoke a validator's key at once (audited)."""
    if replay := await idem.replay():
        return replay
    found, owner = await access.validator(session, principal, validator_id)
    revoked = await service.revoke_validator(session, clock, actor=Actor.of(principal), found=found)
    return await idem.respond(200, validator_out(revoked, owner.merchant_id))


# --- scans --------------------------------------------------------------------------------------


@router.post(
    "/v1/transit/scans", status_code=201, response_model=ScanOut, description=(
        "A validator's scan, online (validator key): the code's step is checked against the server's clock and "
        "the ride judged now. The first ride activates the ticket (a day pass then runs 24 h); each ride counts. "
        "Refused: ticket-code-forged, ticket-code-stale (a screenshot), ticket-other-operator, ticket-expired, "
        "ticket-used-up, ticket-reused (a single ride scanned again), ticket-refunded." + SCAN_DESCRIPTION
    ),
    responses={**PROBLEMS, 200: {"description": "this scan id was accepted before: its first outcome",
                                 "model": ScanOut}},
)
async def scan_ticket(
    body: ScanIn, principal: Validating, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> JSONResponse:
    found = await service.scan(
        session, clock, codes.signing_keys(settings), access.validator_scope(principal), _request(body), offline=False
    )
    return JSONResponse(scan_out(found).model_dump(mode="json"), status_code=200 if found.replayed else 201)


# A day offline is a few hundred scans (up to 500 per upload), more than the usual body limit.
allow_large_body("POST", r"/v1/transit/scans/batch")


@router.post(
    "/v1/transit/scans/batch", response_model=BatchOut, description=(
        "Scans a validator made offline, uploaded later (validator key). Each is judged at its own `scanned_at` "
        "(the code's step against that time), in `scanned_at` order. A ride beyond the ticket's rights (a single "
        "ride taken on two buses while both were offline) is accepted, because it happened, and reported as a "
        "conflict: offline validation cannot prevent that. A scan the validator should not have accepted "
        "(forged, stale, another operator's, expired) is refused and not kept; the others stand." + SCAN_DESCRIPTION
    ),
    responses=PROBLEMS,
)
async def upload_scans(
    body: BatchIn, principal: Validating, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> BatchOut:
    found = await service.upload_scans(
        session, clock, codes.signing_keys(settings), access.validator_scope(principal), [_request(s) for s in body.scans]
    )
    return BatchOut(results=[
        BatchItemOut(
            scan_id=item.request.scan_id,
            status="refused" if item.result is None else "conflict" if item.result.scan.conflict else "accepted",
            replayed=item.result.replayed if item.result else False,
            scan=scan_out(item.result) if item.result else None,
            problem=item.refusal.body() if item.refusal else None,
        )
        for item in found
    ])


@router.get("/v1/transit/conflicts", response_model=Page[ConflictOut], responses=PROBLEMS)
async def list_conflicts(
    principal: Overseer, session: SessionDep,
    merchant_id: Annotated[uuid.UUID | None, Query(description="only this bus operator's (a merchant: its own)")] = None,
    cursor: CursorParam = None, limit: LimitParam = 50,
) -> Page[ConflictOut]:
    """Rides accepted offline beyond their ticket's rights, newest first, for the bus operator to follow up."""
    owner = await access.conflicts_of(session, principal, merchant_id)
    found = await service.conflicts(
        session, region=principal.region_code, owner=owner, after_id=decode_cursor(cursor), limit=limit + 1
    )
    return page_of([conflict_out(s) for s in found], [s.id for s in found], limit)
