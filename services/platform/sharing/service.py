"""Data sharing's rules: what a resident has chosen (at the city's ID, in the app: the later
choice is in force), the event each payment of a resident who shares becomes, the check at
delivery that they still share, and the daily aggregate everyone's payments become.

**Configured once per process** (`configure`, from the composition root): the data platform's
URL, the secret its deliveries are signed with and the pseudonyms' key. With no URL nothing is
written, and the payment hook costs nothing.

**Revocable at once.** A payment's event is written in the payment's transaction (the outbox:
it exists if and only if the payment committed) and checked again just before each delivery
attempt (`sign_or_withdraw`): a resident who withdrew in between is not sent, their event is
withdrawn.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from services.platform.outbox import public as outbox
from services.platform.sharing import events
from services.platform.sharing import repository as repo
from services.platform.sharing.errors import DayNotEnded
from services.platform.sharing.models import SharingChoice
from services.wallet import public as wallet
from shared import audit
from shared.audit import Actor
from shared.auth import KEY_RECHECK_SECONDS
from shared.clock import Clock, tokyo_date
from shared.config import Settings

DESTINATION_KIND = "data_platform"


@dataclass(frozen=True)
class DataPlatform:
    url: str | None  # None: nothing is shared
    secret: str
    pseudonym_key: bytes
    min_payments: int

    @classmethod
    def of(cls, settings: Settings) -> DataPlatform:
        return cls(settings.data_platform_url, settings.data_platform_secret,
                   settings.data_platform_pseudonym_key.encode(), settings.data_platform_min_payments)


_platform = DataPlatform(None, "", b"", 1)


def configure(platform: DataPlatform) -> None:
    """For the composition root, at start: the payment hook and the delivery signer read it."""
    global _platform
    _platform = platform


def configured() -> DataPlatform:
    return _platform


# --- choices ------------------------------------------------------------------------------------


class Source(StrEnum):
    CITY_ID = "city_id"  # the opt-in claim of the resident's token at the city's ID
    RESIDENT = "resident"  # the resident's own setting in the app


@dataclass(frozen=True)
class Choice:
    opted_in: bool
    source: Source | None  # whose choice is in force; None: no choice made (not shared)
    area: str | None
    updated_at: datetime | None

    @classmethod
    def of(cls, row: SharingChoice | None) -> Choice:
        if row is None:
            return cls(False, None, None, None)
        return cls(row.opted_in, _in_force(row.provider_chosen_at, row.resident_chosen_at), row.area, row.updated_at)


def _in_force(provider_at: datetime | None, resident_at: datetime | None) -> Source | None:
    """The later choice; at the same instant, the resident's own."""
    if resident_at is not None and (provider_at is None or resident_at >= provider_at):
        return Source.RESIDENT
    return Source.CITY_ID if provider_at is not None else None


async def choice(session: AsyncSession, *, region: str, subject: str) -> Choice:
    region_id = await wallet.region_id(session, region=region)
    return Choice.of(await repo.choice(session, region_id, subject))


async def choose(
    session: AsyncSession, clock: Clock, actor: Actor, *, region: str, subject: str, opted_in: bool
) -> Choice:
    """The resident's own choice in the app, in force once this commits, whatever the city's ID
    said before (until the resident changes their choice there)."""
    return await _record(session, clock, actor, region=region, subject=subject, source=Source.RESIDENT,
                         opted_in=opted_in, area=None)


# What this process has recorded of the city's ID's claims, so that a resident's every request
# does not write: (region, subject) -> (opt-in, area, when). Re-recorded when a claim differs or
# after KEY_RECHECK_SECONDS (a request that recorded it may have rolled back).
RECORDED_CLAIMS = 65_536
_recorded: OrderedDict[tuple[str, str], tuple[bool | None, str | None, float]] = OrderedDict()


def forget_recorded_claims() -> None:
    """For tests, whose tables are emptied between them."""
    _recorded.clear()


