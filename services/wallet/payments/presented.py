"""Customer-presented payments (CPM): the shop scans the resident's code.

Two kinds of code:
- a one-time token from the app, kept in Redis with a short TTL (Redis holds only what may be
  lost: a lost token just means showing a new one). The terminal's scan takes the token with an
  atomic GETDEL, so when two terminals scan the same code at the same instant exactly one wins.
  Taken is spent: if the payment is then refused (say, the balance is short) the resident shows
  a fresh code.
- a printed resident card with a static QR, for residents without a smartphone (DOMAIN.md),
  usable only with its 4-digit PIN typed on the shop's terminal; 5 wrong PINs lock it, and a
  daily limit bounds what a stolen card and a guessed PIN could spend.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.directory import service as directory
from services.wallet.ledger.errors import AccountInactive
from services.wallet.ledger.models import Status
from services.wallet.payments import repository as repo
from services.wallet.payments.errors import (
    CardDayLimitExceeded,
    CardLocked,
    CardLost,
    CardNotFound,
    CardPinWrong,
    CpmTokenExpired,
    CpmTokenUsed,
    CpmUnavailable,
)
from services.wallet.payments.models import Payment, PaymentMethod, ResidentCard, Store
from services.wallet.payments.service import pay
from shared import audit
from shared.audit import Actor
from shared.clock import TOKYO, Clock, tokyo_date
from shared.config import Settings
from shared.idempotency import KeptRefusal
from shared.ids import new_id

WRONG_PINS_TO_LOCK = 5
USED_MARK_SECONDS = 600  # how long a spent token is remembered, to say "used" rather than "expired"


# --- one-time tokens from the app ---------------------------------------------------------------


@dataclass(frozen=True)
class CpmToken:
    token: str
    expires_at: datetime


def _token_key(region_code: str, token: str) -> str:
    return f"chiikipay:cpm:{region_code}:{token}"


async def issue_token(clock: Clock, settings: Settings, redis: Redis, resident: directory.Wallet) -> CpmToken:
    """A 20-digit one-time code for the app to show as a QR or barcode."""
    if resident.account.status != Status.ACTIVE:
        raise AccountInactive(f"The wallet is {resident.account.status}.")
    token = f"{secrets.randbelow(10**20):020d}"
    value = json.dumps({"account_id": str(resident.account.id)})
    try:
        await redis.set(_token_key(resident.region.code, token), value, ex=settings.cpm_token_ttl_seconds, nx=True)
    except (RedisError, OSError):
        raise CpmUnavailable("Pay by scanning the shop's QR code instead.") from None
    return CpmToken(token, clock.now() + timedelta(seconds=settings.cpm_token_ttl_seconds))


async def pay_by_token(
    session: AsyncSession, clock: Clock, redis: Redis, region: directory.RegionIdentity, store: Store, token: str,
    amount: int,
) -> Payment:
    """The shop's terminal (selling at `store`) scanned a resident's one-time code."""
    key = _token_key(region.code, token)
    try:
        value = await redis.getdel(key)
        if value is None:
            used = await redis.exists(key + ":used")
        else:
            await redis.set(key + ":used", "1", ex=USED_MARK_SECONDS)
    except (RedisError, OSError):
        raise CpmUnavailable("Ask the resident to scan the shop's QR code instead.") from None
    if value is None:
        if used:
            raise CpmTokenUsed("This code was already used; ask the resident for a fresh one.")
        raise CpmTokenExpired("This code has expired or was never issued; ask the resident for a fresh one.")
    return (await pay(
        session, clock, region=region, store_id=store.id, account_id=uuid.UUID(json.loads(value)["account_id"]),
        amount=amount, method=PaymentMethod.CPM,
    ))[0]


# --- printed resident cards ---------------------------------------------------------------------


def _hash_pin(pin: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return f"scrypt${salt.hex()}${digest.hex()}"


def _pin_matches(pin: str, stored: str) -> bool:
    _, salt, _ = stored.split("$")
    return hmac.compare_digest(_hash_pin(pin, bytes.fromhex(salt)), stored)


async def issue_card(
    session: AsyncSession, clock: Clock, settings: Settings, actor: Actor, found: directory.Wallet, pin: str,
    daily_limit: int | None,
) -> ResidentCard:
    """At the counter: a new card for a wallet; any earlier card of the wallet stops working."""
    account_id = found.account.id
    await repo.retire_cards(session, account_id, "replaced")
    card = await repo.insert_card(
        session, id=new_id(), region_id=found.region.id, account_id=account_id,
        code=f"{secrets.randbelow(10**16):016d}", pin_hash=_hash_pin(pin), failed_pins=0,
        daily_limit=daily_limit or settings.default_card_daily_limit, status="active", created_at=clock.now(),
    )
    await audit.record(
        session, clock, actor, region_id=found.region.id, action="card.issue", target_type="card",
        target_id=card.id, after={"account_id": str(account_id), "daily_limit": card.daily_limit},
    )
    return card


async def report_lost(session: AsyncSession, clock: Clock, actor: Actor, card: ResidentCard) -> ResidentCard:
    """The resident (in the app) or an operator stops a card at once."""
    lost = await repo.set_card_status(session, card.id, "lost") if card.status in ("active", "locked") else card
    await audit.record(
        session, clock, actor, region_id=card.region_id, action="card.lost", target_type="card",
        target_id=card.id, before={"status": card.status}, after={"status": lost.status},
    )
    return lost


async def pay_by_card(
    session: AsyncSession, clock: Clock, region: directory.RegionIdentity, store: Store, code: str, pin: str,
    amount: int,
) -> Payment:
    """The card is locked (its row) before its PIN is checked, so that guesses sent at once are
    checked one after the other against the committed count: at most the tries left are ever
    checked, and a right PIN after the fifth wrong one finds the card locked. A wrong PIN is
    refused with `KeptRefusal`: its count is committed in this request's own transaction (it is
    the transaction's only change), never through a second connection."""
    card = await repo.card_by_code(session, store.region_id, code, lock=True)
    if card is None:
        raise CardNotFound("This card is not one of this region's.")
    _refuse_unusable(card)
    # scrypt takes tens of milliseconds of CPU: off the event loop, so other requests go on.
    if not await asyncio.to_thread(_pin_matches, pin, card.pin_hash):
        counted = await repo.count_wrong_pin(session, card.id, WRONG_PINS_TO_LOCK)
        if counted.status == "locked":
            raise KeptRefusal(CardLocked("Too many wrong PINs: the card is now locked."))
        raise KeptRefusal(CardPinWrong(
            f"Wrong PIN; {WRONG_PINS_TO_LOCK - counted.failed_pins} tries left before the card locks.",
            attempts_left=WRONG_PINS_TO_LOCK - counted.failed_pins,
        ))
    await repo.reset_wrong_pins(session, card.id)
    day_start = datetime.combine(tokyo_date(clock.now()), time(0), tzinfo=TOKYO)
    spent = await repo.card_spent_since(session, card.id, day_start)
    if spent + amount > card.daily_limit:
        raise CardDayLimitExceeded(
            f"Today this card may pay {card.daily_limit - spent} yen more.", remaining_today=card.daily_limit - spent
        )
    return (await pay(
        session, clock, region=region, store_id=store.id, account_id=card.account_id, amount=amount, method=PaymentMethod.CARD, card_id=card.id,
    ))[0]


def _refuse_unusable(card: ResidentCard) -> None:
    if card.status == "locked":
        raise CardLocked()
    if card.status in ("lost", "replaced"):
        raise CardLost()


# Queries the modules above use as they are: they call this module, never the repository.
card = repo.card
