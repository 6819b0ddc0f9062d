"""The wallet's business rules: regions, wallets, top-ups, cash-outs, merchants, API keys, and
`post_journal`, the one way value moves.

Functions take the request's session and flush; the request dependency commits once.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet import lots
from services.wallet import repository as repo
# The QR codes' text rules decide what a region's name may be (it is their city field); emvco is
# pure (no I/O, no imports from the wallet), so this reaches up to no service.
from services.wallet.payments import emvco
from services.wallet.errors import (
    AccountInactive,
    AmountAboveMaximum,
    AmountBelowMinimum,
    AmountNotMultipleOfStep,
    ApiKeyNotFound,
    BalanceCapExceeded,
    InsufficientBalance,
    InvalidRegionName,
    InvalidRegionSettings,
    InvalidRegistrationNumber,
    MerchantNameTaken,
    MerchantNotFound,
    NameNotPrintable,
    RegionCodeTaken,
    RegionNotFound,
    WalletNotFound,
    WebhookReplayed,
    WebhookSignatureInvalid,
    WebhookTimestampStale,
)
from services.wallet.models import (
    SYSTEM_ACCOUNTS,
    Account,
    AccountKind,
    ApiKey,
    Entry,
    ExpiryRun,
    ISSUANCE_JOURNALS,
    ISSUANCE_KINDS,
    Journal,
    JournalKind,
    Lot,
    LotSource,
    Merchant,
    Notice,
    Region,
    Resident,
    Status,
)
from shared import audit
from shared.auth import MERCHANT_ROLES, PARTNER_KEY_PREFIX, Principal, Role, hash_api_key, new_api_key_secret
from shared.clock import Clock
from shared.config import Settings
from shared.errors import Forbidden
from shared.ids import new_id
from shared.money import Unit
from shared.text import qr_text

# --- posting: the one way value moves ----------------------------------------------------------


@dataclass(frozen=True)
class Leg:
    account: Account
    amount: int  # what the account gains (+) or gives up (−)
    ceiling: int | None = None  # a balance the account may not exceed (the wallet cap)
    # A debit the caller has already set aside cover for (a premium set in stock is backed by the
    # campaign budget when it is stocked): appended without locking or summing the account.
    covered: bool = False


@dataclass(frozen=True)
class Posted:
    journal_id: uuid.UUID
    created_at: datetime
    balances_after: dict[uuid.UUID, int]  # for balance-tracking accounts


def lock_order(leg: Leg) -> tuple[bool, uuid.UUID]:
    return leg.account.kind != AccountKind.RESIDENT, leg.account.id


async def post_journal(
    session: AsyncSession,
    clock: Clock,
    *,
    region_id: uuid.UUID,
    kind: JournalKind,
    actor: str,
    legs: Sequence[Leg],
    reference: str | None = None,
    memo: str | None = None,
    even_if_inactive: bool = False,
) -> Posted:
    """Record one immutable journal. Checks and locks residents' wallet accounts first, then the
    others, each in account-id order — the order every posting takes (a payment holds its wallet
    when it draws a reward from a campaign budget) — so two journals never deadlock; refuses (and
    changes nothing) if any debit would overdraw, any credit would pass its ceiling, or any
    account is not active (unless `even_if_inactive`: expiry follows the rules a lot was given,
    whatever the wallet's status)."""
    _assert_balanced(region_id, kind, legs)
    balances_after: dict[uuid.UUID, int] = {}
    for leg in sorted(legs, key=lock_order):
        account = leg.account
        if account.status != Status.ACTIVE and not even_if_inactive:
            raise AccountInactive(f"The {account.kind} account is {account.status}.", account_id=str(account.id))
        if account.tracks_balance:
            balance = await repo.apply_to_tracked(
                session, account.id, leg.amount, leg.ceiling, even_if_inactive=even_if_inactive
            )
            if balance is None:
                raise await _refusal(session, leg)
            balances_after[account.id] = balance
        elif leg.amount < 0 and not account.may_go_negative and not leg.covered:
            available = await repo.lock_and_sum(session, account.id)
            if available + leg.amount < 0:
                raise InsufficientBalance(
                    f"The {account.kind} account holds {available}; {-leg.amount} is needed.",
                    balance=available,
                    required=-leg.amount,
                )
    journal_id, now = new_id(), clock.now()
    await repo.insert_journal(
        session,
        {"id": journal_id, "region_id": region_id, "kind": kind.value, "actor": actor,
         "reference": reference, "memo": memo, "created_at": now},
        [
            {"id": new_id(), "journal_id": journal_id, "account_id": leg.account.id, "region_id": region_id,
             "unit": leg.account.unit, "amount": leg.amount,
             "balance_after": balances_after.get(leg.account.id), "created_at": now}
            for leg in legs
        ],
    )
    return Posted(journal_id, now, balances_after)


def _assert_balanced(region_id: uuid.UUID, kind: JournalKind, legs: Sequence[Leg]) -> None:
    """Programming errors, not user errors: fail loudly (invariants 1 and 4)."""
    assert len(legs) >= 2, "a journal moves value between two or more accounts"
    assert len({leg.account.id for leg in legs}) == len(legs), "one leg per account"
    totals: dict[str, int] = defaultdict(int)
    for leg in legs:
        assert isinstance(leg.amount, int) and leg.amount != 0, f"bad leg amount {leg.amount!r}"
        assert leg.account.region_id == region_id, "a journal stays inside one region"
        totals[leg.account.unit] += leg.amount
        if AccountKind(leg.account.kind) in ISSUANCE_KINDS:
            assert kind in ISSUANCE_JOURNALS, f"{kind} may not touch {leg.account.kind}"
    assert all(total == 0 for total in totals.values()), f"journal does not balance: {dict(totals)}"


async def _refusal(session: AsyncSession, leg: Leg) -> Exception:
    current = await repo.account(session, leg.account.id)
    assert current is not None
    await session.refresh(current)
    if current.status != Status.ACTIVE:
        return AccountInactive(f"The account is {current.status}.", account_id=str(current.id))
    if leg.amount < 0:
        return InsufficientBalance(
            f"The balance is {current.balance}; {-leg.amount} is needed.",
            balance=current.balance,
            required=-leg.amount,
        )
    return BalanceCapExceeded(
        f"The balance is {current.balance}; adding {leg.amount} would pass the cap of {leg.ceiling}.",
        balance=current.balance,
        balance_cap=leg.ceiling,
    )


# --- regions ----------------------------------------------------------------------------------


async def create_region(
    session: AsyncSession, clock: Clock, settings: Settings, *, code: str, name: str, name_ja: str,
    **chosen: int | None,
) -> Region:
    """A region with its system accounts, its fee plans and merchant classes, and its settings:
    those `chosen` (RegionSettings' fields), the platform's defaults for the rest.

    The names are checked by the QR codes' own text rules and stored as the codes carry them, so
    that no code of the region can later fail to build or show a cut name."""
    try:
        name = emvco.uncut_text(name, "name", limit=emvco.MAX_CITY, ascii_only=True)
        name_ja = emvco.uncut_text(name_ja, "name_ja", limit=emvco.MAX_CITY, ascii_only=False)
    except ValueError as exc:
        raise InvalidRegionName(f"{exc}.") from None
    defaults: dict[str, int | None] = {
        "balance_cap": settings.default_balance_cap,
        "topup_min": settings.default_topup_min,
        "topup_max": settings.default_topup_max,
        "topup_step": settings.default_topup_step,
        "coin_expiry_months": None,  # top-ups never expire unless the region decides they do
        "refund_window_days": settings.default_refund_window_days,
        "payment_request_minutes": settings.default_payment_request_minutes,
    }
    unknown = chosen.keys() - defaults.keys()
    assert not unknown, f"not region settings: {sorted(unknown)}"
    region_settings = {**defaults, **chosen}
    check_region_settings(region_settings)
    now = clock.now()
    region = await repo.insert_region(
        session, id=new_id(), code=code, name=name, name_ja=name_ja, qr_guid=f"jp.chiikipay.{code}",
        created_at=now, **region_settings,
    )
    if region is None:  # also when a concurrent request took the code first (it waited on its row)
        raise RegionCodeTaken(f"A region with the code {code!r} is already hosted here.")
    from services.wallet.payments.service import create_default_fee_plans

    from services.wallet.campaigns.service import seed_merchant_classes

    await create_default_fee_plans(session, region, actor="region.create")
    await seed_merchant_classes(session, region, now)
    for kind, unit in SYSTEM_ACCOUNTS:
        await repo.insert_account(
            session,
            id=new_id(),
            region_id=region.id,
            kind=kind.value,
            unit=unit.value,
            status=Status.ACTIVE.value,
            tracks_balance=False,
            may_go_negative=kind in ISSUANCE_KINDS,
            created_at=now,
        )
    return region


async def onboard_region(
    session: AsyncSession, clock: Clock, principal: Principal, settings: Settings, *, code: str, name: str,
    name_ja: str, **chosen: int | None,
) -> Region:
    """A new regional currency on the platform (platform operator; audited in the new region's
    own trail, where its auditors will look)."""
    region = await create_region(session, clock, settings, code=code, name=name, name_ja=name_ja, **chosen)
    await audit.record(
        session, clock, principal, region_id=region.id, action="region.create", target_type="region",
        target_id=region.code, after={"name": region.name, "name_ja": region.name_ja, **_region_settings(region)},
    )
    return region


async def list_regions(session: AsyncSession, *, after_id: uuid.UUID | None, limit: int) -> list[Region]:
    return await repo.regions_page(session, after_id=after_id, limit=limit)


# The app residents pay with. Until a region carries its own currency and app names (that needs
# columns on `regions`), both are derived from the region's names and this one app name.
APP_NAME = "chiikipay"


@dataclass(frozen=True)
class CurrencyNames:
    """How a region's money and app are called where residents see them (the printed stand)."""

    name_ja: str
    name: str
    app: str


def currency_names(region: Region) -> CurrencyNames:
    return CurrencyNames(
        name_ja=f"{region.name_ja}デジタル地域通貨", name=f"{region.name} digital regional currency", app=APP_NAME
    )


@dataclass(frozen=True)
class RegionIdentity:
    """What never changes about a region; cached per process so that a payment needs no query for it."""

    id: uuid.UUID
    code: str
    qr_guid: str
    name: str
    name_ja: str


# Regions are never deleted or renamed, so a cached identity cannot go stale. (Tests that empty
# the tables and recreate a region under the same code clear it.)
region_identities: dict[str, RegionIdentity] = {}


async def region_identity(session: AsyncSession, code: str) -> RegionIdentity:
    identity = region_identities.get(code)
    if identity is None:
        region = await repo.region_by_code(session, code)
        if region is None:
            raise RegionNotFound(f"Region {code!r} is not hosted here.")
        identity = RegionIdentity(region.id, region.code, region.qr_guid, region.name, region.name_ja)
        region_identities[code] = identity
    return identity


async def region_of(session: AsyncSession, principal: Principal) -> Region:
    region = await repo.region_by_code(session, principal.region_code)
    if region is None:
        raise RegionNotFound(f"Region {principal.region_code!r} is not hosted here.")
    return region


async def update_region_settings(
    session: AsyncSession, clock: Clock, principal: Principal, changes: dict[str, int | None]
) -> Region:
    region = await region_of(session, principal)
    if not changes:
        return region
    before = _region_settings(region)
    check_region_settings({**before, **changes})
    updated = await repo.update_region(session, region.id, **changes)
    await audit.record(
        session, clock, principal, region_id=region.id, action="region.settings.update",
        target_type="region", target_id=region.code, before=before, after=_region_settings(updated),
    )
    return updated


def check_region_settings(after: dict[str, int | None]) -> None:
    """The rules between a region's settings (each field's own bounds are in RegionSettings), for
    a new region and for every change of one alike."""
    if not after["topup_min"] <= after["topup_max"]:
        raise InvalidRegionSettings("topup_min must not exceed topup_max.")
    if after["topup_min"] % after["topup_step"] or after["topup_max"] % after["topup_step"]:
        raise InvalidRegionSettings("topup_min and topup_max must be multiples of topup_step.")
    if after["topup_max"] > after["balance_cap"]:
        raise InvalidRegionSettings("topup_max must not exceed balance_cap.")


def _region_settings(region: Region) -> dict[str, int | None]:
    return {
        "balance_cap": region.balance_cap,
        "topup_min": region.topup_min,
        "topup_max": region.topup_max,
        "topup_step": region.topup_step,
        "coin_expiry_months": region.coin_expiry_months,
        "refund_window_days": region.refund_window_days,
        "payment_request_minutes": region.payment_request_minutes,
    }


# --- wallets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wallet:
    """A resident's wallet: its coin (yen) account, which names the wallet, and its point account."""

    resident: Resident
    account: Account
    region: Region
    points: Account


async def my_wallet(session: AsyncSession, clock: Clock, principal: Principal) -> Wallet:
    """A resident's wallet, created on their first authenticated call."""
    assert principal.role is Role.RESIDENT
    region = await region_of(session, principal)
    found = await repo.resident_wallet(session, region.id, principal.subject, Unit.YEN.value)
    if found is None:
        now = clock.now()
        resident_id = await repo.ensure_resident(session, region.id, principal.subject, now)
        for unit in Unit:
            await repo.ensure_resident_account(
                session, id=new_id(), region_id=region.id, kind=AccountKind.RESIDENT.value, unit=unit.value,
                resident_id=resident_id, status=Status.ACTIVE.value, tracks_balance=True, may_go_negative=False,
                created_at=now,
            )
        found = await repo.resident_wallet(session, region.id, principal.subject, Unit.YEN.value)
        assert found is not None
    return Wallet(found[0], found[1], region, await repo.resident_account(session, found[0].id, Unit.POINT.value))


EXPIRING_SOON_DAYS = 30


@dataclass(frozen=True)
class LotView:
    lot: Lot
    campaign_name: str | None
    usable_now: bool


@dataclass(frozen=True)
class BalanceView:
    wallet: Wallet
    lots: list[LotView]  # spending order
    usable: dict[str, int]  # per unit: what can pay now somewhere (not yet usable, expired excluded)
    expiring_soon: dict[str, int]  # per unit: what expires within EXPIRING_SOON_DAYS
    expiring_lots: list[LotView]


async def balance(session: AsyncSession, clock: Clock, wallet: Wallet) -> BalanceView:
    """The wallet's balance lot by lot: what it is made of, where it may be spent, until when."""
    now = clock.now()
    soon = now + timedelta(days=EXPIRING_SOON_DAYS)
    names = await repo.campaign_names(session, wallet.region.id)
    views = []
    for lot in await repo.live_lots(session, [wallet.account.id, wallet.points.id]):
        expired = lot.expires_at is not None and lot.expires_at <= now
        started = lot.usable_from is None or lot.usable_from <= now
        views.append(LotView(lot, names.get(lot.campaign_id) if lot.campaign_id else None, started and not expired))
    usable = {unit.value: 0 for unit in Unit}
    expiring = {unit.value: 0 for unit in Unit}
    expiring_lots = []
    for view in views:
        if view.usable_now:
            usable[view.lot.unit] += view.lot.remaining
            if view.lot.expires_at is not None and view.lot.expires_at <= soon:
                expiring[view.lot.unit] += view.lot.remaining
                expiring_lots.append(view)
    return BalanceView(wallet, views, usable, expiring, expiring_lots)


async def visible_wallet(session: AsyncSession, principal: Principal, account_id: uuid.UUID) -> Wallet:
    """A wallet the caller may see: a resident their own, operators and auditors their region's.
    Anything else is reported as not found, so that ids of others' wallets reveal nothing."""
    region = await region_of(session, principal)
    found = await repo.wallet(session, account_id)
    if found is None or found[1].region_id != region.id:
        raise WalletNotFound(f"No wallet {account_id} in region {region.code}.")
    resident, account = found
    if principal.role is Role.RESIDENT and resident.subject != principal.subject:
        raise WalletNotFound(f"No wallet {account_id} in region {region.code}.")
    if principal.role not in (Role.RESIDENT, Role.OPERATOR, Role.AUDITOR):
        raise Forbidden("Only the resident, an operator or an auditor may see a wallet.")
    return Wallet(resident, account, region, await repo.resident_account(session, resident.id, Unit.POINT.value))


async def find_wallets(
    session: AsyncSession, principal: Principal, *, subject: str | None, after_id: uuid.UUID | None, limit: int
) -> list[Wallet]:
    region = await region_of(session, principal)
    rows = await repo.resident_wallets(session, region.id, subject=subject, after_id=after_id, limit=limit)
    points = await repo.resident_accounts(session, [resident.id for resident, _ in rows], Unit.POINT.value)
    return [Wallet(resident, account, region, points[resident.id]) for resident, account in rows]


async def history(
    session: AsyncSession, accounts: Sequence[Account], *, after_id: uuid.UUID | None, limit: int, **filters: Any
) -> list[tuple[Entry, Journal]]:
    """The movements of a holder's accounts (coin and points), newest first, filtered by journal
    kind and period."""
    return await repo.history(session, [a.id for a in accounts], after_id=after_id, limit=limit, **filters)


async def merchant_history(
    session: AsyncSession, principal: Principal, merchant_id: uuid.UUID, *, after_id: uuid.UUID | None, limit: int,
    **filters: Any,
) -> list[tuple[Entry, Journal]]:
    await visible_merchant(session, principal, merchant_id)
    accounts = await repo.merchant_accounts(session, merchant_id)
    return await history(session, accounts, after_id=after_id, limit=limit, **filters)


async def update_wallet(
    session: AsyncSession, clock: Clock, principal: Principal, account_id: uuid.UUID, changes: dict[str, Any]
) -> Wallet:
    """The operator's changes: `status` (of both the yen and the point account), `household`."""
    wallet = await visible_wallet(session, principal, account_id)
    resident, account, points = wallet.resident, wallet.account, wallet.points
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    if changes.get("status") is not None:
        before["status"] = account.status
        account = await repo.update_account_status(session, account_id, changes["status"].value)
        points = await repo.update_account_status(session, points.id, changes["status"].value)
        after["status"] = account.status
    if "household" in changes:
        before["household"] = resident.household
        resident = await repo.update_resident_household(session, resident.id, changes["household"])
        after["household"] = resident.household
    if after:
        await audit.record(
            session, clock, principal, region_id=wallet.region.id, action="wallet.update",
            target_type="account", target_id=account_id, before=before, after=after,
        )
    return Wallet(resident, account, wallet.region, points)


# --- top-ups and cash-outs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Movement:
    journal_id: uuid.UUID
    wallet_id: uuid.UUID
    amount: int
    balance_after: int
    created_at: datetime


def check_topup_amount(region: Region, amount: int) -> None:
    if amount < region.topup_min:
        raise AmountBelowMinimum(f"The smallest top-up is {region.topup_min} yen.", minimum=region.topup_min)
    if amount > region.topup_max:
        raise AmountAboveMaximum(f"The largest top-up is {region.topup_max} yen.", maximum=region.topup_max)
    if amount % region.topup_step:
        raise AmountNotMultipleOfStep(f"Top-ups go in steps of {region.topup_step} yen.", step=region.topup_step)


async def _topup(
    session: AsyncSession, clock: Clock, wallet: Wallet, source: AccountKind, amount: int, *,
    actor: str, reference: str | None, memo: str | None,
) -> Movement:
    check_topup_amount(wallet.region, amount)
    issuer = await repo.system_account(session, wallet.region.id, source, wallet.account.unit)
    posted = await post_journal(
        session, clock, region_id=wallet.region.id, kind=JournalKind.TOPUP, actor=actor,
        legs=[Leg(wallet.account, amount, ceiling=wallet.region.balance_cap), Leg(issuer, -amount)],
        reference=reference, memo=memo,
    )
    months = wallet.region.coin_expiry_months
    expires_at = lots.end_of_months_after(posted.created_at, months) if months else None
    await lots.issue(
        session, account=wallet.account, amount=amount, source=LotSource.TOPUP, journal_id=posted.journal_id,
        rule=lots.LotRule(expires_at=expires_at), now=posted.created_at,
    )
    return Movement(posted.journal_id, wallet.account.id, amount, posted.balances_after[wallet.account.id], posted.created_at)


async def counter_topup(
    session: AsyncSession, clock: Clock, principal: Principal, account_id: uuid.UUID, amount: int, memo: str | None
) -> Movement:
    """チャージ at a city counter: cash in hand, recorded by an operator."""
    wallet = await visible_wallet(session, principal, account_id)
    movement = await _topup(
        session, clock, wallet, AccountKind.COUNTER_CASH, amount,
        actor=principal.subject, reference=None, memo=memo,
    )
    await audit.record(
        session, clock, principal, region_id=wallet.region.id, action="wallet.topup.counter",
        target_type="account", target_id=account_id,
        after={"amount": amount, "journal_id": str(movement.journal_id), "balance_after": movement.balance_after},
    )
    return movement


def verify_bank_signature(settings: Settings, clock: Clock, timestamp: str, signature: str, body: bytes) -> None:
    """HMAC-SHA256 over "<timestamp>.<raw body>", hex, sent as `sha256=<hex>`."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookTimestampStale("The timestamp header must be Unix seconds.") from None
    if abs(clock.now().timestamp() - sent_at) > settings.bank_webhook_tolerance_seconds:
        raise WebhookTimestampStale(
            f"The timestamp is more than {settings.bank_webhook_tolerance_seconds} s from now."
        )
    expected = hmac.new(
        settings.bank_webhook_secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest("sha256=" + expected, signature):
        raise WebhookSignatureInvalid()


async def bank_topup(
    session: AsyncSession, clock: Clock, *, event_id: str, account_id: uuid.UUID, amount: int
) -> Movement:
    """チャージ from a linked bank account, announced by the bank's signed webhook."""
    found = await repo.wallet(session, account_id)
    if found is None:
        raise WalletNotFound(f"No wallet {account_id}.")
    resident, account = found
    region = await repo.region_by_id(session, account.region_id)
    movement = await _topup(
        session, clock, Wallet(resident, account, region, await repo.resident_account(session, resident.id, Unit.POINT.value)),
        AccountKind.BANK_CLEARING, amount,
        actor="bank", reference=event_id, memo=None,
    )
    # A replayed event id conflicts here and the whole transaction, top-up included, rolls back.
    if not await repo.insert_bank_event(
        session, id=new_id(), region_id=region.id, event_id=event_id, journal_id=movement.journal_id,
        received_at=clock.now(),
    ):
        raise WebhookReplayed(f"Bank event {event_id!r} was already processed.", event_id=event_id)
    return movement


async def cashout(
    session: AsyncSession, clock: Clock, principal: Principal, account_id: uuid.UUID, amount: int, reason: str
) -> Movement:
    """払戻し: prepaid value paid back to the resident's bank account, only in the cases the law
    allows (moving away, service closure); recorded by an operator."""
    wallet = await visible_wallet(session, principal, account_id)
    clearing = await repo.system_account(session, wallet.region.id, AccountKind.BANK_CLEARING, wallet.account.unit)
    posted = await post_journal(
        session, clock, region_id=wallet.region.id, kind=JournalKind.CASHOUT, actor=principal.subject,
        legs=[Leg(wallet.account, -amount), Leg(clearing, amount)], reference=reason,
    )
    # Behind the wallet's lock, taken by the posting: any coin lot that is not expired.
    if await lots.take_coin(session, wallet.account, amount, now=posted.created_at, unrestricted_only=False) is None:
        usable = await lots.usable_total(session, wallet.account, now=posted.created_at, unrestricted_only=False)
        raise InsufficientBalance(
            f"Only {usable} yen of the balance has not expired; {amount} was asked.", balance=usable, required=amount
        )
    movement = Movement(posted.journal_id, account_id, amount, posted.balances_after[account_id], posted.created_at)
    await audit.record(
        session, clock, principal, region_id=wallet.region.id, action="wallet.cashout",
        target_type="account", target_id=account_id,
        after={"amount": amount, "reason": reason, "journal_id": str(movement.journal_id),
               "balance_after": movement.balance_after},
    )
    return movement


# --- merchants --------------------------------------------------------------------------------


def check_printable(fields: dict[str, Any], *names: str) -> None:
    """A Japanese name a merchant's QR shows (EMVCo 64/01) must be text a code can carry: checked
    when it is stored, by the rule the code builder uses, so that no code of the shop fails later."""
    for name in names:
        if fields.get(name) is not None:
            try:
                qr_text(fields[name], name, ascii_only=False)
            except ValueError as exc:
                raise NameNotPrintable(f"{exc}.", field=name) from None


def corporate_number_check_digit(base: str) -> int:
    """The check digit (検査用数字) of a 13-digit 法人番号, from its other 12 digits (基礎番号), by
    the formula of 法人番号の指定等に関する省令 (平成26年財務省令第70号) 第2条:
    9 − ((Σ Pn × Qn) mod 9) for n = 1 … 12, Pn the nth digit counting from the lowest, Qn 1 for
    odd n and 2 for even n. It stands first, before the 12 digits, and is never 0."""
    assert len(base) == 12 and base.isdigit(), base
    return 9 - sum(int(digit) * (1 if n % 2 else 2) for n, digit in enumerate(reversed(base), start=1)) % 9


def check_registration_number(number: str | None) -> None:
    """A qualified-invoice registration number ("T" and 13 digits, as the schema checks) is a
    corporation's 法人番号, or for a sole proprietor a number the tax office issues in the same
    13-digit space (never anyone's 法人番号); its check digit is verified by the 法人番号 rule for
    both, so that a mistyped number never reaches a receipt."""
    if number is not None and corporate_number_check_digit(number[2:]) != int(number[1]):
        raise InvalidRegistrationNumber(
            f"{number} is not a registration number: its check digit (the first of the 13 digits) does not "
            "match the other 12, so a digit is mistyped.",
        )


async def onboard_merchant(
    session: AsyncSession, clock: Clock, principal: Principal, details: dict[str, Any]
) -> Merchant:
    check_printable(details, "name_ja")
    check_registration_number(details.get("invoice_registration_number"))
    region = await region_of(session, principal)
    if await repo.merchant_by_name(session, region.id, details["name"]) is not None:
        raise MerchantNameTaken(f"{details['name']!r} is already a merchant in {region.code}.")
    from services.wallet.campaigns.service import check_classes

    await check_classes(session, region.id, [details["merchant_class"]])
    now = clock.now()
    merchant = await repo.insert_merchant(
        session, id=new_id(), region_id=region.id, status=Status.ACTIVE.value, created_at=now, updated_at=now,
        **details,
    )
    for unit in Unit:  # coin from payments in yen, points from payments in points
        await repo.insert_account(
            session, id=new_id(), region_id=region.id, kind=AccountKind.MERCHANT.value, unit=unit.value,
            merchant_id=merchant.id, status=Status.ACTIVE.value, tracks_balance=False, may_go_negative=False,
            created_at=now,
        )
    from services.wallet.payments.service import create_store

    # Every merchant starts with one store (its first register); more are added per place of sale.
    await create_store(session, clock, merchant, name=merchant.name, name_ja=merchant.name_ja, terminal_label=None)
    await audit.record(
        session, clock, principal, region_id=region.id, action="merchant.onboard",
        target_type="merchant", target_id=merchant.id, after=_merchant_record(merchant),
    )
    return merchant


async def visible_merchant(session: AsyncSession, principal: Principal, merchant_id: uuid.UUID) -> Merchant:
    """Operators and auditors see their region's merchants; merchant roles only their own."""
    region = await region_of(session, principal)
    merchant = await repo.merchant(session, merchant_id)
    if merchant is None or merchant.region_id != region.id:
        raise MerchantNotFound(f"No merchant {merchant_id} in region {region.code}.")
    if principal.role in MERCHANT_ROLES and principal.merchant_id != merchant_id:
        raise MerchantNotFound(f"No merchant {merchant_id} in region {region.code}.")
    return merchant


async def list_merchants(
    session: AsyncSession, principal: Principal, *, after_id: uuid.UUID | None, limit: int
) -> list[Merchant]:
    region = await region_of(session, principal)
    return await repo.merchants(session, region.id, after_id=after_id, limit=limit)


async def update_merchant(
    session: AsyncSession, clock: Clock, principal: Principal, merchant_id: uuid.UUID, changes: dict[str, Any]
) -> Merchant:
    check_registration_number(changes.get("invoice_registration_number"))
    check_printable(changes, "name_ja")
    merchant = await visible_merchant(session, principal, merchant_id)
    before = _merchant_record(merchant)
    if "name" in changes and changes["name"] != merchant.name:
        if await repo.merchant_by_name(session, merchant.region_id, changes["name"]) is not None:
            raise MerchantNameTaken(f"{changes['name']!r} is already a merchant in this region.")
    if "merchant_class" in changes:
        from services.wallet.campaigns.service import check_classes

        await check_classes(session, merchant.region_id, [changes["merchant_class"]])
    if merchant.status == Status.CLOSED and changes.get("status", Status.CLOSED) != Status.CLOSED:
        raise AccountInactive("A closed merchant stays closed; onboard it again instead.")
    updated = await repo.update_merchant(session, merchant_id, **changes, updated_at=clock.now())
    if "status" in changes:
        await repo.set_merchant_accounts_status(session, merchant_id, changes["status"])
    await audit.record(
        session, clock, principal, region_id=merchant.region_id, action="merchant.update",
        target_type="merchant", target_id=merchant_id, before=before, after=_merchant_record(updated),
    )
    return updated


async def merchant_balance(
    session: AsyncSession, principal: Principal, merchant_id: uuid.UUID
) -> list[tuple[Account, int]]:
    """The merchant's yen and point accounts, summed from entries at the moment of the call:
    exact, never lagging."""
    await visible_merchant(session, principal, merchant_id)
    return [(a, await repo.entries_sum(session, a.id)) for a in await repo.merchant_accounts(session, merchant_id)]


def _merchant_record(merchant: Merchant) -> dict[str, Any]:
    fields = ("name", "name_ja", "sector", "mcc", "address", "bank_code", "branch_code", "account_type",
              "account_number", "account_holder_kana", "merchant_class", "status", "invoice_registration_number")
    return {field: getattr(merchant, field) for field in fields}


# --- API keys for merchant POS terminals -------------------------------------------------------


async def create_api_key(
    session: AsyncSession, clock: Clock, principal: Principal, merchant_id: uuid.UUID, name: str
) -> tuple[ApiKey, str]:
    merchant = await visible_merchant(session, principal, merchant_id)
    if merchant.status != Status.ACTIVE:
        raise AccountInactive(f"The merchant is {merchant.status}.")
    secret = new_api_key_secret()
    key = await repo.insert_api_key(
        session, id=new_id(), region_id=merchant.region_id, merchant_id=merchant_id, name=name,
        secret_hash=hash_api_key(secret), created_by=principal.subject, created_at=clock.now(),
    )
    await audit.record(
        session, clock, principal, region_id=merchant.region_id, action="api_key.create",
        target_type="api_key", target_id=key.id, after={"merchant_id": str(merchant_id), "name": name},
    )
    return key, secret


async def list_api_keys(session: AsyncSession, principal: Principal, merchant_id: uuid.UUID) -> list[ApiKey]:
    await visible_merchant(session, principal, merchant_id)
    return await repo.api_keys(session, merchant_id)


async def revoke_api_key(
    session: AsyncSession, clock: Clock, principal: Principal, merchant_id: uuid.UUID, key_id: uuid.UUID
) -> ApiKey:
    merchant = await visible_merchant(session, principal, merchant_id)
    key = await repo.api_key(session, key_id)
    if key is None or key.merchant_id != merchant_id:
        raise ApiKeyNotFound(f"No API key {key_id} for this merchant.")
    revoked = await repo.revoke_api_key(session, key_id, clock.now())
    await audit.record(
        session, clock, principal, region_id=merchant.region_id, action="api_key.revoke",
        target_type="api_key", target_id=key_id,
        before={"revoked_at": key.revoked_at.isoformat() if key.revoked_at else None},
        after={"revoked_at": revoked.revoked_at.isoformat() if revoked.revoked_at else None},
    )
    return revoked


async def resolve_api_key(session: AsyncSession, secret: str) -> Principal | None:
    """The terminal behind a presented key (shared.auth calls this); None if unknown or revoked.
    A partner system's key (its own prefix) is resolved by the grants module."""
    if secret.startswith(PARTNER_KEY_PREFIX):
        from services.wallet.grants.service import resolve_partner_key

        return await resolve_partner_key(session, secret)
    found = await repo.active_api_key(session, hash_api_key(secret))
    if found is None:
        return None
    key, region_code = found
    return Principal(
        subject=f"api_key:{key.id}", role=Role.TERMINAL, region_code=region_code,
        merchant_id=key.merchant_id, api_key_id=key.id,
    )


# --- system accounts and verification ---------------------------------------------------------


async def system_balances(session: AsyncSession, principal: Principal) -> list[tuple[Account, int]]:
    region = await region_of(session, principal)
    return [(a, await repo.entries_sum(session, a.id)) for a in await repo.system_accounts(session, region.id)]


async def verify_ledger(session: AsyncSession, region_id: uuid.UUID | None = None) -> list[repo.Violation]:
    return await repo.find_violations(session, region_id)



# --- expiry and notices -----------------------------------------------------------------------


async def run_expiry(session: AsyncSession, clock: Clock, principal: Principal, as_of: date) -> ExpiryRun:
    """The operator runs (or resumes) expiry for a date, all in this request's transaction."""
    from services.wallet import expiry  # expiry posts through this module

    region = await region_of(session, principal)
    run = await expiry.run_in_session(session, clock, region, as_of, principal.subject)
    await audit.record(
        session, clock, principal, region_id=region.id, action="expiry.run", target_type="expiry_run",
        target_id=as_of.isoformat(),
        after={"lots_expired": run.lots_expired, "yen_expired": run.yen_expired,
               "points_expired": run.points_expired, "notices": run.notices},
    )
    return run


async def expiry_runs(session: AsyncSession, principal: Principal, *, before: date | None, limit: int) -> list[ExpiryRun]:
    region = await region_of(session, principal)
    return await repo.expiry_runs(session, region.id, before=before, limit=limit)


async def notices(session: AsyncSession, wallet: Wallet, *, after_id: uuid.UUID | None, limit: int) -> list[Notice]:
    return await repo.notices(session, wallet.resident.id, after_id=after_id, limit=limit)
