"""Request and response bodies of transit."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from services.coupons.transit.codes import ProductKind, RiderCategory
from services.coupons.transit.service import TicketState
from shared.clock import Instant
from shared.money import Amount
from shared.schemas import Schema, Text100

# What a validator names its vehicle and route by (a GTFS route_id, a plate number): printable ASCII.
VehicleRef = Annotated[str, StringConstraints(pattern=r"^[!-~]{1,64}$")]
TicketCode = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[!-~]+$")]
MAX_BATCH = 500


# What an offline ride lacked (models.ConflictKind): a single ride taken again, a multi-ride ticket past
# its rides, after its validity, on a ticket whose fare was refunded.
ConflictName = Literal["reused", "used_up", "expired", "refunded"]
# Who paid a ticket's fare (models.TicketFunder).
TicketFunding = Literal["resident", "operator", "sponsor"]

class OperatorCreate(Schema):
    merchant_id: uuid.UUID = Field(description="the merchant (a bus company, the on-demand bus) to mark as a bus operator")


class OperatorOut(Schema):
    merchant_id: uuid.UUID
    name: str
    name_ja: str
    merchant_status: str = Field(description="the merchant's: only an active one sells tickets")
    created_by: str
    created_at: datetime


class Fares(Schema):
    """Yen per GTFS rider category; a category left out is not sold (at least one is)."""

    adult: Amount | None = None
    child: Amount | None = None
    elderly: Amount | None = None


class ProductCreate(Schema):
    merchant_id: uuid.UUID = Field(description="the bus operator (a merchant admin: its own)")
    name: Text100
    name_ja: Text100
    kind: ProductKind = Field(description="single_ride; day_pass (24 h from the first ride); multi_ride (N rides)")
    rides: int | None = Field(
        None, ge=2, le=100, description="a multi-ride ticket's N: given for multi_ride only (422 invalid-fare-product)"
    )
    valid_days: int = Field(90, ge=1, le=366, description="a ticket must be first used within this many days of purchase")
    fares: Fares


class ProductOut(Schema):
    id: uuid.UUID
    merchant_id: uuid.UUID
    name: str
    name_ja: str
    kind: ProductKind
    rides: int | None
    valid_days: int
    fares: dict[RiderCategory, int] = Field(description="yen per rider category on sale")
    status: Literal["active", "retired"]
    created_at: datetime
    retired_at: datetime | None


class TicketBuy(Schema):
    product_id: uuid.UUID
    rider_category: RiderCategory


class TicketOut(Schema):
    id: uuid.UUID
    product_id: uuid.UUID
    merchant_id: uuid.UUID = Field(description="the bus operator")
    kind: ProductKind
    rider_category: RiderCategory
    fare: int = Field(description="yen paid for it (a ride the bus operator gave in a bundle: 0)")
    funded_by: TicketFunding = Field(
        description="resident: bought by a coin payment; operator: given by the bus operator in a bundle; sponsor: "
        "given in a bundle, the fare paid to the bus operator by a sponsor"
    )
    payment_id: uuid.UUID | None = Field(description="the coin payment of the fare to the bus operator (a bought ticket)")
    bundle_claim_id: uuid.UUID | None = Field(description="the bundle claim that granted it")
    state: TicketState
    rides: int | None = Field(description="rides it gives (1, or N); null: a day pass, unlimited within its 24 h")
    rides_taken: int
    rides_left: int | None
    purchased_at: datetime
    expires_at: datetime = Field(description="first use before this (a single or multi-ride ticket: every use)")
    activated_at: datetime | None = Field(description="its first ride")
    valid_until: datetime = Field(description="until when it may be ridden: an activated day pass's 24 h, else expires_at")
    refunded_at: datetime | None = Field(
        description="when its fare was refunded (in full, unridden: the shop's refund of its payment); it rides no more"
    )


class CodeOut(Schema):
    code: str = Field(description="show as a QR; a validator accepts it from `valid_from` until `valid_until`")
    step: int = Field(description="its 30-second time step (unix time // 30)")
    valid_from: datetime
    valid_until: datetime


class TicketCodesOut(Schema):
    ticket_id: uuid.UUID
    key_id: str = Field(description="the signing key's id (GET /v1/transit/keys)")
    step_seconds: int
    codes: list[CodeOut] = Field(description="the current step's code first, then the next steps': show each in turn")


class KeyOut(Schema):
    key_id: str
    algorithm: Literal["Ed25519"]
    public_key: str = Field(description="the raw 32-byte public key, base64url without padding")
    current: bool = Field(description="signing codes now; a previous key is listed until its codes are stale")


class KeysOut(Schema):
    region: str
    step_seconds: int
    tolerated_steps: int = Field(description="a validator accepts a code of its own step ± this many")
    keys: list[KeyOut]


class ValidatorCreate(Schema):
    merchant_id: uuid.UUID = Field(description="the bus operator whose tickets it takes")
    name: Text100 = Field(description="e.g. the bus's number")


class ValidatorOut(Schema):
    id: uuid.UUID
    merchant_id: uuid.UUID
    name: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


class ValidatorCreated(ValidatorOut):
    secret: str = Field(description="send as X-API-Key from the device; shown once, stored only as a hash")


class ScanIn(Schema):
    scan_id: uuid.UUID = Field(
        description="the validator's own id for this scan, its idempotency key: sent again (a retry, an upload "
        "repeated) it answers the first outcome; with a different scan it is refused (422 scan-id-reused)"
    )
    code: TicketCode = Field(description="the code the resident's app showed")
    scanned_at: Instant = Field(description="the validator's clock at the scan (offline: the ride's time)")
    vehicle_id: VehicleRef | None = None
    route_id: VehicleRef | None = Field(None, description="GTFS route_id")


class ScanOut(Schema):
    scan_id: uuid.UUID
    ticket_id: uuid.UUID
    kind: ProductKind
    rider_category: RiderCategory = Field(description="show it to the driver (a child's ticket)")
    outcome: Literal["activation", "ride"] = Field(description="activation: the ticket's first ride")
    conflict: ConflictName | None = Field(
        description="offline only: the ride was beyond the ticket's rights (reported at GET /v1/transit/conflicts)"
    )
    rides_left: int | None = Field(description="after this ride; null: a day pass")
    valid_until: datetime = Field(description="the ticket's, after this ride")
    scanned_at: datetime = Field(description="when the ride was judged: online the server's clock, offline the scan's")
    received_at: datetime
    offline: bool


class BatchIn(Schema):
    scans: list[ScanIn] = Field(min_length=1, max_length=MAX_BATCH)


class BatchItemOut(Schema):
    scan_id: uuid.UUID
    status: Literal["accepted", "conflict", "refused"]
    replayed: bool = Field(description="this scan id was accepted before: its first outcome")
    scan: ScanOut | None = Field(description="the accepted scan")
    problem: dict[str, object] | None = Field(description="a refused scan's problem (type, title, status, detail)")


class BatchOut(Schema):
    results: list[BatchItemOut] = Field(description="in the order they were reconciled: by scanned_at")


class ConflictOut(Schema):
    scan_id: uuid.UUID
    ticket_id: uuid.UUID
    product_id: uuid.UUID
    validator_id: uuid.UUID
    conflict: ConflictName
    scanned_at: datetime
    received_at: datetime
    vehicle_id: str | None
    route_id: str | None
