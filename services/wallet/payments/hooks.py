"""What other modules do when a payment is made or refunded: a reward campaign's points back, a
coupon's redemption … They run in the payment's own session and transaction, so the payment and
everything it causes commit or roll back as one: a hook refuses by raising a `Problem`, and the
payment (or refund) fails with it. The composition root (app/wiring.py) registers them, other
services' through services/wallet/public.py; payments never imports the modules it calls."""

from __future__ import annotations

import uuid
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.ledger.models import Account
from shared.clock import Clock


class OnPaid(Protocol):
    async def __call__(
        self, session: AsyncSession, clock: Clock, *, payment_id: uuid.UUID, region_id: uuid.UUID,
        merchant_id: uuid.UUID, amount: int, point_amount: int, wallet_account_id: uuid.UUID,
    ) -> int:
        """After the payment's journal is written (the payer's accounts locked): `amount`, of it
        `point_amount` paid in points. Returns the points it gave the payer (0 for none); the
        payment records their sum as its `reward_points`."""
        ...


class OnRefunded(Protocol):
    async def __call__(
        self, session: AsyncSession, clock: Clock, *, payment_id: uuid.UUID, region_id: uuid.UUID, amount: int,
        refunded_total: int, points: Account,
    ) -> int:
        """After a refund's journal is written (the payer's accounts locked) that brings the
        refunds of the payment of `amount` to `refunded_total`; `points` is the payer's point
        account. Returns the points it took back from the payer (0 for none)."""
        ...


on_paid: list[OnPaid] = []
on_refunded: list[OnRefunded] = []


def register(*, paid: OnPaid | None = None, refunded: OnRefunded | None = None) -> None:
    """Add a hook (once: registering the same function again changes nothing)."""
    if paid is not None and paid not in on_paid:
        on_paid.append(paid)
    if refunded is not None and refunded not in on_refunded:
        on_refunded.append(refunded)
