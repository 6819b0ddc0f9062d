"""Who may see or do what in transit: every rule about the caller (the request's `Principal`) is
here, asked by the endpoints before they call the service with an explicit `Actor`.

- A bus operator's merchant roles work with their own operator only (another one is not found);
  the operator and the auditor with every one of the region.
- A resident sees only their own tickets.
- A validator key acts for its one bus operator (`ValidatorScope`).
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.coupons.transit import service
from services.coupons.transit.errors import TicketNotFound, TransitOperatorNotFound, ValidatorNotFound
from services.coupons.transit.models import Ticket, TransitOperator, Validator
from services.coupons.transit.service import ValidatorScope
from shared.auth import MERCHANT_ROLES, Principal


async def operator(session: AsyncSession, principal: Principal, merchant_id: uuid.UUID) -> TransitOperator:
    if principal.role in MERCHANT_ROLES and principal.merchant_id != merchant_id:
        raise TransitOperatorNotFound(f"Merchant {merchant_id} is no bus operator of yours.")
    return await service.operator_of(session, region=principal.region_code, merchant_id=merchant_id)


async def conflicts_of(
    session: AsyncSession, principal: Principal, merchant_id: uuid.UUID | None
) -> TransitOperator | None:
    """Whose conflicts the caller reads: a merchant role its own operator's (by default too)."""
    if principal.role in MERCHANT_ROLES and merchant_id is None:
        merchant_id = principal.merchant_id
    return await operator(session, principal, merchant_id) if merchant_id is not None else None


async def own_ticket(session: AsyncSession, principal: Principal, ticket_id: uuid.UUID) -> Ticket:
    found = await service.ticket(session, region=principal.region_code, ticket_id=ticket_id)
    if found.resident != principal.subject:
        raise TicketNotFound(f"You have no ticket {ticket_id}.")
    return found


async def validator(
    session: AsyncSession, principal: Principal, validator_id: uuid.UUID
) -> tuple[Validator, TransitOperator]:
    found, owner = await service.validator(session, region=principal.region_code, validator_id=validator_id)
    if principal.role in MERCHANT_ROLES and principal.merchant_id != owner.merchant_id:
        raise ValidatorNotFound(f"No validator {validator_id} of your bus operator.")
    return found, owner


def validator_scope(principal: Principal) -> ValidatorScope:
    assert principal.api_key_id is not None and principal.merchant_id is not None, "a validator's key"
    return ValidatorScope(principal.region_code, principal.api_key_id, principal.merchant_id)
