"""Premium campaigns (プレミアム付き): a resident pays a set's price in yen and gets its value,
the price kept as coin and the premium added as points from the campaign's budget.

**Money.** Paid-in coin and free points stay apart (regulatory separation). The price is taken
from the resident's usable *unrestricted* coin lots (in spending order) and issued again, in the
same yen account, as coin lots under the set's rules (window, split); the yen balance does not
change, so no journal is needed for it, and the purchase record names every lot taken and
created. The premium is one `premium` journal: campaign budget → the resident's point account,
issued as point lots under the same rules.

**Split and rounding.** A set's value is split into a local-only share (`local_share_bp` of it,
restricted to `local_classes`, Aizu's 地元専用) and an all-shops share (全店共通). The split is
applied to the coin part and to the point part separately, each on the purchase's total:
local = floor(part × share_bp / 10,000), all shops = part − local (sql/settle_premium.sql). So
the coin lots add up exactly to the price paid and the point lots to the premium given; any
rounding remainder goes to the all-shops side, never against the resident. (¥10,000 → 12,500 at
50 %: coin 5,000 + 5,000, points 1,250 + 1,250: 6,250 local-only, 6,250 all shops.)

**First-come stock** is split over `buckets` rows. A purchase takes its sets from one bucket it
finds unlocked (`SKIP LOCKED`), so concurrent buyers do not queue on one row; when every bucket
holding them is busy (a rush) it looks again a few times a few milliseconds apart, holding no
bucket (a look that finds none is undone, with any lock it took on the way); only when no single
free bucket holds them then (the end of the sale: what is left is scattered, or a long queue)
does it lock the offer, then all buckets in order, and take across them. A bucket's
`remaining >= 0` is a database constraint: nothing can oversell.

**Budget.** Only sets whose premium the campaign's budget covers are put into the buckets: sets
not yet covered wait as `unbacked_sets` and are moved in (under the offer's lock, with every
bucket locked) when a purchase finds the buckets short. So a sale whose budget runs out says
`budget-exhausted` (and funding the campaign lets it go on) instead of selling sets it cannot
give the premium for. The premium journal's debit of the budget is therefore covered — the
transaction that makes it also takes its sets from the stock, or rolls back — and takes no lock:
buyers never queue on the budget (campaigns/service.py). A lottery's
draw is refused unless the budget covers every won set; nothing else draws on a premium budget.

**Limits.** One tally row per resident and per household (the household is a resident
attribute the operator sets). A purchase raises both in one statement each, which refuses to
pass the limit and locks the holder's row until commit: one person's or one household's
concurrent purchases are serialised against each other, nobody else's.

**Lottery.** Residents apply for up to their limit during the application window (the tallies
count applied sets, so a household cannot apply for more than its limit). After the window the
operator draws with a seed, recorded and published: each application's key is
sha256("<seed>:<application id>") in hex; applications in ascending key order win their sets
while sets are left (the last winner may get fewer than applied). Anyone with the seed and the
application ids can re-run it (`draw_lottery`). The draw needs the budget to cover every won
set's premium. Winners and losers get a notice; winners pay before the payment deadline; after
it, unpaid wins are released (an operator call, or `release_unpaid_wins` as a job) and can no
longer be paid.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.campaigns import service as campaigns
from services.wallet.campaigns.models import Campaign, CampaignKind
from services.wallet.directory import service as directory
from services.wallet.directory.models import Region
from services.wallet.ledger import service as ledger
from services.wallet.ledger.errors import AccountInactive, InsufficientBalance
from services.wallet.premium import repository as repo
from services.wallet.premium.errors import (
    AlreadyApplied,
    AlreadyDrawn,
    AlreadyPaid,
    ApplicationNotFound,
    BudgetExhausted,
    DeadlineNotPassed,
    DrawTooEarly,
    HouseholdLimitExceeded,
    InvalidOffer,
    NotAWinner,
    NotDrawnYet,
    OfferExists,
    OfferNotFound,
    PersonLimitExceeded,
    SaleClosed,
    SaleNotOpen,
    SoldOut,
    WinReleased,
    WrongSaleMode,
)
from services.wallet.premium.models import (
    ApplicationStatus,
    PremiumApplication,
    PremiumOffer,
    PremiumPurchase,
    SaleMode,
)
from shared import audit
from shared.audit import Actor
from shared.clock import TOKYO, Clock
from shared.ids import new_id

DRAW_ALGORITHM = "sha256-rank-v1"


# --- offers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OfferView:
    offer: PremiumOffer
    phase: str
    sets_left: int | None


def phase(offer: PremiumOffer, now: datetime) -> str:
    if offer.mode == SaleMode.LOTTERY:
        if offer.released_at is not None:
            return "released"
        if offer.drawn_at is not None:
            return "drawn"
    if now < offer.opens_at:
        return "upcoming"
    if now < offer.closes_at:
        return "open"
    return "closed"


async def _view(session: AsyncSession, offer: PremiumOffer, now: datetime) -> OfferView:
    left = None
    if offer.mode == SaleMode.FIRST_COME:
        left = await repo.stock_left(session, offer.campaign_id) + offer.unbacked_sets
    return OfferView(offer, phase(offer, now), left)


def _is_midnight_tokyo(at: datetime) -> bool:
    try:
        return at.astimezone(TOKYO).timetz().replace(tzinfo=None) == time()
    except OverflowError:
        return False


async def create_offer(
    session: AsyncSession, clock: Clock, actor: Actor, campaign: Campaign, details: dict[str, Any]
) -> OfferView:
    campaigns.active(campaign, CampaignKind.PREMIUM)
    if await repo.offer(session, campaign.id) is not None:
        raise OfferExists(f"Campaign {campaign.name!r} already has its premium offer.")
    now = clock.now()
    mode: SaleMode = details["mode"]
    if details["value"] <= details["price"]:
        raise InvalidOffer("A set's value must be more than its price: the difference is the premium.")
    share = details["local_share_bp"]
    classes = details.get("local_classes")
    if share > 0:
        classes = classes or campaign.restriction
        if not classes:
            raise InvalidOffer("Name the merchant classes of the local-only share (local_classes).")
        await directory.check_classes(session, campaign.region_id, list(classes))
    elif classes:
        raise InvalidOffer("local_classes were given but local_share_bp is 0.")
    if details["per_household"] < details["per_person"]:
        raise InvalidOffer("per_household must be at least per_person.")
    opens_at, closes_at, deadline = details["opens_at"], details["closes_at"], details.get("payment_deadline")
    if closes_at <= opens_at:
        raise InvalidOffer("closes_at must be after opens_at.")
    if closes_at <= now:
        raise InvalidOffer("closes_at is already past.")
    if mode == SaleMode.LOTTERY:
        if deadline is None:
            raise InvalidOffer("A lottery needs a payment_deadline for the winners.")
        if deadline <= closes_at:
            raise InvalidOffer("payment_deadline must be after closes_at (the draw comes between).")
    elif deadline is not None:
        raise InvalidOffer("payment_deadline is for lotteries; a first-come sale is paid at once.")
    usable_from = details.get("usable_from") or campaign.usable_from
    usable_until = details.get("usable_until") or campaign.usable_until
    if usable_until is not None:
        if not _is_midnight_tokyo(usable_until):
            raise InvalidOffer("usable_until must be midnight Asia/Tokyo: value expires at the start of a day.")
        if usable_from is not None and usable_until <= usable_from:
            raise InvalidOffer("usable_until must be after usable_from.")
        if usable_until <= (deadline or closes_at):
            raise InvalidOffer("usable_until must be after the sale (and the payment deadline).")
    buckets = min(details["stock_buckets"], details["total_sets"])
    offer = await repo.insert_offer(
        session, campaign_id=campaign.id, region_id=campaign.region_id, mode=mode.value, price=details["price"],
        value=details["value"], local_share_bp=share, local_classes=list(classes) if share > 0 else None,
        per_person=details["per_person"], per_household=details["per_household"], total_sets=details["total_sets"],
        opens_at=opens_at, closes_at=closes_at, payment_deadline=deadline, usable_from=usable_from,
        usable_until=usable_until, buckets=buckets,
        unbacked_sets=details["total_sets"] if mode == SaleMode.FIRST_COME else 0,
        created_by=actor.subject, created_at=now,
    )
    if mode == SaleMode.FIRST_COME:
        await repo.insert_stock(session, offer.campaign_id, buckets)
        await _restock(session, await repo.lock_offer(session, offer.campaign_id),
                       [(b.bucket, b.remaining) for b in await repo.lock_stock(session, offer.campaign_id)])
        offer = await repo.lock_offer(session, offer.campaign_id)
    await audit.record(
        session, clock, actor, region_id=campaign.region_id, action="premium.offer.create",
        target_type="campaign", target_id=campaign.id, after=_offer_record(offer),
    )
    return await _view(session, offer, now)


async def offer_of(session: AsyncSession, campaign: Campaign) -> PremiumOffer:
    offer = await repo.offer(session, campaign.id)
    if offer is None:
        raise OfferNotFound(f"Campaign {campaign.name!r} has no premium offer.")
    return offer


async def get_offer(session: AsyncSession, clock: Clock, offer: PremiumOffer) -> OfferView:
    return await _view(session, offer, clock.now())


async def list_offers(
    session: AsyncSession, clock: Clock, region: Region, *, after_id: uuid.UUID | None, limit: int
) -> list[OfferView]:
    now = clock.now()
    return [await _view(session, o, now) for o in await repo.offers(session, region.id, after_id=after_id, limit=limit)]


def _offer_record(offer: PremiumOffer) -> dict[str, Any]:
    def iso(at: datetime | None) -> str | None:
        return at.isoformat() if at else None

    return {
        "mode": offer.mode, "price": offer.price, "value": offer.value, "local_share_bp": offer.local_share_bp,
        "local_classes": offer.local_classes, "per_person": offer.per_person, "per_household": offer.per_household,
        "total_sets": offer.total_sets, "opens_at": iso(offer.opens_at), "closes_at": iso(offer.closes_at),
        "payment_deadline": iso(offer.payment_deadline), "usable_from": iso(offer.usable_from),
        "usable_until": iso(offer.usable_until), "buckets": offer.buckets, "sets_in_stock": offer.total_sets - offer.unbacked_sets
        if offer.mode == SaleMode.FIRST_COME else None,
    }


# --- stock and budget -----------------------------------------------------------------------------


async def _budget_balance(session: AsyncSession, campaign_id: uuid.UUID) -> int:
    budget = await campaigns.budget_account(session, campaign_id)
    return budget.balance if budget.tracks_balance else await ledger.entries_sum(session, budget.id)


async def _restock(session: AsyncSession, offer: PremiumOffer, stock: list[tuple[int, int]]) -> int:
    """Move into the buckets as many unbacked sets as the budget covers beyond the sets already in
    stock. The caller holds the offer's lock and every bucket's (so the budget read below sees
    every committed purchase, and no purchase can take stock meanwhile). Returns the sets added."""
    if offer.unbacked_sets == 0:
        return 0
    balance = await _budget_balance(session, offer.campaign_id)
    reserved = sum(left for _, left in stock) * offer.premium
    add = min(offer.unbacked_sets, max(0, balance - reserved) // offer.premium)
    if add == 0:
        return 0
    per, extra = divmod(add, len(stock))
    for i, (bucket, _) in enumerate(stock):
        more = per + (1 if i < extra else 0)
        if more:
            await repo.change_bucket(session, offer.campaign_id, bucket, more)
    await repo.update_offer(session, offer.campaign_id, unbacked_sets=offer.unbacked_sets - add)
    return add


FREE_BUCKET_ATTEMPTS = 4  # looks for a free bucket before locking them all (the first look is wallet.buy_premium's)


async def _take_stock_after_busy(session: AsyncSession, campaign_id: uuid.UUID, sets: int) -> None:
    """Take `sets` out of the stock when the first look found no free bucket holding them, or
    refuse (sold out, or the budget covers no more sets)."""
    offer = await repo.offer(session, campaign_id)
    assert offer is not None
    buckets = offer.buckets  # read now: a savepoint's rollback may expire the loaded offer
    for _ in range(FREE_BUCKET_ATTEMPTS - 1):
        # Every bucket holding the sets is busy (a rush): look again in a moment, holding none. A
        # look that finds none is rolled back to its savepoint, for the lock it may have taken on a
        # bucket it then found short (see wallet.buy_premium): kept, it deadlocked the slow path.
        await asyncio.sleep(random.uniform(0.002, 0.010))
        look = await session.begin_nested()
        taken = await repo.take_from_one_bucket(
            session, campaign_id, sets, start=random.randrange(buckets), buckets=buckets
        )
        if taken is not None:
            await look.commit()
            return
        await look.rollback()
    locked = await repo.lock_offer(session, campaign_id)
    stock = [(b.bucket, b.remaining) for b in await repo.lock_stock(session, campaign_id)]
    if sum(left for _, left in stock) < sets and locked.unbacked_sets > 0:
        if await _restock(session, locked, stock):
            locked = await repo.lock_offer(session, campaign_id)
            stock = [(b.bucket, b.remaining) for b in await repo.lock_stock(session, campaign_id)]
    left = sum(n for _, n in stock)
    if left < sets:
        if locked.unbacked_sets > 0:
            raise BudgetExhausted(
                f"The campaign's budget covers no more sets ({left} left in stock; {locked.unbacked_sets} await funding).",
                sets_left=left, sets_awaiting_budget=locked.unbacked_sets, required=sets * locked.premium,
            )
        raise SoldOut(f"{left} set(s) left; {sets} asked.", sets_left=left)
    need = sets
    for bucket, n in sorted(stock, key=lambda b: -b[1]):
        part = min(n, need)
        if part:
            await repo.change_bucket(session, campaign_id, bucket, -part)
            need -= part
        if need == 0:
            break


# --- paying for sets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetRules:
    """What a purchase's lots were given (the offer's rules)."""

    local_classes: list[str] | None
    usable_from: datetime | None
    usable_until: datetime | None


@dataclass(frozen=True, slots=True)
class Purchase:
    """A purchase's recorded values, as the API shows them. A fresh one's come from its statement
    (transient ORM objects cost as much app CPU as a round trip on the rush's hot path)."""

    id: uuid.UUID
    campaign_id: uuid.UUID
    application_id: uuid.UUID | None
    sets: int
    coin: int
    points: int
    coin_local: int
    points_local: int
    journal_id: uuid.UUID
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PurchaseLot:
    """A lot the purchase took (its price) or created (the set's value), in the order recorded."""

    role: str
    lot_id: uuid.UUID
    unit: str
    amount: int


@dataclass(frozen=True)
class PurchaseView:
    purchase: Purchase
    lots: list[PurchaseLot]
    rules: SetRules


def _rules(offer: PremiumOffer) -> SetRules:
    return SetRules(offer.local_classes, offer.usable_from, offer.usable_until)


def _fresh_ids() -> dict[str, Any]:
    return {"purchase_id": new_id(), "journal_id": new_id(), "ids": [new_id() for _ in range(6)]}


def _settled(row: Any, ids: dict[str, Any], *, campaign_id: uuid.UUID, application_id: uuid.UUID | None, sets: int,
             now: datetime) -> tuple[Purchase, list[PurchaseLot]]:
    """The purchase a settle_premium row (or buy_premium's, which carries the same columns)
    recorded, or the refusal it reports."""
    _check_paid(row, sets)
    purchase = Purchase(ids["purchase_id"], campaign_id, application_id, sets, row.coin, row.points, row.coin_local,
                        row.points_local, ids["journal_id"], now)
    lots = [PurchaseLot(*lot) for lot in zip(row.lot_roles, row.lot_ids, row.lot_units, row.lot_amounts, strict=True)]
    return purchase, lots


def _check_paid(row: Any, sets: int) -> None:
    """Refuse as wallet.settle_premium said (a row of it or of the functions that call it)."""
    if row.outcome == "account_inactive":
        raise AccountInactive("The wallet is not active.", account_id=str(row.account_id))
    if row.outcome == "insufficient":
        raise InsufficientBalance(
            f"{sets} set(s) cost {row.coin} yen; the wallet has {row.usable} yen of coin usable at every shop. Top up first.",
            balance=row.usable, required=row.coin,
        )


def _check_window(opens_at: datetime, closes_at: datetime, now: datetime, what: str) -> None:
    if now < opens_at:
        raise SaleNotOpen(f"The {what} opens at {opens_at.astimezone(TOKYO).isoformat()}.",
                          opens_at=opens_at.isoformat())
    if now >= closes_at:
        raise SaleClosed(f"The {what} closed at {closes_at.astimezone(TOKYO).isoformat()}.",
                         closes_at=closes_at.isoformat())


def _wrong_mode(campaign_name: str, mode: str) -> WrongSaleMode:
    return WrongSaleMode(
        f"Campaign {campaign_name!r} is sold by {mode.replace('_', '-')}"
        + ("; apply for it instead." if mode == SaleMode.LOTTERY else "; buy it instead."),
        mode=mode,
    )


async def _offer_for_resident(
    session: AsyncSession, holder: directory.Wallet, campaign_id: uuid.UUID, mode: SaleMode
) -> tuple[Campaign, PremiumOffer]:
    campaign = await campaigns.campaign(session, campaign_id)
    if campaign is None or campaign.region_id != holder.region.id:
        raise OfferNotFound(f"No premium offer for campaign {campaign_id} in region {holder.region.code}.")
    campaigns.active(campaign, CampaignKind.PREMIUM)
    offer = await repo.offer(session, campaign.id)
    if offer is None:
        raise OfferNotFound(f"Campaign {campaign.name!r} has no premium offer.")
    if offer.mode != mode:
        raise _wrong_mode(campaign.name, offer.mode)
    return campaign, offer


async def _raise_tallies(session: AsyncSession, offer: PremiumOffer, holder: directory.Wallet, sets: int) -> None:
    resident = str(holder.resident.id)
    if sets > offer.per_person or await repo.raise_tally(
        session, offer.campaign_id, "resident", resident, sets, offer.per_person
    ) is None:
        already = await repo.tally(session, offer.campaign_id, "resident", resident)
        raise _person_limit(offer.per_person, already, sets)
    household = holder.resident.household
    if household is not None and await repo.raise_tally(
        session, offer.campaign_id, "household", household, sets, offer.per_household
    ) is None:
        already = await repo.tally(session, offer.campaign_id, "household", household)
        raise _household_limit(offer.per_household, already, sets)


def _person_limit(limit: int, already: int, sets: int) -> PersonLimitExceeded:
    return PersonLimitExceeded(
        f"One person may have {limit} set(s); you have {already} and asked for {sets}.",
        limit=limit, already=already, requested=sets,
    )


def _household_limit(limit: int, already: int, sets: int) -> HouseholdLimitExceeded:
    return HouseholdLimitExceeded(
        f"One household may have {limit} set(s); yours has {already} and you asked for {sets}.",
        limit=limit, already=already, requested=sets,
    )


@dataclass(frozen=True)
class Bought:
    """A first-come purchase: the one made now (`view`), or, when the request's Idempotency-Key was
    claimed before, that request's hash, status and stored answer (`first`), for the app to replay."""

    view: PurchaseView | None = None
    first: tuple[str, int, Any] | None = None


async def buy(session: AsyncSession, clock: Clock, region: directory.RegionIdentity, subject: str,
              campaign_id: uuid.UUID, sets: int, claim: dict[str, str]) -> Bought:
    """First-come, the rush's hot path: the Idempotency-Key's `claim`, the purchase and the key's
    answer in one statement, wallet.buy_premium (sql/buy_premium.sql), in the request's transaction,
    which the request's commit finishes. The app turns a refusal into its problem: one of the
    statement's it has undone, claim included; one of the slow path's, the request's rollback
    undoes. Two cases take more than the statement: a resident's first call (the wallet to make,
    then the statement again) and sets that no free bucket alone holds (the slow path). The buyer
    is the resident `subject` names, in `region`."""
    now = clock.now()
    ids = _fresh_ids()
    call = {**claim, "region_id": region.id, "subject": subject, "campaign_id": campaign_id, "sets": sets,
            "now": now, "start": random.randrange(256), **ids}
    row = await repo.buy_in_one_call(session, **call)
    if row.outcome == "no_wallet":  # a resident's first call makes the wallet (which holds no coin yet)
        await directory.wallet_for(session, clock, await directory.hosted_region(session, region.code), subject)
        row = await repo.buy_in_one_call(session, **call)
    if row.first_hash is not None:
        return Bought(first=(row.first_hash, row.first_status, row.first_response))
    _check_bought(row, campaign_id, region.code, now, sets)
    purchase, lots_recorded = _settled(row, ids, campaign_id=campaign_id, application_id=None, sets=sets, now=now)
    if row.outcome == "stock_busy":
        await _take_stock_after_busy(session, campaign_id, sets)
    else:
        assert row.outcome == "ok", row.outcome
    return Bought(view=PurchaseView(purchase, lots_recorded, SetRules(row.local_classes, row.usable_from,
                                                                       row.usable_until)))


async def bought_before(session: AsyncSession, purchase_id: uuid.UUID) -> PurchaseView:
    """The purchase that a first-come purchase's Idempotency-Key stored as its answer, to replay:
    the key is the caller's own, so the purchase is theirs."""
    found = await repo.purchase(session, purchase_id)
    assert found is not None, "a key's answer and its purchase commit together"
    return (await _purchase_views(session, [found]))[0]


def _check_bought(row: Any, campaign_id: uuid.UUID, region_code: str, now: datetime, sets: int) -> None:
    """Refuse as wallet.buy_premium said, up to the paying (`_check_paid`)."""
    match row.outcome:
        case "no_campaign":
            raise OfferNotFound(f"No premium offer for campaign {campaign_id} in region {region_code}.")
        case "campaign_closed" | "not_premium":
            campaigns.check_active(row.campaign_name, row.campaign_status, row.campaign_kind, CampaignKind.PREMIUM)
            raise AssertionError(f"wallet.buy_premium said {row.outcome} of an active premium campaign")
        case "no_offer":
            raise OfferNotFound(f"Campaign {row.campaign_name!r} has no premium offer.")
        case "wrong_mode":
            raise _wrong_mode(row.campaign_name, row.mode)
        case "not_open" | "closed":
            _check_window(row.opens_at, row.closes_at, now, "sale")
        case "sold_out":
            raise SoldOut("Every set has been sold.", sets_left=0)
        case "person_limit":
            raise _person_limit(row.per_limit, row.already, sets)
        case "household_limit":
            raise _household_limit(row.per_limit, row.already, sets)


# --- lottery --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplicationView:
    application: PremiumApplication
    offer: PremiumOffer


async def apply(
    session: AsyncSession, clock: Clock, holder: directory.Wallet, campaign_id: uuid.UUID, sets: int
) -> ApplicationView:
    """The resident whose wallet is `holder` applies for a lottery's sets."""
    campaign, offer = await _offer_for_resident(session, holder, campaign_id, SaleMode.LOTTERY)
    now = clock.now()
    _check_window(offer.opens_at, offer.closes_at, now, "application period")
    if await repo.application_of(session, offer.campaign_id, holder.resident.id) is not None:
        raise AlreadyApplied(f"You have already applied for {campaign.name!r}.")
    await _raise_tallies(session, offer, holder, sets)
    application = await repo.insert_application(
        session, id=new_id(), campaign_id=offer.campaign_id, region_id=campaign.region_id,
        resident_id=holder.resident.id, household=holder.resident.household, sets=sets,
        status=ApplicationStatus.APPLIED.value, won_sets=0, created_at=now,
    )
    if application is None:  # a concurrent twin applied first
        raise AlreadyApplied(f"You have already applied for {campaign.name!r}.")
    return ApplicationView(application, offer)


@dataclass(frozen=True)
class Drawn:
    application_id: uuid.UUID
    sets: int
    rank: int
    key: str
    won_sets: int


def draw_lottery(seed: str, applications: Sequence[tuple[uuid.UUID, int]], total_sets: int) -> list[Drawn]:
    """sha256-rank-v1: rank applications by sha256("<seed>:<application id>") (hex, ascending; the
    id breaks a tie that will not happen); in that order each wins its sets while sets are left,
    the last winner possibly fewer. Pure: the same seed and applications give the same result."""
    keyed = sorted((hashlib.sha256(f"{seed}:{app_id}".encode()).hexdigest(), str(app_id), app_id, sets)
                   for app_id, sets in applications)
    left = total_sets
    drawn = []
    for rank, (key, _, app_id, sets) in enumerate(keyed, 1):
        won = min(sets, left)
        left -= won
        drawn.append(Drawn(app_id, sets, rank, key, won))
    return drawn


@dataclass(frozen=True)
class DrawView:
    offer: PremiumOffer
    applications: list[PremiumApplication]


async def draw(
    session: AsyncSession, clock: Clock, actor: Actor, campaign: Campaign, offer: PremiumOffer, seed: str | None
) -> DrawView:
    campaigns.active(campaign, CampaignKind.PREMIUM)
    if offer.mode != SaleMode.LOTTERY:
        raise WrongSaleMode("A first-come sale has no draw.", mode=offer.mode)
    now = clock.now()
    if now < offer.closes_at:
        raise DrawTooEarly(f"Applications are open until {offer.closes_at.astimezone(TOKYO).isoformat()}.")
    offer = await repo.lock_offer(session, offer.campaign_id)
    if offer.drawn_at is not None:
        raise AlreadyDrawn(f"Drawn at {offer.drawn_at.isoformat()} with seed {offer.draw_seed}.")
    seed = seed or secrets.token_hex(16)
    applications = await repo.applications(session, campaign_id=offer.campaign_id)
    drawn = draw_lottery(seed, [(a.id, a.sets) for a in applications], offer.total_sets)
    won_total = sum(d.won_sets for d in drawn)
    balance = await _budget_balance(session, campaign.id)
    if won_total * offer.premium > balance:
        raise BudgetExhausted(
            f"The {won_total} won set(s) need {won_total * offer.premium} points of premium; the budget holds {balance}. "
            "Fund the campaign, then draw.",
            budget=balance, required=won_total * offer.premium,
        )
    await repo.record_draw(session, [
        {"id": d.application_id, "rank": d.rank, "key": d.key, "won": d.won_sets,
         "status": (ApplicationStatus.WON if d.won_sets else ApplicationStatus.LOST).value}
        for d in drawn
    ], now)
    offer = await repo.update_offer(
        session, offer.campaign_id, draw_seed=seed, draw_algorithm=DRAW_ALGORITHM, drawn_at=now, drawn_by=actor.subject,
    )
    by_id = {a.id: a for a in applications}
    for d in drawn:
        won = d.won_sets > 0
        payload: dict[str, Any] = {
            "campaign_id": str(campaign.id), "campaign": campaign.name_ja, "application_id": str(d.application_id),
            "applied_sets": d.sets, "won_sets": d.won_sets,
        }
        if won:
            payload |= {"price": d.won_sets * offer.price, "value": d.won_sets * offer.value,
                        "payment_deadline": offer.payment_deadline.isoformat() if offer.payment_deadline else None}
        await directory.insert_notice(
            session, id=new_id(), region_id=campaign.region_id, resident_id=by_id[d.application_id].resident_id,
            kind="lottery_won" if won else "lottery_lost", payload=payload, created_at=now,
        )
    await audit.record(
        session, clock, actor, region_id=campaign.region_id, action="premium.draw", target_type="campaign",
        target_id=campaign.id,
        after={"seed": seed, "algorithm": DRAW_ALGORITHM, "applications": len(drawn),
               "applied_sets": sum(d.sets for d in drawn), "winners": sum(1 for d in drawn if d.won_sets),
               "won_sets": won_total},
    )
    return DrawView(offer, await repo.applications(session, campaign_id=offer.campaign_id))


async def draw_result(session: AsyncSession, offer: PremiumOffer) -> DrawView:
    if offer.mode != SaleMode.LOTTERY:
        raise WrongSaleMode("A first-come sale has no draw.", mode=offer.mode)
    if offer.drawn_at is None:
        raise NotDrawnYet("The lottery has not been drawn yet.")
    return DrawView(offer, await repo.applications(session, campaign_id=offer.campaign_id))


async def pay_win(
    session: AsyncSession, clock: Clock, actor: Actor, holder: directory.Wallet, application_id: uuid.UUID
) -> PurchaseView:
    """A winner (the resident whose wallet is `holder`) pays for the sets won, before the payment deadline."""
    application = await repo.application(session, application_id, lock=True)
    if application is None or application.resident_id != holder.resident.id:
        raise ApplicationNotFound(f"No application {application_id} of yours.")
    campaign, offer = await _offer_for_resident(session, holder, application.campaign_id, SaleMode.LOTTERY)
    if application.status == ApplicationStatus.PAID:
        raise AlreadyPaid("You have already paid for the sets you won.")
    if application.status == ApplicationStatus.RELEASED:
        raise WinReleased("The payment deadline passed; the sets you won were released.")
    if application.status != ApplicationStatus.WON:
        raise NotAWinner("This application has no won sets to pay for.", application_status=application.status)
    now = clock.now()
    assert offer.payment_deadline is not None
    if now >= offer.payment_deadline:
        raise WinReleased(
            f"The payment deadline was {offer.payment_deadline.astimezone(TOKYO).isoformat()}; the sets can no longer be paid."
        )
    ids = _fresh_ids()
    row = await repo.settle_in_one_call(
        session, region_id=campaign.region_id, campaign_id=campaign.id, application_id=application.id,
        actor=actor.subject, resident_id=holder.resident.id, yen=holder.account.id, points=holder.points.id,
        sets=application.won_sets, now=now, **ids,
    )
    purchase, lots_recorded = _settled(row, ids, campaign_id=campaign.id, application_id=application.id,
                                       sets=application.won_sets, now=now)
    await repo.set_application_status(session, application.id, ApplicationStatus.PAID.value, now)
    return PurchaseView(purchase, lots_recorded, _rules(offer))


@dataclass(frozen=True)
class Released:
    campaign_id: uuid.UUID
    applications: int
    sets: int
    released_at: datetime | None


async def _release(session: AsyncSession, clock: Clock, actor: Actor, offer: PremiumOffer) -> Released:
    """Release the unpaid wins of a drawn lottery whose deadline has passed (idempotent)."""
    now = clock.now()
    offer = await repo.lock_offer(session, offer.campaign_id)
    released = await repo.release_unpaid(session, offer.campaign_id, now)
    for application in released:
        await directory.insert_notice(
            session, id=new_id(), region_id=offer.region_id, resident_id=application.resident_id,
            kind="lottery_released",
            payload={"campaign_id": str(offer.campaign_id), "application_id": str(application.id),
                     "won_sets": application.won_sets},
            created_at=now,
        )
    if offer.released_at is None:
        offer = await repo.update_offer(session, offer.campaign_id, released_at=now)
    result = Released(offer.campaign_id, len(released), sum(a.won_sets for a in released), offer.released_at)
    await audit.record(
        session, clock, actor, region_id=offer.region_id, action="premium.release", target_type="campaign",
        target_id=offer.campaign_id, after={"applications": result.applications, "sets": result.sets},
    )
    return result


async def release(session: AsyncSession, clock: Clock, actor: Actor, offer: PremiumOffer) -> Released:
    if offer.mode != SaleMode.LOTTERY:
        raise WrongSaleMode("A first-come sale has no wins to release.", mode=offer.mode)
    if offer.drawn_at is None:
        raise NotDrawnYet("The lottery has not been drawn yet.")
    assert offer.payment_deadline is not None
    if clock.now() < offer.payment_deadline:
        raise DeadlineNotPassed(
            f"Winners may pay until {offer.payment_deadline.astimezone(TOKYO).isoformat()}.",
            payment_deadline=offer.payment_deadline.isoformat(),
        )
    return await _release(session, clock, actor, offer)


# The release job, as the audit trail and the offers it releases name it.
JOB = Actor(subject="job:premium.release", role="job", request_id="job:premium.release")


async def release_unpaid_wins(session: AsyncSession, clock: Clock) -> list[Released]:
    """The job: every drawn lottery past its payment deadline and not yet released."""
    return [await _release(session, clock, JOB, offer) for offer in await repo.offers_to_release(session, clock.now())]


# --- what residents, operators and auditors see ---------------------------------------------------


async def my_purchases(
    session: AsyncSession, holder: directory.Wallet, *, after_id: uuid.UUID | None, limit: int
) -> list[PurchaseView]:
    return await _purchase_views(session, await repo.purchases(session, resident_id=holder.resident.id, after_id=after_id, limit=limit))


async def campaign_purchases(
    session: AsyncSession, offer: PremiumOffer, *, after_id: uuid.UUID | None, limit: int
) -> list[PurchaseView]:
    return await _purchase_views(session, await repo.purchases(session, campaign_id=offer.campaign_id, after_id=after_id, limit=limit))


async def purchase_view(session: AsyncSession, purchase: PremiumPurchase) -> PurchaseView:
    return (await _purchase_views(session, [purchase]))[0]


async def _purchase_views(session: AsyncSession, purchases: list[PremiumPurchase]) -> list[PurchaseView]:
    rows = await repo.purchase_lots(session, [p.id for p in purchases])
    offers: dict[uuid.UUID, PremiumOffer] = {}
    views = []
    for p in purchases:
        if p.campaign_id not in offers:
            found = await repo.offer(session, p.campaign_id)
            assert found is not None
            offers[p.campaign_id] = found
        recorded = Purchase(p.id, p.campaign_id, p.application_id, p.sets, p.coin, p.points, p.coin_local,
                            p.points_local, p.journal_id, p.created_at)
        lots = [PurchaseLot(r.role, r.lot_id, r.unit, r.amount) for r in rows if r.purchase_id == p.id]
        views.append(PurchaseView(recorded, lots, _rules(offers[p.campaign_id])))
    return views


async def my_applications(
    session: AsyncSession, holder: directory.Wallet, *, after_id: uuid.UUID | None, limit: int
) -> list[ApplicationView]:
    found = await repo.applications(session, resident_id=holder.resident.id, after_id=after_id, limit=limit)
    return await _application_views(session, found)


async def campaign_applications(
    session: AsyncSession, offer: PremiumOffer, *, after_id: uuid.UUID | None, limit: int, status: str | None,
) -> list[ApplicationView]:
    found = await repo.applications(session, campaign_id=offer.campaign_id, after_id=after_id, limit=limit, status=status)
    return [ApplicationView(a, offer) for a in found]


async def _application_views(session: AsyncSession, found: list[PremiumApplication]) -> list[ApplicationView]:
    offers: dict[uuid.UUID, PremiumOffer] = {}
    for a in found:
        if a.campaign_id not in offers:
            offer = await repo.offer(session, a.campaign_id)
            assert offer is not None
            offers[a.campaign_id] = offer
    return [ApplicationView(a, offers[a.campaign_id]) for a in found]


@dataclass(frozen=True)
class Sales:
    offer: PremiumOffer
    phase: str
    figures: dict[str, int]
    budget: int


async def sales(session: AsyncSession, clock: Clock, campaign: Campaign, offer: PremiumOffer) -> Sales:
    return Sales(offer, phase(offer, clock.now()), await repo.sales_figures(session, offer.campaign_id),
                 await _budget_balance(session, campaign.id))


# Queries the modules above use as they are: they call this service, never the repository.
purchase = repo.purchase
