"""A run's files, rendered from its stored rows alone (models.py), so that the same run gives the
same bytes whenever they are made: no clock is read (the run's stored time is printed), rows
come in a fixed order (merchant id, then time and journal), and the PDFs are written invariant
(reportlab's fixed document id and dates).

- `statement-<merchant id>.csv`: UTF-8 with a BOM (Excel), the statement's figures then every
  line with its payment, refund and journal id (the lines' rows written by the database,
  repository.line_texts, with this module's labels);
- `statement-<merchant id>.pdf`: the same figures with Japanese labels in IPAex Gothic
  (shared/fonts.py, embedded), the payments by day (both units) and every other line with its
  journal id (each payment's own ids are in the CSV); a line in points is marked (ポイント);
- `summary.csv`: one row per merchant and a total, for the operator;
- `held-back.csv`: the merchants not paid for want of a payable account, with the reason;
- `zengin.txt`: the 全銀 総合振込 file of the paid merchants (zengin.py), absent when none is.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from services.settlement import zengin
from services.settlement.runs.models import RunMerchant, SettlementRun
from shared.clock import TOKYO
from shared.fonts import JA_FONT, japanese_font_file

KINDS = {
    "payment": "決済", "refund": "返金", "sponsor_credit": "協賛値引", "sponsor_reversal": "協賛値引戻し",
    "sponsor_payment": "協賛支払", "transfer_in": "B2B受取", "transfer_out": "B2B支払", "payout": "振込",
    "payout_fee": "振込手数料", "point_redemption": "ポイント換金",
}
POINT = "(ポイント)"  # after the kind of a line in points
ADJUSTMENT = "調整"  # the CSV's mark of a line of an earlier period's trade
STATUS = {"paid": "振込", "carried": "繰越", "held": "保留"}
HOLD_REASONS = {
    "payout-account-not-found": "振込口座未登録", "bank-code-unknown": "金融機関コード不明",
    "branch-code-unknown": "支店コード不明", "payout-exceeds-balance": "残高不足",
}
LINE_HEADER = ["日時", "種別", "金額", "手数料", "差引", "決済ID", "返金ID", "仕訳ID", "相手加盟店ID", "調整"]
SUMMARY_HEADER = ["期間", "加盟店ID", "加盟店名", "前期繰越", "ポイント前期繰越", "決済", "返金", "協賛値引", "手数料",
                  "B2B受取", "B2B支払", "その他出金", "ポイント次期繰越", "うち調整", "差引支払額", "ポイント換金",
                  "振込手数料", "振込額", "次期繰越", "状態", "保留理由", "明細行数"]


def _csv(rows: Iterable[list[Any]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return "\ufeff".encode() + out.getvalue().encode("utf-8")


def _jst(at: datetime) -> str:
    return at.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M:%S")


def figures(m: RunMerchant) -> list[tuple[str, int]]:
    """The statement's figures, labelled, in the order they add up: carry-in (yen and points) and
    the lines' sums (both units, 1 point = 1 yen), less the points carried out as points, make the
    amount due, of which the points redeemed (ポイント換金) were paid in yen by the campaign fund;
    the payout fee, the payout and the carry-out share it."""
    return [
        ("前期繰越", m.carry_in), ("ポイント前期繰越", m.point_carry_in), ("決済", m.payments), ("返金", m.refunds),
        ("協賛値引", m.sponsored), ("手数料", -m.fees), ("B2B受取", m.transfers_in), ("B2B支払", m.transfers_out),
        ("その他出金", m.other_payouts), ("ポイント次期繰越", -m.point_carry_out), ("差引支払額", m.due),
        ("ポイント換金", m.points_redeemed), ("振込手数料", -m.payout_fee), ("振込額", m.payout),
        ("次期繰越", m.carry_out),
    ]


def _status(m: RunMerchant) -> str:
    return STATUS[m.status] + (f" ({HOLD_REASONS.get(m.hold_reason, m.hold_reason)})" if m.hold_reason else "")


def _heading(run: SettlementRun, m: RunMerchant) -> list[tuple[str, str]]:
    return [
        ("期間", f"{run.label} ({run.first_day:%Y-%m-%d}〜{run.last_day:%Y-%m-%d})"),
        ("加盟店ID", str(m.merchant_id)), ("加盟店名", m.name_ja), ("振込予定日", f"{run.pay_date:%Y-%m-%d}"),
        ("締め処理日時", _jst(run.run_at)),
    ]


@dataclass(frozen=True)
class Day:
    """A Tokyo date's payments of the period (repository.payment_days)."""

    day: str  # YYYY-MM-DD
    count: int
    amount: int
    fee: int