async def record_city_id_claims(
    session: AsyncSession, clock: Clock, actor: Actor, *, region: str, subject: str, opted_in: bool | None,
    area: str | None,
) -> None:
    """What the resident's token from the city's ID asserts (shared.auth's claims observer, in the
    request's session): its opt-in claim is a choice when its value changes; its area attribute,
    when present, replaces the one stored."""
    key, now = (region, subject), clock.now().timestamp()
    seen = _recorded.get(key)
    if seen is not None and seen[:2] == (opted_in, area) and seen[2] <= now < seen[2] + KEY_RECHECK_SECONDS:
        _recorded.move_to_end(key)
        return
    await _record(session, clock, actor, region=region, subject=subject, source=Source.CITY_ID, opted_in=opted_in,
                  area=area)
    _recorded[key] = (opted_in, area, now)
    _recorded.move_to_end(key)
    if len(_recorded) > RECORDED_CLAIMS:
        _recorded.popitem(last=False)


async def _record(
    session: AsyncSession, clock: Clock, actor: Actor, *, region: str, subject: str, source: Source,
    opted_in: bool | None, area: str | None,
) -> Choice:
    region_id = await wallet.region_id(session, region=region)
    found = await repo.choice(session, region_id, subject, lock=True)
    before = Choice.of(found)
    now = clock.now()
    provider = (found.provider_choice, found.provider_chosen_at) if found else (None, None)
    resident = (found.resident_choice, found.resident_chosen_at) if found else (None, None)
    kept_area = found.area if found else None
    if source is Source.RESIDENT:
        resident = (opted_in, now)
    else:
        if opted_in is not None and opted_in != provider[0]:
            provider = (opted_in, now)
        kept_area = area if area is not None else kept_area
        if found is not None and (provider[0], kept_area) == (found.provider_choice, found.area):
            return before  # nothing new asserted
        if found is None and opted_in is None:
            return before  # an area alone is not kept for someone who never chose
    in_force = _in_force(provider[1], resident[1])
    shares = (resident[0] if in_force is Source.RESIDENT else provider[0]) is True
    account_id = found.wallet_account_id if found else await wallet.resident_wallet_account(
        session, clock, region=region, subject=subject
    )
    saved = Choice.of(await repo.save_choice(session, {
        "region_id": region_id, "subject": subject, "region_code": region, "wallet_account_id": account_id,
        "pseudonym": events.pseudonym(_platform.pseudonym_key, region_id, subject), "opted_in": shares,
        "provider_choice": provider[0], "provider_chosen_at": provider[1], "resident_choice": resident[0],
        "resident_chosen_at": resident[1], "area": kept_area, "updated_at": now,
    }))
    if (before.opted_in, before.source) != (saved.opted_in, saved.source):
        # The trail keeps who chose what and when; never the area, an attribute it would keep forever.
        await audit.record(
            session, clock, actor, region_id=region_id, action="data_sharing.choice", target_type="resident",
            target_id=subject, before={"opted_in": before.opted_in, "source": before.source},
            after={"opted_in": saved.opted_in, "source": saved.source},
        )
    return saved


# --- events -------------------------------------------------------------------------------------


async def share_payment(
    session: AsyncSession, clock: Clock, *, payment_id: uuid.UUID, region_id: uuid.UUID, merchant_id: uuid.UUID,
    amount: int, point_amount: int, wallet_account_id: uuid.UUID,
) -> int:
    """The wallet's `on_paid` hook: a payment of a resident who shares becomes a `payment.result`
    event, in the payment's transaction. For everyone else it is one index probe that finds
    nothing (their payments reach the platform only in the daily aggregate). Gives no points."""
    if _platform.url is None:
        return 0
    sharer = await repo.sharer_by_account(session, wallet_account_id)
    if sharer is None:
        return 0
    shop = await wallet.merchant(session, region=sharer.region_code, merchant_id=merchant_id)
    await repo.record_shared_payment(
        session, payment_id=payment_id, region_id=region_id, region_code=sharer.region_code,
        pseudonym=sharer.pseudonym, created_at=clock.now(),
    )
    await outbox.enqueue(
        session, clock, region_id=region_id, event_type=events.PAYMENT_RESULT,
        # One stream per payment: results need no order among themselves (each carries its time),
        # and one that fails must not hold back everyone else's; its refunds come after it.
        stream=_stream(payment_id),
        destination=outbox.Destination(DESTINATION_KIND, sharer.region_code, _platform.url),
        payload=events.payment_result(
            payment_id=payment_id, resident=sharer.pseudonym, region=sharer.region_code, area=sharer.area,
            merchant_id=merchant_id, merchant_name=shop.name, sector=shop.sector, amount=amount,
            point_amount=point_amount, paid_at=clock.now(),
        ),
    )
    return 0


