"""Reward campaigns: points back on payments, at a rate that depends on the merchant's class
(e.g. 20 % at a small shop in a shopping street, 15 % at other small shops, 10 % at a
convenience store, 0 % at a large store), within the campaign's reward period.

Rules, applied in the payment's own transaction (a payment and its reward land together or not
at all):

- the base is the part of the payment that earns: by default only its coin part (paid-in money),
  so that the city's points, spent, do not earn the city's points again; or its whole amount,
  whatever paid it, for a campaign created with `reward_points_payments`;
- reward = base × rate, rounded down to the point; a payment paid wholly in points earns nothing
  by default;
- at most `reward_monthly_cap` points per resident, campaign and calendar month (Tokyo); the
  payment that reaches the cap gets what is left of it;
- never more than the campaign's budget holds: when the budget runs out, the payment still goes
  through and earns what was left (possibly nothing);
- the points are a lot under the campaign's rules (restriction, expiry), like any grant.

A refund takes back the refunded share of the reward's base (rounded down, cumulative over
partial refunds) from what is left of the reward's lot, returns it to the budget and to the
month's cap; points of the reward the resident has already spent stay spent. A payment spends
points before coin, and a refund restores in reverse (services/wallet/ledger/lots.py), so coin comes
back first: after refunds totalling R, the refunded part of a coin base C is min(R, C), and
taken back so far = floor(reward × min(R, base) / base). A refund of the coin part thus takes back
the whole coin-earned reward even while the points part is not refunded yet, and a whole-amount
base (min(R, A) = R) takes back floor(reward × R / A), as before the setting existed.

Cost: a rewarded payment locks the campaign's budget account until it commits, so rewarded
payments of one campaign queue there (not on the merchant); payments that earn no reward do not.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet.campaigns import repository as repo
from services.wallet.campaigns.models import Campaign
from services.wallet.campaigns.service import lot_rule
from services.wallet.directory import service as directory
from services.wallet.ledger import lots
from services.wallet.ledger import service as ledger
from services.wallet.ledger.models import Account, JournalKind, LotSource
from shared.clock import Clock, tokyo_date


def _month(day: date) -> date:
    return day.replace(day=1)


def reward_base(campaign: Campaign, amount: int, point_amount: int) -> int:
    """The part of a payment that earns the campaign's reward."""
    return amount if campaign.reward_points_payments else amount - point_amount


def taken_back_due(points: int, base: int, refunded_total: int) -> int:
    """What refunds totalling `refunded_total` take back, in all, of a reward of `points` earned
    on `base` (coin is refunded first, so the refunded part of the base is min(refunded, base))."""
    return points * min(refunded_total, base) // base


async def _points_of(session: AsyncSession, wallet_account_id: uuid.UUID) -> Account:
    account = await ledger.account(session, wallet_account_id)
    assert account is not None and account.resident_id is not None
    return await directory.resident_account(session, account.resident_id, "point")


async def reward_payment(
    session: AsyncSession, clock: Clock, *, payment_id: uuid.UUID, region_id: uuid.UUID, merchant_id: uuid.UUID,
    amount: int, point_amount: int, wallet_account_id: uuid.UUID,
) -> int:
    """Pay the rewards a payment of `amount` earns, `point_amount` of it paid in points (its
    wallet's accounts are locked by the payment); the points rewarded."""
    now = clock.now()
    campaigns = await repo.active_reward_campaigns(session, region_id, now)
    if not campaigns:
        return 0
    merchant_class = await directory.merchant_class_of(session, merchant_id)
    points = await _points_of(session, wallet_account_id)
    total = 0
    for campaign, rate_bp in await repo.reward_rates_for(session, [c.id for c in campaigns], merchant_class):
        base = reward_base(campaign, amount, point_amount)
        reward = base * rate_bp // 10_000
        month = _month(tokyo_date(now))
        if campaign.reward_monthly_cap is not None:
            earned = await repo.lock_reward_month(session, campaign.id, points.resident_id, month)
            reward = min(reward, campaign.reward_monthly_cap - earned)
        if reward <= 0:
            continue
        budget = await repo.budget_account(session, campaign.id)
        reward = min(reward, await ledger.lock_available(session, budget))
        if reward <= 0:
            continue
        posted = await ledger.post_journal(
            session, clock, region_id=region_id, kind=JournalKind.REWARD, actor=f"campaign:{campaign.id}",
            legs=[ledger.Leg(budget, -reward), ledger.Leg(points, reward)], reference=str(payment_id),
        )
        lot = await lots.issue(
            session, account=points, amount=reward, source=LotSource.REWARD, journal_id=posted.journal_id,
            rule=lot_rule(campaign, now), now=now, campaign_id=campaign.id,
        )
        await repo.add_to_reward_month(session, campaign.id, points.resident_id, month, reward)
        await repo.insert_payment_reward(
            session, payment_id=payment_id, campaign_id=campaign.id, journal_id=posted.journal_id, lot_id=lot.id,
            month=month, points=reward, base=base, clawed_back=0,
        )
        total += reward
    return total


async def claw_back(
    session: AsyncSession, clock: Clock, *, payment_id: uuid.UUID, region_id: uuid.UUID, amount: int,
    refunded_total: int, points: Account,
) -> int:
    """After a refund (the wallet's accounts locked) that brings the payment's refunds to
    `refunded_total`: take back the refunded share of each reward's base from what is left of its
    lot. The points taken back."""
    assert 0 < refunded_total <= amount, f"payment {payment_id}: refunds of {refunded_total} of {amount}"
    taken = 0
    for reward in await repo.payment_rewards(session, payment_id):
        due = taken_back_due(reward.points, reward.base, refunded_total) - reward.clawed_back
        lot = await ledger.lot(session, reward.lot_id)
        back = min(due, lot.remaining)
        if back <= 0:
            continue
        budget = await repo.budget_account(session, reward.campaign_id)
        await ledger.post_journal(
            session, clock, region_id=region_id, kind=JournalKind.REWARD, actor=f"campaign:{reward.campaign_id}",
            legs=[ledger.Leg(points, -back), ledger.Leg(budget, back)], reference=str(payment_id),
            memo="reward taken back with a refund",
        )
        await ledger.change_lot_remaining(session, lot.id, -back)
        await repo.add_to_reward_month(session, reward.campaign_id, points.resident_id, reward.month, -back)
        await repo.add_clawed_back(session, payment_id, reward.campaign_id, back)
        taken += back
    return taken
