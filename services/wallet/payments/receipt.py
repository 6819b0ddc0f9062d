"""The printable receipt (領収書) of a payment: a small self-contained HTML page, in Japanese
with English labels, that a browser or the app prints as it is.

It names the shop and the business behind it with its address and, for a registered
qualified-invoice issuer, its registration number (適格請求書発行事業者登録番号), and says how
the amount was paid: in coin (paid-in money) and in points (the city's free value), and what
refunds have given back of each so far. A qualified invoice also breaks the amount down by
consumption-tax rate; a payment here carries no items and no tax rates (the shop's register does),
so the receipt shows no tax breakdown rather than one made up.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from services.wallet.directory.models import Merchant, Region
from services.wallet.payments.models import Payment, Store
from shared.clock import TOKYO

METHODS = {
    "mpm_static": "店舗QR / shop QR",
    "mpm_dynamic": "店舗QR（金額入り）/ shop QR with amount",
    "cpm": "利用者コード / resident code",
    "card": "利用者カード / resident card",
}


@dataclass(frozen=True)
class Split:
    """A payment's amounts by what paid them: coin (yen) and points."""

    coin: int
    points: int
    refunded_coin: int
    refunded_points: int


def split(payment: Payment) -> Split:
    return Split(
        coin=payment.amount - payment.point_amount, points=payment.point_amount,
        refunded_coin=payment.refunded_amount - payment.refunded_point, refunded_points=payment.refunded_point,
    )


def _yen(amount: int) -> str:
    return f"¥{amount:,}"


def rows(payment: Payment, store: Store, merchant: Merchant) -> list[tuple[str, str]]:
    """The receipt's lines, label and value, in the order printed."""
    paid = split(payment)
    lines = [
        ("日時 / Date", f"{payment.created_at.astimezone(TOKYO).strftime('%Y-%m-%d %H:%M')} (JST)"),
        ("お店 / Shop", store.name_ja),
        ("事業者 / Business", f"{merchant.name_ja}（{merchant.name}）"),
        ("所在地 / Address", merchant.address),
    ]
    if merchant.invoice_registration_number:
        lines.append(("登録番号 / Registration No.", merchant.invoice_registration_number))
    lines += [
        ("お支払い方法 / Paid with", METHODS.get(payment.method, payment.method)),
        ("金額 / Amount", _yen(payment.amount)),
        ("うちコイン / in coin", _yen(paid.coin)),
        ("うちポイント / in points", _yen(paid.points)),
    ]
    if payment.refunded_amount:
        lines += [
            ("返金 / Refunded", _yen(payment.refunded_amount)),
            ("うちコイン / to coin", _yen(paid.refunded_coin)),
            ("うちポイント / to points", _yen(paid.refunded_points)),
            ("差引 / Net", _yen(payment.amount - payment.refunded_amount)),
        ]
    if payment.reward_points:
        lines.append(("付与ポイント / Reward points", f"{payment.reward_points:,} pt"))
    if payment.order_reference:
        lines.append(("伝票番号 / Order", payment.order_reference))
    lines.append(("取引番号 / Payment id", str(payment.id)))
    return lines


def render_html(payment: Payment, store: Store, merchant: Merchant, region: Region) -> str:
    table = "\n".join(
        f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows(payment, store, merchant)
    )
    return f"""<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>領収書 {escape(str(payment.id))}</title>
<style>
body {{ font-family: sans-serif; max-width: 28em; margin: 2em auto; }}
h1 {{ font-size: 1.4em; text-align: center; }}
th {{ text-align: left; padding-right: 1em; font-weight: normal; color: #555; }}
td {{ font-weight: bold; }}
footer {{ margin-top: 2em; font-size: 0.8em; color: #555; text-align: center; }}
</style></head>
<body><h1>領収書 / Receipt</h1>
<table>
{table}
</table>
<footer>{escape(region.name_ja)} 地域通貨 chiikipay</footer>
</body></html>
"""
