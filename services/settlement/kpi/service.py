"""The city's KPI report for a fiscal year (年度, April–March), computed exactly as DOMAIN.md
defines each KPI, with a monthly breakdown, the operator's targets, the achievement rate
(達成率 = actual ÷ target) and the status 達成 / 未達 / 未計測.

Every figure is read through the other services' public surfaces (the wallet's `activity`, the
coupons' counts of coupons, bundles and transit: services/coupons/bundles/public.py) and the report's own tables (baseline rates, targets, survey
answers), in a session that may be read-only (a replica). Nothing here writes but the settings.

How the figures are counted, where DOMAIN.md leaves a choice:
- Money is what residents paid, coin and points alike; a refund lowers the figures of the month
  it was made in (its own date), also across a fiscal year's end, as the settlement does.
- Fee savings: for each payment, amount × the baseline rate in force on its Tokyo day − the fee
  actually charged; a refund takes back its share, refunded × the rate of the payment's day −
  the fee it returned. Summed exactly and rounded down to the yen only at the end, so the city
  never claims more than it saved. A month some of whose days (or whose refunded payments' days)
  have no baseline rate yet is listed, and the KPI is 未計測 with those months as its reason.
- Transit tickets: per month, ticket purchases plus coin payments on the on-demand bus; the
  year's figure is their mean over the months the report covers (named in the report).
- Participants, merchants and sectors are distinct over the year (a month's figure: over the
  month), so the year's is not the sum of the months'.
- Bundle-created rides: rides within N days of claiming a bundle by residents who had not ridden
  in the M days before (the operator's N and M, services/coupons/bundles/counts.py).
- Satisfaction: the mean rating of the answers given in the year; 未計測 without answers.
- Local circulation: the share of what merchants moved out of their balances that went to other
  merchants (B2B transfers) rather than to their banks (payouts); 未計測 when neither happened.
- A fiscal year in progress is reported up to the day of the report (`through`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from services.coupons.bundles import public as coupons
from services.settlement.kpi import repository as repo
from services.settlement.kpi.errors import FiscalYearNotBegun
from services.settlement.kpi.models import BaselineRate, KpiTarget
from services.settlement.surveys import service as surveys
from services.wallet import public as wallet
from shared import audit
from shared.audit import Actor
from shared.clock import Clock, tokyo_date

THOUSAND = Decimal(1000)
BASIS = Decimal(10_000)


class Kpi(StrEnum):
    PAYMENT_AMOUNT = "payment_amount"
    FEE_SAVINGS = "fee_savings"
    SECTORS = "sectors"
    TRANSIT_TICKETS = "transit_tickets"
    MERCHANTS = "merchants"
    POINTS_GRANTED = "points_granted"
    POINT_GRANTS = "point_grants"
    PARTICIPANTS = "participants"
    SATISFACTION = "satisfaction"
    COUPON_REDEMPTIONS = "coupon_redemptions"
    BUNDLE_RIDES = "bundle_rides"
    LOCAL_CIRCULATION = "local_circulation"


@dataclass(frozen=True)
class KpiLabel:
    ja: str
    en: str
    unit_ja: str
    unit_en: str
    places: int  # decimal places the figure is given to


LABELS: dict[Kpi, KpiLabel] = {
    Kpi.PAYMENT_AMOUNT: KpiLabel("年間決済金額", "Annual payment amount", "千円", "JPY thousand", 3),
    Kpi.FEE_SAVINGS: KpiLabel("地域内経済活性化への寄与（手数料削減額）", "Fee savings against ordinary cashless",
                              "千円", "JPY thousand", 3),
    Kpi.SECTORS: KpiLabel("地域通貨適用分野数", "Sectors with payments", "分野", "sectors", 0),
    Kpi.TRANSIT_TICKETS: KpiLabel("交通チケットのデジタル決済数", "Digital transit ticket payments", "件/月",
                                  "per month", 1),
    Kpi.MERCHANTS: KpiLabel("連携地域事業者数", "Participating merchants", "事業者", "merchants", 0),
    Kpi.POINTS_GRANTED: KpiLabel("ポイント付与額", "Points granted", "円", "JPY", 0),
    Kpi.POINT_GRANTS: KpiLabel("ポイント付与回数", "Point grants", "回", "grants", 0),
    Kpi.PARTICIPANTS: KpiLabel("事業参加者数", "Participants", "人", "people", 0),
    Kpi.SATISFACTION: KpiLabel("満足度", "Satisfaction", "点", "points", 2),
    Kpi.COUPON_REDEMPTIONS: KpiLabel("クーポン利用数", "Coupon redemptions", "件", "redemptions", 0),
    Kpi.BUNDLE_RIDES: KpiLabel("クーポン配信が生んだバス乗車数", "Bus rides created by bundles", "回", "rides", 0),
    Kpi.LOCAL_CIRCULATION: KpiLabel("地域内循環率", "Local circulation", "%", "%", 1),
}


class Status(StrEnum):
    MET = "達成"
    MISSED = "未達"
    NOT_MEASURED = "未計測"


STATUS_EN = {Status.MET: "met", Status.MISSED: "missed", Status.NOT_MEASURED: "not measured"}


# --- settings ---------------------------------------------------------------------------------------


async def set_baseline(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, effective_from: date, rate_bp: int, source: str
) -> BaselineRate:
    """The baseline rate in force from `effective_from`; setting a day's rate again corrects it
    (audited with what it was), and every report computed after shows the correction."""
    region_id = await wallet.region_id(session, region=region)
    before = await repo.baseline(session, region_id, effective_from)
    was = {"rate_bp": before.rate_bp, "source": before.source} if before else None
    saved = await repo.put_baseline(
        session, region_id=region_id, effective_from=effective_from, rate_bp=rate_bp, source=source,
        set_by=actor.subject, set_at=clock.now(),
    )
    await audit.record(
        session, clock, actor, region_id=region_id, action="kpi.baseline.set", target_type="baseline_rate",
        target_id=effective_from.isoformat(), before=was, after={"rate_bp": rate_bp, "source": source},
    )
    return saved


async def baselines(session: AsyncSession, *, region: str) -> list[BaselineRate]:
    return await repo.baselines(session, await wallet.region_id(session, region=region))


async def set_target(
    session: AsyncSession, clock: Clock, *, region: str, actor: Actor, fiscal_year: int, kpi: Kpi, target: Decimal,
    reason: str | None,
) -> KpiTarget:
    region_id = await wallet.region_id(session, region=region)
    before = await repo.target(session, region_id, fiscal_year, kpi.value)
    was = {"target": str(before.target), "reason": before.reason} if before else None
    saved = await repo.put_target(
        session, region_id=region_id, fiscal_year=fiscal_year, kpi=kpi.value, target=target, reason=reason,
        set_by=actor.subject, set_at=clock.now(),
    )
    await audit.record(
        session, clock, actor, region_id=region_id, action="kpi.target.set", target_type="kpi_target",
        target_id=f"{fiscal_year}/{kpi.value}", before=was, after={"target": str(target), "reason": reason},
    )
    return saved


async def targets(session: AsyncSession, *, region: str, fiscal_year: int) -> list[KpiTarget]:
    return await repo.targets(session, await wallet.region_id(session, region=region), fiscal_year)


# --- the report ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KpiRow:
    kpi: Kpi
    actual: Decimal | None  # in the KPI's unit; None: not measured
    monthly: dict[date, Decimal | None]
    target: Decimal | None
    achievement: Decimal | None  # percent, one place
    status: Status | None  # None: no target set
    reasons: tuple[str, ...]  # the operator's, then the report's own (e.g. months without a baseline)


@dataclass(frozen=True)
class KpiReport:
    region: str
    fiscal_year: int
    since: date
    through: date  # the last day covered (the year's last, or the report's day in a year in progress)
    months: list[date]
    rows: list[KpiRow]
    baselines: list[BaselineRate]  # the rates in force during the year, the one before it first
    missing_baseline_months: list[date]
    imported_months: list[date]  # months whose figures include history imported from a previous platform


def fiscal_bounds(fiscal_year: int) -> tuple[date, date]:
    return date(fiscal_year, 4, 1), date(fiscal_year + 1, 4, 1)


def _month(day: date) -> date:
    return day.replace(day=1)


def _months(since: date, until: date) -> list[date]:
    months, month = [], since
    while month < until:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return months


class _Baseline:
    """The rate in force on a day: the latest with effective_from <= day."""

    def __init__(self, rates: list[BaselineRate]) -> None:
        self._rates = rates

    def on(self, day: date) -> Decimal | None:
        found = None
        for rate in self._rates:
            if rate.effective_from > day:
                break
            found = rate
        return None if found is None else Decimal(found.rate_bp) / BASIS

    def first_day(self) -> date | None:
        return self._rates[0].effective_from if self._rates else None


def _places(value: Decimal, places: int, rounding: str = ROUND_HALF_UP) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=rounding)


def _ratio(part: int, whole: int) -> Decimal | None:
    return None if whole == 0 else _places(Decimal(part) * 100 / Decimal(whole), 1)


def _mean(total: int, count: int, places: int) -> Decimal | None:
    return None if count == 0 else _places(Decimal(total) / Decimal(count), places)


def _thousands(yen: Decimal) -> Decimal:
    # Rounded down to the yen first: the city never reports more than was paid or saved.
    return _places(yen, 0, ROUND_DOWN) / THOUSAND


def _row(
    kpi: Kpi, actual: Decimal | None, monthly: dict[date, Decimal | None], found: KpiTarget | None,
    reasons: list[str],
) -> KpiRow:
    places = LABELS[kpi].places
    actual = None if actual is None else _places(actual, places)
    monthly = {m: None if v is None else _places(v, places) for m, v in monthly.items()}
    target = found.target if found is not None else None
    all_reasons = tuple(([found.reason] if found is not None and found.reason else []) + reasons)
    # The report's own reasons say a figure is incomplete (e.g. months without a baseline rate).
    if actual is None or reasons:
        return KpiRow(kpi, actual, monthly, target, None, Status.NOT_MEASURED, all_reasons)
    if target is None:
        return KpiRow(kpi, actual, monthly, None, None, None, all_reasons)
    achievement = _places(actual * 100 / target, 1) if target else None
    return KpiRow(kpi, actual, monthly, target, achievement, Status.MET if actual >= target else Status.MISSED,
                  all_reasons)


async def report(session: AsyncSession, clock: Clock, *, region: str, fiscal_year: int) -> KpiReport:
    """The report of `fiscal_year` as the data stands; a year without data is a report of zeros."""
    region_id = await wallet.region_id(session, region=region)
    since, until = fiscal_bounds(fiscal_year)
    today = tokyo_date(clock.now())
    if today < since:
        raise FiscalYearNotBegun(f"Fiscal year {fiscal_year} begins on {since.isoformat()}.",
                                 fiscal_year=fiscal_year)
    until = min(until, today + timedelta(days=1))
    months = _months(since, until)
    activity = await wallet.activity(session, region=region, since=since, until=until)
    rates = await repo.baselines(session, region_id, until=until)
    baseline = _Baseline(rates)
    found_targets = {t.kpi: t for t in await repo.targets(session, region_id, fiscal_year)}

    paid: dict[date, int] = defaultdict(int)
    saved: dict[date, Decimal] = defaultdict(Decimal)
    unmeasured: set[date] = set()
    sectors: dict[date, set[str]] = defaultdict(set)
    for sale in activity.sales:
        month = _month(sale.day)
        paid[month] += sale.amount
        sectors[month].add(sale.sector)
        rate = baseline.on(sale.day)
        if rate is None:
            unmeasured.add(month)
        else:
            saved[month] += sale.amount * rate - sale.fee
    for refund in activity.refunds:
        month = _month(refund.day)
        paid[month] -= refund.amount
        rate = baseline.on(refund.paid_on)
        if rate is None:
            unmeasured.add(month)
        else:
            saved[month] -= refund.amount * rate - refund.fee_returned
    first = baseline.first_day()
    unmeasured |= {m for m in months if first is None or first > max(m, since)}
    missing = sorted(unmeasured)

    counted = await coupons.counts(session, region=region, since=since, until=until)
    tickets = {date(y, m, 1): n for (y, m), n in counted.transit.monthly_digital_payments().items()}
    redeemed: dict[date, int] = defaultdict(int)
    for coupon_day in counted.coupons:
        redeemed[_month(coupon_day.day)] += coupon_day.redemptions
    created: dict[date, int] = defaultdict(int)
    for bundle_day in counted.bundles:
        created[_month(bundle_day.day)] += bundle_day.created_rides
    ratings = await surveys.monthly_ratings(session, region=region, since=since, until=until)
    per_month = {m.month: m for m in activity.months}

    def monthly(of: Callable[[date], Decimal | None]) -> dict[date, Decimal | None]:
        return {m: of(m) for m in months}

    reasons_missing = [f"基準手数料率が未設定の月: {', '.join(m.strftime('%Y-%m') for m in missing)}"] if missing else []
    answers = sum(t.answers for t in ratings.values())
    rating_sum = sum(t.rating_sum for t in ratings.values())
    transferred = sum(m.transferred for m in activity.months)
    paid_out = sum(m.paid_out for m in activity.months)
    all_sectors = set().union(*sectors.values()) if sectors else set()

    figures: list[tuple[Kpi, Decimal | None, dict[date, Decimal | None], list[str]]] = [
        (Kpi.PAYMENT_AMOUNT, _thousands(Decimal(sum(paid.values()))),
         monthly(of=lambda m: _thousands(Decimal(paid.get(m, 0)))), []),
        (Kpi.FEE_SAVINGS, _thousands(sum(saved.values(), Decimal(0))),
         monthly(of=lambda m: None if m in unmeasured else _thousands(saved.get(m, Decimal(0)))), reasons_missing),
        (Kpi.SECTORS, Decimal(len(all_sectors)), monthly(of=lambda m: Decimal(len(sectors.get(m, ())))), []),
        (Kpi.TRANSIT_TICKETS, _mean(sum(tickets.get(m, 0) for m in months), len(months), 1),
         monthly(of=lambda m: Decimal(tickets.get(m, 0))), []),
        (Kpi.MERCHANTS, Decimal(activity.merchants), monthly(of=lambda m: Decimal(per_month[m].merchants)), []),
        (Kpi.POINTS_GRANTED, Decimal(sum(m.granted for m in activity.months)),
         monthly(of=lambda m: Decimal(per_month[m].granted)), []),
        (Kpi.POINT_GRANTS, Decimal(sum(m.grants for m in activity.months)),
         monthly(of=lambda m: Decimal(per_month[m].grants)), []),
        (Kpi.PARTICIPANTS, Decimal(activity.participants), monthly(of=lambda m: Decimal(per_month[m].participants)), []),
        (Kpi.SATISFACTION, _mean(rating_sum, answers, 2),
         monthly(of=lambda m: _mean(ratings[m].rating_sum, ratings[m].answers, 2) if m in ratings else None),
         [] if answers else ["回答なし"]),
        (Kpi.COUPON_REDEMPTIONS, Decimal(sum(redeemed.values())), monthly(of=lambda m: Decimal(redeemed.get(m, 0))), []),
        (Kpi.BUNDLE_RIDES, Decimal(sum(created.values())), monthly(of=lambda m: Decimal(created.get(m, 0))),
         []),
        (Kpi.LOCAL_CIRCULATION, _ratio(transferred, transferred + paid_out),
         monthly(of=lambda m: _ratio(per_month[m].transferred, per_month[m].transferred + per_month[m].paid_out)),
         [] if transferred + paid_out else ["加盟店の出金・事業者間送金なし"]),
    ]
    rows = [_row(kpi, actual, by_month, found_targets.get(kpi.value), reasons)
            for kpi, actual, by_month, reasons in figures]
    in_force = [r for r in rates if r.effective_from >= since]
    before = [r for r in rates if r.effective_from < since]
    return KpiReport(region, fiscal_year, since, until - timedelta(days=1), months, rows, before[-1:] + in_force,
                     missing, activity.imported_months)
