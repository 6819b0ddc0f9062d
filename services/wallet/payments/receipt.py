"""The printable receipt (領収書) of a payment: a small self-contained HTML page, in Japanese
with English labels, that a browser or the app prints as it is."""

from __future__ import annotations

from html import escape

from services.wallet.models import Merchant, Region
from services.wallet.payments.models import Payment, Store
from shared.clock import TOKYO

METHODS = {
    "mpm_static": "店舗QR / shop QR",
    "mpm_dynamic": "店舗QR（金額入り）/ shop QR with amount",
    "cpm": "利用者コード / resident code",
    "card": "利用者カード / resident card",
}


def render_html(payment: Payment, store: Store, merchant: Merchant, region: Region) -> str:
    paid_at = payment.created_at.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M")
    rows = [
        ("日時 / Date", f"{paid_at} (JST)"),
        ("お店 / Shop", f"{store.name_ja}（{merchant.name}）"),
        ("お支払い方法 / Paid with", METHODS.get(payment.method, payment.method)),
        ("金額 / Amount", f"¥{payment.amount:,}"),
    ]
    if payment.refunded_amount:
        rows.append(("返金 / Refunded", f"¥{payment.refunded_amount:,}"))
        rows.append(("差引 / Net", f"¥{payment.amount - payment.refunded_amount:,}"))
    if payment.order_reference:
        rows.append(("伝票番号 / Order", payment.order_reference))
    rows.append(("取引番号 / Payment id", str(payment.id)))
    table = "\n".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
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