@dataclass(frozen=True)
class Other:
    """A line that is not a payment of the period (repository.other_lines, less the merchant)."""

    local_time: str
    kind: str
    amount: int
    fee: int
    journal_id: str
    adjustment: bool
    unit: str = "yen"


@dataclass
class Statement:
    """One merchant's statement: its lines' CSV rows as the database wrote them, its payments by
    day and its other lines; `csv()` and `pdf()` give its files."""

    run: SettlementRun
    merchant: RunMerchant
    lines: str = ""  # the CSV rows of every line (repository.line_texts), CRLF between them
    days: list[Day] = field(default_factory=list)  # by date
    others: list[Other] = field(default_factory=list)  # in order

    def csv(self) -> bytes:
        m = self.merchant
        head: list[list[Any]] = [["精算明細書"], *([k, v] for k, v in _heading(self.run, m)), []]
        head += [["項目", "金額"], *([k, v] for k, v in figures(m)), ["うち調整", m.adjustments], ["状態", _status(m)], []]
        body = _csv([*head, LINE_HEADER])
        return body + (self.lines + "\r\n").encode("utf-8") if self.lines else body

    def pdf(self) -> bytes:
        return _Pdf(self).render()


def statement_name(merchant_id: uuid.UUID, suffix: str) -> str:
    return f"statement-{merchant_id}.{suffix}"


async def statements(run: SettlementRun, merchants: list[RunMerchant], lines: AsyncIterator[tuple[uuid.UUID, str]],
                     days: AsyncIterator[Any], others: AsyncIterator[Any]) -> AsyncIterator[Statement]:
    """Each merchant's statement, from three streams (its lines' CSV rows, its payments by day,
    its other lines): all come in the database's merchant id order, and every line of a run is
    one of its merchants'."""
    pending_text, pending_day, pending_other = (await anext(lines, None), await anext(days, None),
                                                await anext(others, None))
    for merchant in merchants:
        statement = Statement(run, merchant)
        if pending_text is not None and pending_text[0] == merchant.merchant_id:
            statement.lines = pending_text[1]
            pending_text = await anext(lines, None)
        while pending_day is not None and pending_day.merchant_id == merchant.merchant_id:
            statement.days.append(Day(pending_day.day, pending_day.count, pending_day.amount, pending_day.fee))
            pending_day = await anext(days, None)
        while pending_other is not None and pending_other.merchant_id == merchant.merchant_id:
            statement.others.append(Other(*pending_other[1:]))
            pending_other = await anext(others, None)
        yield statement
    left = pending_text[0] if pending_text else getattr(pending_day or pending_other, "merchant_id", None)
    assert left is None, f"a line of merchant {left}, not in the run"


def summary(run: SettlementRun, merchants: list[RunMerchant]) -> bytes:
    rows: list[list[Any]] = [SUMMARY_HEADER]
    totals = [0] * 16
    for m in merchants:
        values = [m.carry_in, m.point_carry_in, m.payments, m.refunds, m.sponsored, -m.fees, m.transfers_in,
                  m.transfers_out, m.other_payouts, -m.point_carry_out, m.adjustments, m.due, m.points_redeemed,
                  -m.payout_fee, m.payout, m.carry_out]
        totals = [t + v for t, v in zip(totals, values, strict=True)]
        rows.append([run.label, str(m.merchant_id), m.name_ja, *values, STATUS[m.status],
                     HOLD_REASONS.get(m.hold_reason, m.hold_reason) if m.hold_reason else "", m.lines])
    rows.append([run.label, "", "合計", *totals, f"振込 {run.paid} 件", f"保留 {run.held_back} 件",
                 sum(m.lines for m in merchants)])
    return _csv(rows)


def held_back(run: SettlementRun, merchants: list[RunMerchant]) -> bytes:
    rows: list[list[Any]] = [["期間", "加盟店ID", "加盟店名", "理由コード", "理由", "保留額(次期繰越)",
                              "保留ポイント(次期繰越)"]]
    rows += [[run.label, str(m.merchant_id), m.name_ja, m.hold_reason, HOLD_REASONS.get(m.hold_reason or "", ""),
              m.carry_out, m.point_carry_out] for m in merchants if m.status == "held"]
    return _csv(rows)