def _stream(payment_id: uuid.UUID) -> str:
    return f"payment-result:{payment_id}"


async def share_refund(
    session: AsyncSession, clock: Clock, *, payment_id: uuid.UUID, region_id: uuid.UUID, amount: int,
    refunded_total: int, points: object,  # the payer's point account (the wallet's type): not needed here
) -> int:
    """The wallet's `on_refunded` hook: a refund of a payment whose result was shared becomes a
    `payment.refunded` event after it, in the refund's transaction; any other refund costs one
    primary-key probe. Takes no points back."""
    if _platform.url is None:
        return 0
    shared = await repo.shared_payment(session, payment_id)
    if shared is None:
        return 0
    await outbox.enqueue(
        session, clock, region_id=region_id, event_type=events.PAYMENT_REFUNDED, stream=_stream(payment_id),
        destination=outbox.Destination(DESTINATION_KIND, shared.region_code, _platform.url),
        payload=events.payment_refunded(
            payment_id=payment_id, resident=shared.pseudonym, region=shared.region_code, amount=amount,
            refunded_total=refunded_total, refunded_at=clock.now(),
        ),
    )
    return 0


async def sign_or_withdraw(session: AsyncSession, message: outbox.Message) -> str | None:
    """The outbox's signer for the data platform, asked before each delivery attempt: a payment
    result (or refund) of a resident who no longer shares is withdrawn (None), never sent."""
    if message.event_type in events.RESIDENTS_EVENTS and not await repo.shares(
        session, message.region_id, message.payload["resident"]
    ):
        return None
    return _platform.secret


async def write_daily_aggregate(session: AsyncSession, clock: Clock, *, region: str, day: date) -> bool:
    """The `payments.daily` event of a Tokyo day that has ended, once per region and day (False:
    written before, or no data platform configured). Everyone's payments per merchant sector, as
    the KPI report counts them; a sector with fewer than DATA_PLATFORM_MIN_PAYMENTS that day is
    left out, so that no one payment can be read off it."""
    if _platform.url is None:
        return False
    if day >= tokyo_date(clock.now()):
        raise DayNotEnded(f"{day} has not ended in Tokyo: its aggregate would be incomplete.")
    region_id = await wallet.region_id(session, region=region)
    if not await repo.claim_aggregate_day(session, region_id=region_id, day=day, now=clock.now()):
        return False
    activity = await wallet.activity(session, region=region, since=day, until=day + timedelta(days=1))
    totals: dict[str, tuple[int, int]] = {}
    for sales in activity.sales:  # a sector may come twice: native and imported payments
        payments, amount = totals.get(sales.sector, (0, 0))
        totals[sales.sector] = (payments + int(sales.payments), amount + int(sales.amount))  # sums come as Decimal
    sectors = [(s, n, a) for s, (n, a) in sorted(totals.items()) if n >= _platform.min_payments]
    await outbox.enqueue(
        session, clock, region_id=region_id, event_type=events.PAYMENTS_DAILY, stream=f"payments-daily:{region}",
        destination=outbox.Destination(DESTINATION_KIND, region, _platform.url),
        payload=events.payments_daily(region=region, day=day, sectors=sectors, min_payments=_platform.min_payments),
    )
    return True


async def write_daily_aggregates(session: AsyncSession, clock: Clock, *, day: date | None = None) -> list[str]:
    """Every region's aggregate of `day` (default: yesterday in Tokyo), those not yet written;
    the codes of the regions written. Run daily (`chiikipay data-platform aggregate`); running
    it again, or for a day long past, writes only what is missing."""
    day = day or tokyo_date(clock.now()) - timedelta(days=1)
    return [code for code in await wallet.region_codes(session)
            if await write_daily_aggregate(session, clock, region=code, day=day)]
