"""The wallet API (/v1). Thin: authenticate, call the service, shape the answer."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import ValidationError

from services.wallet import access, onboarding
from services.wallet.directory import service as directory
from services.wallet.directory.models import Merchant
from services.wallet.expiry import service as expiry
from services.wallet.ledger.models import JournalKind
from services.wallet.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    AuditEventOut,
    BankTopupEvent,
    CashoutRequest,
    ExpiryRunCreate,
    ExpiryRunOut,
    HistoryItem,
    LotOut,
    MerchantBalanceOut,
    MerchantCreate,
    MerchantOut,
    MerchantProfileOut,
    MerchantUpdate,
    MovementOut,
    NoticeOut,
    RegionCreate,
    RegionOut,
    RegionSettings,
    RegionSettingsUpdate,
    SystemAccountOut,
    TerminalOut,
    Text100,
    TopupRequest,
    UnitAmounts,
    WalletBalanceOut,
    WalletOut,
    WalletUpdate,
)
from services.wallet.statements import service as statements
from services.wallet.topups import service as topups
from shared import audit
from shared.audit import Actor
from shared.auth import Principal, Role, require
from shared.clock import Day, Instant
from shared.db import SessionDep
from shared.deps import ClockDep, SettingsDep
from shared.errors import Problem, Unprocessable
from shared.idempotency import IdempotencyDep
from shared.openapi import INSUFFICIENT_BALANCE, PROBLEMS, raw_json_body
from shared.pagination import CursorParam, LimitParam, Page, decode_cursor, page_of

router = APIRouter(prefix="/v1")

Anyone = Annotated[Principal, require(*Role)]
Resident_ = Annotated[Principal, require(Role.RESIDENT)]
Operator = Annotated[Principal, require(Role.OPERATOR)]
Overseer = Annotated[Principal, require(Role.OPERATOR, Role.AUDITOR)]
WalletReader = Annotated[Principal, require(Role.RESIDENT, Role.OPERATOR, Role.AUDITOR)]
MerchantReader = Annotated[
    Principal,
    require(Role.OPERATOR, Role.AUDITOR, Role.MERCHANT_ADMIN, Role.MERCHANT_STAFF, Role.TERMINAL),
]
KeyManager = Annotated[Principal, require(Role.OPERATOR, Role.MERCHANT_ADMIN)]
KeyReader = Annotated[Principal, require(Role.OPERATOR, Role.AUDITOR, Role.MERCHANT_ADMIN)]
Terminal = Annotated[Principal, require(Role.TERMINAL)]
Auditor = Annotated[Principal, require(Role.AUDITOR)]


# The platform's own work (hosting regions); its tokens are of no region (shared.auth).
PlatformOperator = Annotated[Principal, require(Role.PLATFORM_OPERATOR)]

async def history_filters(
    kind: Annotated[JournalKind | None, Query(description="only movements of this kind")] = None,
    since: Annotated[Instant | None, Query(alias="from", description="inclusive")] = None,
    until: Annotated[Instant | None, Query(alias="to", description="exclusive")] = None,
) -> dict[str, Any]:
    return {"kind": kind.value if kind else None, "since": since, "until": until}


HistoryFilters = Annotated[dict[str, Any], Depends(history_filters)]


def wallet_out(wallet: directory.Wallet) -> WalletOut:
    return WalletOut(
        id=wallet.account.id, subject=wallet.resident.subject, unit=wallet.account.unit,
        balance=wallet.account.balance, points=wallet.points.balance, balance_cap=wallet.region.balance_cap,
        household=wallet.resident.household, status=wallet.account.status, created_at=wallet.account.created_at,
    )


def history_page(rows: list[statements.HistoryLine], limit: int) -> Page[HistoryItem]:
    items = [
        HistoryItem(
            entry_id=r.id, journal_id=r.journal_id, kind=r.kind, unit=r.unit, amount=r.amount,
            balance_after=r.balance_after, reference=r.reference, memo=r.memo, created_at=r.created_at,
            imported=r.imported,
        )
        for r in rows
    ]
    return page_of(items, [r.id for r in rows], limit)


# --- region -----------------------------------------------------------------------------------


@router.get("/region", response_model=RegionOut, tags=["region"], responses=PROBLEMS)
async def get_region(principal: Anyone, session: SessionDep) -> RegionOut:
    """The caller's region and its wallet settings."""
    return RegionOut.model_validate(await access.region(session, principal))


