"""The demo town: Aizuwakamatsu with six merchants in different sectors (a bus operator and a
farmer among them), three residents with balances, an operator and an auditor.

Seeding is idempotent: running it again finds what exists and adds only what is missing. Value
enters the demo as it would in real life, through counter top-ups recorded by the operator.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from services.wallet import onboarding
from services.wallet.directory import repository as directory_repo
from services.wallet.directory import service as directory
from services.wallet.ledger import repository as ledger_repo
from services.wallet.topups import service as topups
from shared.audit import Actor
from shared.auth import Role
from shared.clock import Clock
from shared.config import Settings

REGION = {"code": "aizu", "name": "Aizuwakamatsu", "name_ja": "会津若松市"}
OPERATOR = "operator-aizu"
AUDITOR = "auditor-aizu"

MERCHANTS = [
    dict(name="Tsurugajo Teahouse", merchant_class="shotengai", name_ja="鶴ヶ城茶屋", sector="food_service", mcc="5812",
         address="会津若松市追手町1-1", account_holder_kana="ﾂﾙｶﾞｼﾞﾖｳﾁﾔﾔ", account_number="1234501"),
    dict(name="Nanokamachi General Store", merchant_class="shotengai", name_ja="七日町よろず屋", sector="retail", mcc="5411",
         address="会津若松市七日町5-10", account_holder_kana="ﾅﾉｶﾏﾁﾖﾛｽﾞﾔ", account_number="1234502"),
    dict(name="Aizu Bus", merchant_class="small_shop", name_ja="会津乗合自動車", sector="transport", mcc="4131",
         address="会津若松市白虎町1", account_holder_kana="ｱｲﾂﾞﾉﾘｱｲｼﾞﾄﾞｳｼﾔ", account_number="1234503"),
    dict(name="Minato Farm", merchant_class="small_shop", name_ja="湊ファーム", sector="agriculture", mcc="0763",
         address="会津若松市湊町大字共和", account_holder_kana="ﾐﾅﾄﾌｱｰﾑ", account_number="1234504"),
    dict(name="Higashiyama Onsen Ryokan", merchant_class="small_shop", name_ja="東山温泉旅館", sector="tourism", mcc="7011",
         address="会津若松市東山町湯本", account_holder_kana="ﾋｶﾞｼﾔﾏｵﾝｾﾝﾘﾖｶﾝ", account_number="1234505"),
    dict(name="Ekimae Pharmacy", merchant_class="chain", name_ja="駅前薬局", sector="healthcare", mcc="5912",
         address="会津若松市駅前町3-2", account_holder_kana="ｴｷﾏｴﾔﾂｷﾖｸ", account_number="1234506"),
]
# 東邦銀行 会津営業部, ordinary accounts: a real bank and branch (the zengin-code data), so that the
# demo merchants can be given payout accounts from them (chiikipay settlement accounts import-onboarded).
BANK = dict(bank_code="0126", branch_code="401", account_type=1)

RESIDENTS = {"resident-hanako": 30_000, "resident-taro": 12_000, "resident-sachiko": 5_000}


@dataclass
class DemoTown:
    region_code: str
    merchants: dict[str, str]  # name -> id
    residents: dict[str, tuple[str, int]]  # subject -> (wallet id, balance)


async def seed(session: AsyncSession, clock: Clock, settings: Settings) -> DemoTown:
    region = await directory_repo.region_by_code(session, REGION["code"])
    if region is None:
        region = await onboarding.create_region(session, clock, settings, **REGION)
    operator = Actor(subject=OPERATOR, role=Role.OPERATOR.value, request_id="demo-seed")

    merchants: dict[str, str] = {}
    for details in MERCHANTS:
        merchant = await directory_repo.merchant_by_name(session, region.id, details["name"])
        if merchant is None:
            merchant = await onboarding.onboard_merchant(session, clock, operator, region, {**details, **BANK})
        merchants[merchant.name] = str(merchant.id)

    residents: dict[str, tuple[str, int]] = {}
    for subject, opening_balance in RESIDENTS.items():
        wallet = await directory.wallet_for(session, clock, region, subject)
        account = wallet.account
        balance = account.balance
        if not await ledger_repo.history(session, [account.id], after_id=None, limit=1):
            left = opening_balance
            while left > 0:  # counter top-ups within the region's per-top-up maximum
                step = min(left, region.topup_max)
                balance = (await topups.counter_topup(session, clock, operator, wallet, step, "demo")).balance_after
                left -= step
        residents[subject] = (str(account.id), balance)
    return DemoTown(region.code, merchants, residents)