def transfer_file(run: SettlementRun, merchants: list[RunMerchant]) -> bytes | None:
    """The 全銀 file of the run's payouts, by merchant id; None when nothing was paid."""
    paid = [m for m in merchants if m.status == "paid"]
    if not paid:
        return None
    assert run.requester_code and run.requester_name and run.requester_account_type
    requester = zengin.Requester(run.requester_code, run.requester_name, zengin.Account(
        run.requester_bank_code or "", run.requester_bank_name or "", run.requester_branch_code or "",
        run.requester_branch_name or "", zengin.AccountType(run.requester_account_type),
        run.requester_account_number or "",
    ))
    return zengin.write(requester, run.pay_date, [
        zengin.Transfer(zengin.Account(m.bank_code or "", m.bank_name or "", m.branch_code or "", m.branch_name or "",
                                       zengin.AccountType(m.account_type or ""), m.account_number or ""),
                        m.holder_name or "", m.payout)
        for m in paid
    ])


# --- the PDF -----------------------------------------------------------------------------------------

_registered = False


def _font() -> str:
    global _registered
    if not _registered:
        pdfmetrics.registerFont(TTFont(JA_FONT, str(japanese_font_file())))
        _registered = True
    return JA_FONT


class _Pdf:
    WIDTH, HEIGHT = A4
    LEFT, TOP, BOTTOM, LINE = 40, A4[1] - 50, 50, 13

    def __init__(self, statement: Statement) -> None:
        self.s = statement
        self.out = io.BytesIO()
        self.canvas = Canvas(self.out, pagesize=A4, invariant=1, pageCompression=1)
        self.canvas.setTitle(f"精算明細書 {statement.run.label} {statement.merchant.merchant_id}")
        self.font = _font()
        self.y = self.TOP
        self.page = 1

    def text(self, x: float, value: str, size: float = 9, right: bool = False) -> None:
        self.canvas.setFont(self.font, size)
        (self.canvas.drawRightString if right else self.canvas.drawString)(x, self.y, value)

    def next_line(self, step: float | None = None) -> None:
        self.y -= step or self.LINE
        if self.y < self.BOTTOM:
            self.canvas.setFont(self.font, 8)
            self.canvas.drawRightString(self.WIDTH - 40, 30, f"{self.page}")
            self.canvas.showPage()
            self.page += 1
            self.y = self.TOP

    def row(self, cells: list[tuple[float, str, bool]], size: float = 9) -> None:
        for x, value, right in cells:
            self.text(x, value, size, right)
        self.next_line()

    def render(self) -> bytes:
        run, m = self.s.run, self.s.merchant
        self.text(self.LEFT, "精算明細書", 16)
        self.next_line(24)
        for label, value in _heading(run, m):
            self.row([(self.LEFT, label, False), (self.LEFT + 90, value, False)])
        self.next_line(6)
        for label, amount in figures(m):
            self.row([(self.LEFT, label, False), (self.LEFT + 230, f"{amount:,} 円", True)], 10)
        self.row([(self.LEFT, "うち調整 (前期以前の取引)", False), (self.LEFT + 230, f"{m.adjustments:,} 円", True)])
        self.row([(self.LEFT, "状態", False), (self.LEFT + 90, _status(m), False)])
        self.next_line(8)
        self.text(self.LEFT, "決済 (日別)", 11)
        self.next_line()
        self.row([(self.LEFT, "日付", False), (self.LEFT + 150, "件数", True), (self.LEFT + 250, "金額", True),
                  (self.LEFT + 340, "手数料", True)])
        for total in self.s.days:
            self.row([(self.LEFT, total.day, False), (self.LEFT + 150, f"{total.count:,}", True),
                      (self.LEFT + 250, f"{total.amount:,}", True), (self.LEFT + 340, f"{total.fee:,}", True)])
        self.next_line(8)
        self.text(self.LEFT, "その他の明細 (仕訳ID)", 11)
        self.next_line()
        self.row([(self.LEFT, "日時", False), (self.LEFT + 100, "種別", False), (self.LEFT + 230, "金額", True),
                  (self.LEFT + 290, "手数料", True), (self.LEFT + 300, "仕訳ID", False)], 8)
        for line in self.s.others:
            self.row([(self.LEFT, line.local_time, False),
                      (self.LEFT + 100, KINDS[line.kind] + (POINT if line.unit == "point" else "")
                       + (" (調整)" if line.adjustment else ""), False),
                      (self.LEFT + 230, f"{line.amount:,}", True), (self.LEFT + 290, f"{line.fee:,}", True),
                      (self.LEFT + 300, line.journal_id, False)], 8)
        self.canvas.setFont(self.font, 8)
        self.canvas.drawRightString(self.WIDTH - 40, 30, f"{self.page}")
        self.canvas.save()
        return self.out.getvalue()
