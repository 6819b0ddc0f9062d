"""The directory's rules: regions and their settings, residents' wallets, merchants and their
classes, API keys for merchant POS terminals.

Functions take the request's session and flush; the request dependency commits once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.directory import repository as repo
from services.wallet.directory.errors import (
    ApiKeyNotFound,
    InvalidRegionName,
    InvalidRegionSettings,
    InvalidRegistrationNumber,
    MerchantClassTaken,
    MerchantNameTaken,
    NameNotPrintable,
    RegionCodeTaken,
    RegionNotFound,
    UnknownMerchantClass,
)
from services.wallet.directory.models import ApiKey, Merchant, MerchantClass, Region, Resident
from services.wallet.ledger import service as ledger
from services.wallet.ledger.errors import AccountInactive
from services.wallet.ledger.models import ISSUANCE_KINDS, SYSTEM_ACCOUNTS, Account, AccountKind, Status
from shared import audit, emvco
from shared.audit import Actor
from shared.auth import Principal, Role, hash_api_key, new_api_key_secret
from shared.clock import Clock
from shared.config import Settings
from shared.ids import new_id
from shared.money import Unit
from shared.text import qr_text

# --- regions ----------------------------------------------------------------------------------


async def create_region(
    session: AsyncSession, clock: Clock, settings: Settings, *, code: str, name: str, name_ja: str,
    **chosen: int | None,
) -> Region:
    """A region with its system accounts and merchant classes, and its settings:
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
    await seed_merchant_classes(session, region, now)
    for kind, unit in SYSTEM_ACCOUNTS:
        await ledger.insert_account(
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


async def hosted_region(session: AsyncSession, code: str) -> Region:
    region = await repo.region_by_code(session, code)
    if region is None:
        raise RegionNotFound(f"Region {code!r} is not hosted here.")
    return region


async def update_region_settings(
    session: AsyncSession, clock: Clock, actor: Actor, region: Region, changes: dict[str, int | None]
) -> Region:
    if not changes:
        return region
    before = region_settings(region)
    check_region_settings({**before, **changes})
    updated = await repo.update_region(session, region.id, **changes)
    await audit.record(
        session, clock, actor, region_id=region.id, action="region.settings.update",
        target_type="region", target_id=region.code, before=before, after=region_settings(updated),
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


def region_settings(region: Region) -> dict[str, int | None]:
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


async def wallet_for(session: AsyncSession, clock: Clock, region: Region, subject: str) -> Wallet:
    """The wallet of the resident `subject` names, created on their first call."""
    found = await repo.resident_wallet(session, region.id, subject, Unit.YEN.value)
    if found is None:
        now = clock.now()
        resident_id = await repo.ensure_resident(session, region.id, subject, now)
        for unit in Unit:
            await repo.ensure_resident_account(
                session, id=new_id(), region_id=region.id, kind=AccountKind.RESIDENT.value, unit=unit.value,
                resident_id=resident_id, status=Status.ACTIVE.value, tracks_balance=True, may_go_negative=False,
                created_at=now,
            )
        found = await repo.resident_wallet(session, region.id, subject, Unit.YEN.value)
        assert found is not None
    return await wallet_of(session, region, *found)


async def wallet_of(session: AsyncSession, region: Region, resident: Resident, account: Account) -> Wallet:
    """The wallet whose coin account is `account`, with its point account."""
    return Wallet(resident, account, region, await repo.resident_account(session, resident.id, Unit.POINT.value))


async def find_wallets(
    session: AsyncSession, region: Region, *, subject: str | None, after_id: uuid.UUID | None, limit: int
) -> list[Wallet]:
    rows = await repo.resident_wallets(session, region.id, subject=subject, after_id=after_id, limit=limit)
    points = await repo.resident_accounts(session, [resident.id for resident, _ in rows], Unit.POINT.value)
    return [Wallet(resident, account, region, points[resident.id]) for resident, account in rows]


async def update_wallet(session: AsyncSession, clock: Clock, actor: Actor, wallet: Wallet, changes: dict[str, Any]) -> Wallet:
    """The operator's changes: `status` (of both the yen and the point account), `household`."""
    account_id = wallet.account.id
    resident, account, points = wallet.resident, wallet.account, wallet.points
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    if changes.get("status") is not None:
        before["status"] = account.status
        account = await ledger.update_account_status(session, account_id, changes["status"].value)
        points = await ledger.update_account_status(session, points.id, changes["status"].value)
        after["status"] = account.status
    if "household" in changes:
        before["household"] = resident.household
        resident = await repo.update_resident_household(session, resident.id, changes["household"])
        after["household"] = resident.household
    if after:
        await audit.record(
            session, clock, actor, region_id=wallet.region.id, action="wallet.update",
            target_type="account", target_id=account_id, before=before, after=after,
        )
    return Wallet(resident, account, wallet.region, points)


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
    session: AsyncSession, clock: Clock, actor: Actor, region: Region, details: dict[str, Any]
) -> Merchant:
    check_printable(details, "name_ja")
    check_registration_number(details.get("invoice_registration_number"))
    if await repo.merchant_by_name(session, region.id, details["name"]) is not None:
        raise MerchantNameTaken(f"{details['name']!r} is already a merchant in {region.code}.")
    await check_classes(session, region.id, [details["merchant_class"]])
    now = clock.now()
    merchant = await repo.insert_merchant(
        session, id=new_id(), region_id=region.id, status=Status.ACTIVE.value, created_at=now, updated_at=now,
        **details,
    )
    for unit in Unit:  # coin from payments in yen, points from payments in points
        await ledger.insert_account(
            session, id=new_id(), region_id=region.id, kind=AccountKind.MERCHANT.value, unit=unit.value,
            merchant_id=merchant.id, status=Status.ACTIVE.value, tracks_balance=False, may_go_negative=False,
            created_at=now,
        )
    await audit.record(
        session, clock, actor, region_id=region.id, action="merchant.onboard",
        target_type="merchant", target_id=merchant.id, after=_merchant_record(merchant),
    )
    return merchant


async def list_merchants(
    session: AsyncSession, region: Region, *, after_id: uuid.UUID | None, limit: int
) -> list[Merchant]:
    return await repo.merchants(session, region.id, after_id=after_id, limit=limit)


async def update_merchant(
    session: AsyncSession, clock: Clock, actor: Actor, merchant: Merchant, changes: dict[str, Any]
) -> Merchant:
    check_registration_number(changes.get("invoice_registration_number"))
    check_printable(changes, "name_ja")
    merchant_id = merchant.id
    before = _merchant_record(merchant)
    if "name" in changes and changes["name"] != merchant.name:
        if await repo.merchant_by_name(session, merchant.region_id, changes["name"]) is not None:
            raise MerchantNameTaken(f"{changes['name']!r} is already a merchant in this region.")
    if "merchant_class" in changes:
        await check_classes(session, merchant.region_id, [changes["merchant_class"]])
    if merchant.status == Status.CLOSED and changes.get("status", Status.CLOSED) != Status.CLOSED:
        raise AccountInactive("A closed merchant stays closed; onboard it again instead.")
    updated = await repo.update_merchant(session, merchant_id, **changes, updated_at=clock.now())
    if "status" in changes:
        await repo.set_merchant_accounts_status(session, merchant_id, changes["status"])
    await audit.record(
        session, clock, actor, region_id=merchant.region_id, action="merchant.update",
        target_type="merchant", target_id=merchant_id, before=before, after=_merchant_record(updated),
    )
    return updated


async def merchant_balance(session: AsyncSession, merchant: Merchant) -> list[tuple[Account, int]]:
    """The merchant's yen and point accounts, summed from entries at the moment of the call:
    exact, never lagging."""
    return [(a, await ledger.entries_sum(session, a.id)) for a in await repo.merchant_accounts(session, merchant.id)]


def _merchant_record(merchant: Merchant) -> dict[str, Any]:
    fields = ("name", "name_ja", "sector", "mcc", "address", "bank_code", "branch_code", "account_type",
              "account_number", "account_holder_kana", "merchant_class", "status", "invoice_registration_number")
    return {field: getattr(merchant, field) for field in fields}


# --- API keys for merchant POS terminals -------------------------------------------------------


async def create_api_key(
    session: AsyncSession, clock: Clock, actor: Actor, merchant: Merchant, name: str
) -> tuple[ApiKey, str]:
    merchant_id = merchant.id
    if merchant.status != Status.ACTIVE:
        raise AccountInactive(f"The merchant is {merchant.status}.")
    secret = new_api_key_secret()
    key = await repo.insert_api_key(
        session, id=new_id(), region_id=merchant.region_id, merchant_id=merchant_id, name=name,
        secret_hash=hash_api_key(secret), created_by=actor.subject, created_at=clock.now(),
    )
    await audit.record(
        session, clock, actor, region_id=merchant.region_id, action="api_key.create",
        target_type="api_key", target_id=key.id, after={"merchant_id": str(merchant_id), "name": name},
    )
    return key, secret


async def list_api_keys(session: AsyncSession, merchant: Merchant) -> list[ApiKey]:
    return await repo.api_keys(session, merchant.id)


async def revoke_api_key(
    session: AsyncSession, clock: Clock, actor: Actor, merchant: Merchant, key_id: uuid.UUID
) -> ApiKey:
    key = await repo.api_key(session, key_id)
    if key is None or key.merchant_id != merchant.id:
        raise ApiKeyNotFound(f"No API key {key_id} for this merchant.")
    revoked = await repo.revoke_api_key(session, key_id, clock.now())
    await audit.record(
        session, clock, actor, region_id=merchant.region_id, action="api_key.revoke",
        target_type="api_key", target_id=key_id,
        before={"revoked_at": key.revoked_at.isoformat() if key.revoked_at else None},
        after={"revoked_at": revoked.revoked_at.isoformat() if revoked.revoked_at else None},
    )
    return revoked


async def resolve_api_key(session: AsyncSession, secret: str) -> Principal | None:
    """The terminal behind a presented key; None if unknown or revoked. (A partner system's key
    has its own prefix and is the grants module's: app/wiring.py sends each to its resolver.)"""
    found = await repo.active_api_key(session, hash_api_key(secret))
    if found is None:
        return None
    key, region_code = found
    return Principal(
        subject=f"api_key:{key.id}", role=Role.TERMINAL, region_code=region_code,
        merchant_id=key.merchant_id, api_key_id=key.id,
    )


# Seeded in every region; the operator may add more. The first two are Aizu's 地元専用 shops.
DEFAULT_CLASSES = (
    ("shotengai", "Small shop in a shopping street", "商店街の小規模店"),
    ("small_shop", "Other small local shop", "その他の小規模店"),
    ("convenience", "Convenience store", "コンビニエンスストア"),
    ("chain", "Chain store", "チェーン店"),
    ("large_store", "Large store", "大型店"),
)


DEFAULT_CLASS = "small_shop"


async def seed_merchant_classes(session: AsyncSession, region: Region, now: datetime) -> None:
    for code, name, name_ja in DEFAULT_CLASSES:
        await repo.insert_merchant_class(session, region_id=region.id, code=code, name=name, name_ja=name_ja, created_at=now)


async def merchant_classes(session: AsyncSession, region: Region) -> list[MerchantClass]:
    return await repo.merchant_classes(session, region.id)


async def add_merchant_class(
    session: AsyncSession, clock: Clock, actor: Actor, region: Region, *, code: str, name: str, name_ja: str
) -> MerchantClass:
    added = await repo.insert_merchant_class(
        session, region_id=region.id, code=code, name=name, name_ja=name_ja, created_at=clock.now()
    )
    if added is None:
        raise MerchantClassTaken(f"The region already has a merchant class {code!r}.")
    await audit.record(
        session, clock, actor, region_id=region.id, action="merchant_class.create", target_type="merchant_class",
        target_id=code, after={"name": name, "name_ja": name_ja},
    )
    return added


async def check_classes(session: AsyncSession, region_id: uuid.UUID, codes: list[str]) -> None:
    known = {c.code for c in await repo.merchant_classes(session, region_id)}
    unknown = sorted(set(codes) - known)
    if unknown:
        raise UnknownMerchantClass(
            f"No merchant class {', '.join(unknown)} in this region; known: {', '.join(sorted(known))}.",
            unknown=unknown,
        )


# --- notices ----------------------------------------------------------------------------------


async def post_notices(
    session: AsyncSession, clock: Clock, actor: Actor, *, region_id: uuid.UUID, subjects: Sequence[str], kind: str,
    payload: dict[str, Any],
) -> int:
    """One notice of `kind` for each of `subjects` that is a resident of the region with an active
    wallet (a closed or suspended wallet's app is told nothing new); how many were made. Audited
    once for the lot: the count, never the recipients."""
    found = await repo.active_residents(session, region_id, subjects)
    if not found:
        return 0
    now = clock.now()
    await repo.insert_notices(session, [
        {"id": new_id(), "region_id": region_id, "resident_id": resident_id, "kind": kind, "lot_id": None,
         "payload": payload, "created_at": now}
        for resident_id, _ in found
    ])
    await audit.record(
        session, clock, actor, region_id=region_id, action="notices.post", target_type="notice_kind", target_id=kind,
        after={"recipients": len(found)},
    )
    return len(found)


# Queries the modules above use as they are: they call this service, never the repository.
active_residents = repo.active_residents
insert_notice = repo.insert_notice
merchant = repo.merchant
merchant_account = repo.merchant_account
merchant_accounts = repo.merchant_accounts
merchant_by_name = repo.merchant_by_name
merchant_class_of = repo.merchant_class_of
notices = repo.notices
region_by_id = repo.region_by_id
regions = repo.regions
resident_account = repo.resident_account
resident_wallet = repo.resident_wallet
wallet = repo.wallet