def _settings_changes(body: RegionSettings) -> dict[str, Any]:
    """What the operator sent: a null clears the coin expiry; the other settings cannot be
    cleared, so their nulls are as if not sent."""
    sent = body.model_dump(exclude_unset=True)
    return {k: v for k, v in sent.items() if v is not None or k == "coin_expiry_months"}


@router.patch("/region", response_model=RegionOut, tags=["region"], responses=PROBLEMS)
async def update_region(
    body: RegionSettingsUpdate, principal: Operator, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """Change the balance cap, top-up limits, coin expiry, refund window or dynamic QR lifetime
    (operator; audited)."""
    if replay := await idem.replay():
        return replay
    region = await directory.update_region_settings(
        session, clock, Actor.of(principal), await access.region(session, principal), _settings_changes(body)
    )
    return await idem.respond(200, RegionOut.model_validate(region))


@router.post("/regions", status_code=201, response_model=RegionOut, tags=["region"], responses=PROBLEMS)
async def onboard_region(
    body: RegionCreate, principal: PlatformOperator, session: SessionDep, clock: ClockDep, settings: SettingsDep,
    idem: IdempotencyDep,
):
    """Host a new regional currency: its code, names and settings (platform operator; audited in
    the new region's trail). Settings left out take the platform's defaults; 409 if the code is taken."""
    if replay := await idem.replay():
        return replay
    region = await onboarding.onboard_region(session, clock, Actor.of(principal), settings, **_settings_changes(body))
    return await idem.respond(201, RegionOut.model_validate(region))


@router.get("/regions", response_model=Page[RegionOut], tags=["region"], responses=PROBLEMS)
async def list_regions(
    principal: PlatformOperator, session: SessionDep, cursor: CursorParam = None, limit: LimitParam = 50
) -> Page[RegionOut]:
    """The regions hosted here, newest first (platform operator)."""
    regions = await directory.list_regions(session, after_id=decode_cursor(cursor), limit=limit + 1)
    return page_of([RegionOut.model_validate(r) for r in regions], [r.id for r in regions], limit)


# --- expiry -----------------------------------------------------------------------------------


@router.post("/expiry-runs", status_code=201, response_model=ExpiryRunOut, tags=["expiry"], responses=PROBLEMS)
async def run_expiry(
    body: ExpiryRunCreate, principal: Operator, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """Expire the lots due by the start of `as_of` and send the 30- and 7-day notices (operator;
    the server also does this itself each day). A finished date is refused."""
    if replay := await idem.replay():
        return replay
    run = await expiry.run_expiry(session, clock, Actor.of(principal), await access.region(session, principal), body.as_of)
    return await idem.respond(201, ExpiryRunOut.model_validate(run))


@router.get("/expiry-runs", response_model=Page[ExpiryRunOut], tags=["expiry"], responses=PROBLEMS)
async def expiry_runs(
    principal: Overseer, session: SessionDep, cursor: Annotated[Day | None, Query(description="as_of of the last run seen")] = None,
    limit: LimitParam = 50,
) -> Page[ExpiryRunOut]:
    """The region's expiry runs, newest date first."""
    runs = await expiry.expiry_runs(session, await access.region(session, principal), before=cursor, limit=limit + 1)
    items = [ExpiryRunOut.model_validate(r) for r in runs[:limit]]
    return Page[ExpiryRunOut](items=items, next_cursor=runs[limit - 1].as_of.isoformat() if len(runs) > limit else None)


# --- wallets ----------------------------------------------------------------------------------


@router.get("/wallet", response_model=WalletOut, tags=["wallet"], responses=PROBLEMS)
async def my_wallet(principal: Resident_, session: SessionDep, clock: ClockDep) -> WalletOut:
    """The calling resident's wallet; created on their first call."""
    return wallet_out(await access.own_wallet(session, clock, principal))


@router.get("/wallet/history", response_model=Page[HistoryItem], tags=["wallet"], responses=PROBLEMS)
async def my_history(
    principal: Resident_, session: SessionDep, clock: ClockDep, filters: HistoryFilters,
    cursor: CursorParam = None, limit: LimitParam = 50,
) -> Page[HistoryItem]:
    """The calling resident's movements, newest first, by kind and period."""
    wallet = await access.own_wallet(session, clock, principal)
    rows = await statements.wallet_history(session, wallet, after_id=decode_cursor(cursor), limit=limit + 1, **filters)
    return history_page(rows, limit)


def lot_out(view: statements.LotView) -> LotOut:
    lot = view.lot
    return LotOut(
        id=lot.id, unit=lot.unit, source=lot.source, campaign_id=lot.campaign_id, campaign_name=view.campaign_name,
        amount=lot.amount, remaining=lot.remaining, restriction=lot.restriction, usable_from=lot.usable_from,
        expires_at=lot.expires_at, usable_now=view.usable_now, created_at=lot.created_at,
    )


def balance_out(found: statements.BalanceView) -> WalletBalanceOut:
    return WalletBalanceOut(
        wallet_id=found.wallet.account.id, balance=found.wallet.account.balance, points=found.wallet.points.balance,
        usable=UnitAmounts(**found.usable), expiring_within_30_days=UnitAmounts(**found.expiring_soon),
        expiring_lots=[lot_out(v) for v in sorted(found.expiring_lots, key=lambda v: (v.lot.expires_at, v.lot.id))],
        lots=[lot_out(v) for v in found.lots],
    )


@router.get("/wallet/balance", response_model=WalletBalanceOut, tags=["wallet"], responses=PROBLEMS)
async def my_balance(principal: Resident_, session: SessionDep, clock: ClockDep) -> WalletBalanceOut:
    """The calling resident's balance lot by lot, and what expires within 30 days."""
    return balance_out(await statements.balance(session, clock, await access.own_wallet(session, clock, principal)))


@router.get("/wallet/notices", response_model=Page[NoticeOut], tags=["wallet"], responses=PROBLEMS)
async def my_notices(
    principal: Resident_, session: SessionDep, clock: ClockDep, cursor: CursorParam = None, limit: LimitParam = 50,
) -> Page[NoticeOut]:
    """What the app should tell the resident (value expiring in 30 or 7 days …), newest first."""
    wallet = await access.own_wallet(session, clock, principal)
    found = await statements.notices(session, wallet, after_id=decode_cursor(cursor), limit=limit + 1)
    return page_of([NoticeOut.model_validate(n) for n in found], [n.id for n in found], limit)


@router.get("/wallets", response_model=Page[WalletOut], tags=["wallet"], responses=PROBLEMS)
async def find_wallets(
    principal: Overseer, session: SessionDep, subject: Annotated[Text100 | None, Query()] = None,
    cursor: CursorParam = None, limit: LimitParam = 50,
) -> Page[WalletOut]:
    """Residents' wallets of the region, optionally the one of a given subject (operator, auditor)."""
    wallets = await directory.find_wallets(
        session, await access.region(session, principal), subject=subject, after_id=decode_cursor(cursor),
        limit=limit + 1,
    )
    return page_of([wallet_out(w) for w in wallets], [w.account.id for w in wallets], limit)


@router.get("/wallets/{wallet_id}", response_model=WalletOut, tags=["wallet"], responses=PROBLEMS)
async def get_wallet(wallet_id: uuid.UUID, principal: WalletReader, session: SessionDep) -> WalletOut:
    return wallet_out(await access.wallet(session, principal, wallet_id))


@router.get("/wallets/{wallet_id}/balance", response_model=WalletBalanceOut, tags=["wallet"], responses=PROBLEMS)
async def wallet_balance(
    wallet_id: uuid.UUID, principal: WalletReader, session: SessionDep, clock: ClockDep
) -> WalletBalanceOut:
    return balance_out(await statements.balance(session, clock, await access.wallet(session, principal, wallet_id)))


@router.get("/wallets/{wallet_id}/history", response_model=Page[HistoryItem], tags=["wallet"], responses=PROBLEMS)
async def wallet_history(
    wallet_id: uuid.UUID, principal: WalletReader, session: SessionDep, filters: HistoryFilters,
    cursor: CursorParam = None, limit: LimitParam = 50,
) -> Page[HistoryItem]:
    wallet = await access.wallet(session, principal, wallet_id)
    rows = await statements.wallet_history(session, wallet, after_id=decode_cursor(cursor), limit=limit + 1, **filters)
    return history_page(rows, limit)


@router.patch("/wallets/{wallet_id}", response_model=WalletOut, tags=["wallet"], responses=PROBLEMS)
async def update_wallet(
    wallet_id: uuid.UUID, body: WalletUpdate, principal: Operator, session: SessionDep,
    clock: ClockDep, idem: IdempotencyDep,
):
    """Suspend, reactivate or close a wallet, or set the resident's household (operator; audited)."""
    if replay := await idem.replay():
        return replay
    wallet = await directory.update_wallet(
        session, clock, Actor.of(principal), await access.wallet(session, principal, wallet_id),
        body.model_dump(exclude_unset=True),
    )
    return await idem.respond(200, wallet_out(wallet))


@router.post("/wallets/{wallet_id}/topups", status_code=201, response_model=MovementOut, tags=["top-up"], responses=PROBLEMS)
async def counter_topup(
    wallet_id: uuid.UUID, body: TopupRequest, principal: Operator, session: SessionDep,
    clock: ClockDep, idem: IdempotencyDep,
):
    """チャージ at a city counter: the operator takes cash and credits the wallet."""
    if replay := await idem.replay():
        return replay
    movement = await topups.counter_topup(
        session, clock, Actor.of(principal), await access.wallet(session, principal, wallet_id), body.amount, body.memo
    )
    return await idem.respond(201, MovementOut.model_validate(movement))


@router.post(
    "/wallets/{wallet_id}/cashouts", status_code=201, response_model=MovementOut, tags=["top-up"],
    responses={**PROBLEMS, **INSUFFICIENT_BALANCE},
)
async def cashout(
    wallet_id: uuid.UUID, body: CashoutRequest, principal: Operator, session: SessionDep,
    clock: ClockDep, idem: IdempotencyDep,
):
    """払戻し of prepaid value to the resident, in the cases the law allows (operator; audited)."""
    if replay := await idem.replay():
        return replay
    movement = await topups.cashout(
        session, clock, Actor.of(principal), await access.wallet(session, principal, wallet_id), body.amount, body.reason
    )
    return await idem.respond(201, MovementOut.model_validate(movement))


@router.post(
    "/webhooks/bank/topups",
    status_code=201,
    response_model=MovementOut,
    tags=["top-up"],
    responses=PROBLEMS,
    openapi_extra=raw_json_body(BankTopupEvent),
)
async def bank_topup(
    request: Request,
    session: SessionDep,
    clock: ClockDep,
    settings: SettingsDep,
    x_chiikipay_timestamp: Annotated[str, Header(description="Unix seconds when the bank signed")],
    x_chiikipay_signature: Annotated[str, Header(description='"sha256=" + hex HMAC of "<timestamp>.<body>"')],
) -> MovementOut:
    """チャージ from a linked bank account. The bank signs each event; the event id makes it
    idempotent (a replay is refused with 409 and moves nothing)."""
    body = await request.body()
    topups.verify_bank_signature(settings, clock, x_chiikipay_timestamp, x_chiikipay_signature, body)
    try:
        event = BankTopupEvent.model_validate_json(body)
    except ValidationError as exc:
        raise _invalid(exc) from None
    movement = await topups.bank_topup(session, clock, event_id=event.event_id, account_id=event.wallet_id, amount=event.amount)
    return MovementOut.model_validate(movement)


def _invalid(exc: ValidationError) -> Problem:
    problem = Unprocessable(
        "The request failed validation.",
        errors=[{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()],
    )
    problem.slug, problem.title = "validation-error", "Invalid request"
    return problem


@router.get("/accounts", response_model=list[SystemAccountOut], tags=["ledger"], responses=PROBLEMS)
async def system_accounts(principal: Overseer, session: SessionDep) -> list[SystemAccountOut]:
    """The region's system accounts (bank clearing, counter cash, fee income …) and balances."""
    return [
        SystemAccountOut(account_id=a.id, kind=a.kind, unit=a.unit, balance=balance)
        for a, balance in await statements.system_balances(session, await access.region(session, principal))
    ]


# --- merchants --------------------------------------------------------------------------------

def merchant_out(merchant: Merchant, principal: Principal) -> MerchantOut:
    shown = MerchantOut.model_validate(merchant)
    if access.sees_bank_account(principal):
        return shown
    hidden = dict.fromkeys(set(MerchantOut.model_fields) - set(MerchantProfileOut.model_fields))
    return shown.model_copy(update=hidden)


def _merchant_changes(body: MerchantUpdate) -> dict[str, Any]:
    """What the operator sent: a null clears the registration number; other fields cannot be cleared."""
    sent = body.model_dump(exclude_unset=True)
    return {k: v for k, v in sent.items() if v is not None or k == "invoice_registration_number"}


@router.post("/merchants", status_code=201, response_model=MerchantOut, tags=["merchants"], responses=PROBLEMS)
async def onboard_merchant(
    body: MerchantCreate, principal: Operator, session: SessionDep, clock: ClockDep, idem: IdempotencyDep
):
    """加盟店 onboarding (operator; audited)."""
    if replay := await idem.replay():
        return replay
    merchant = await onboarding.onboard_merchant(
        session, clock, Actor.of(principal), await access.region(session, principal), body.model_dump()
    )
    return await idem.respond(201, MerchantOut.model_validate(merchant))


@router.get("/merchants", response_model=Page[MerchantOut], tags=["merchants"], responses=PROBLEMS)
async def list_merchants(
    principal: Overseer, session: SessionDep, cursor: CursorParam = None, limit: LimitParam = 50
) -> Page[MerchantOut]:
    merchants = await directory.list_merchants(
        session, await access.region(session, principal), after_id=decode_cursor(cursor), limit=limit + 1
    )
    return page_of([MerchantOut.model_validate(m) for m in merchants], [m.id for m in merchants], limit)


@router.get("/merchants/{merchant_id}", response_model=MerchantOut, tags=["merchants"], responses=PROBLEMS)
async def get_merchant(merchant_id: uuid.UUID, principal: MerchantReader, session: SessionDep) -> MerchantOut:
    """The merchant; its bank account only for operators, auditors and the merchant's admin."""
    return merchant_out(await access.merchant(session, principal, merchant_id), principal)


@router.patch("/merchants/{merchant_id}", response_model=MerchantOut, tags=["merchants"], responses=PROBLEMS)
async def update_merchant(
    merchant_id: uuid.UUID, body: MerchantUpdate, principal: Operator, session: SessionDep,
    clock: ClockDep, idem: IdempotencyDep,
):
    """Change details or status (active / suspended / closed) (operator; audited)."""
    if replay := await idem.replay():
        return replay
    merchant = await directory.update_merchant(
        session, clock, Actor.of(principal), await access.merchant(session, principal, merchant_id),
        _merchant_changes(body),
    )
    return await idem.respond(200, MerchantOut.model_validate(merchant))


@router.get("/merchants/{merchant_id}/history", response_model=Page[HistoryItem], tags=["merchants"], responses=PROBLEMS)
async def merchant_history(
    merchant_id: uuid.UUID, principal: MerchantReader, session: SessionDep, filters: HistoryFilters,
    cursor: CursorParam = None, limit: LimitParam = 50,
) -> Page[HistoryItem]:
    """Every movement of the merchant's balance (payments less fees, refunds, transfers), newest first,
    then its payments and refunds on a previous platform (`imported`), if its history was carried over."""
    rows = await statements.merchant_history(
        session, await access.merchant(session, principal, merchant_id), after_id=decode_cursor(cursor),
        limit=limit + 1, **filters,
    )
    return history_page(rows, limit)


@router.get("/merchants/{merchant_id}/balance", response_model=MerchantBalanceOut, tags=["merchants"], responses=PROBLEMS)
async def merchant_balance(merchant_id: uuid.UUID, principal: MerchantReader, session: SessionDep) -> MerchantBalanceOut:
    """What the shop holds before payout: yen from coin payments, points from point payments
    (both paid out in yen; the points by the city)."""
    (yen, balance), (points, point_balance) = await directory.merchant_balance(
        session, await access.merchant(session, principal, merchant_id)
    )
    return MerchantBalanceOut(
        account_id=yen.id, unit=yen.unit, balance=balance, points_account_id=points.id, points=point_balance
    )


@router.post(
    "/merchants/{merchant_id}/api-keys", status_code=201, response_model=ApiKeyCreated, tags=["merchants"],
    responses=PROBLEMS,
)
async def create_api_key(
    merchant_id: uuid.UUID, body: ApiKeyCreate, principal: KeyManager, session: SessionDep,
    clock: ClockDep, idem: IdempotencyDep,
):
    """A key for one POS terminal of this merchant. The secret is shown once (audited)."""
    if replay := await idem.replay():
        return replay
    key, secret = await directory.create_api_key(
        session, clock, Actor.of(principal), await access.merchant(session, principal, merchant_id), body.name
    )
    return await idem.respond(201, ApiKeyCreated(**ApiKeyOut.model_validate(key).model_dump(), secret=secret))


@router.get("/merchants/{merchant_id}/api-keys", response_model=list[ApiKeyOut], tags=["merchants"], responses=PROBLEMS)
async def list_api_keys(merchant_id: uuid.UUID, principal: KeyReader, session: SessionDep) -> list[ApiKeyOut]:
    keys = await directory.list_api_keys(session, await access.merchant(session, principal, merchant_id))
    return [ApiKeyOut.model_validate(k) for k in keys]


@router.delete(
    "/merchants/{merchant_id}/api-keys/{key_id}", response_model=ApiKeyOut, tags=["merchants"], responses=PROBLEMS
)
async def revoke_api_key(
    merchant_id: uuid.UUID, key_id: uuid.UUID, principal: KeyManager, session: SessionDep,
    clock: ClockDep, idem: IdempotencyDep,
):
    """Revoke a terminal's key at once (audited)."""
    if replay := await idem.replay():
        return replay
    key = await directory.revoke_api_key(
        session, clock, Actor.of(principal), await access.merchant(session, principal, merchant_id), key_id
    )
    return await idem.respond(200, ApiKeyOut.model_validate(key))


@router.get("/terminal", response_model=TerminalOut, tags=["merchants"], responses=PROBLEMS)
async def terminal_identity(principal: Terminal, session: SessionDep) -> TerminalOut:
    """Which merchant a POS terminal's key belongs to: the terminal's first call after set-up. The
    terminal sees the merchant's name and details, not its bank account."""
    assert principal.api_key_id is not None
    merchant = await access.own_merchant(session, principal)
    return TerminalOut(api_key_id=principal.api_key_id, merchant=MerchantProfileOut.model_validate(merchant))


# --- audit ------------------------------------------------------------------------------------


@router.get("/audit-events", response_model=Page[AuditEventOut], tags=["audit"], responses=PROBLEMS)
async def audit_events(
    principal: Auditor, session: SessionDep, cursor: CursorParam = None, limit: LimitParam = 50
) -> Page[AuditEventOut]:
    """The region's audit trail, newest first (auditor)."""
    region = await access.region(session, principal)
    events = await audit.list_events(session, region.id, after_id=decode_cursor(cursor), limit=limit + 1)
    return page_of([AuditEventOut.model_validate(e) for e in events], [e.id for e in events], limit)

