"""The KPI report's formats: JSON, CSV (UTF-8 with a BOM, so Excel opens it; cp932 on request),
XLSX, and a PNG of the monthly payments and fee savings. Japanese labels by default (the
national template's columns: 目標, 実績, 達成率, 状況, 理由), English on request.

Every format is a pure function of the report, so the same data gives the same bytes (XLSX and
PNG carry no creation time)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from services.settlement.kpi.errors import UnknownFormat
from services.settlement.kpi.service import LABELS, STATUS_EN, Kpi, KpiReport, KpiRow
from shared.fonts import japanese_font_file


class Format(StrEnum):
    JSON = "json"
    CSV = "csv"
    XLSX = "xlsx"
    PNG = "png"


class Lang(StrEnum):
    JA = "ja"
    EN = "en"


MEDIA_TYPES = {
    Format.JSON: "application/json",
    Format.CSV: "text/csv",
    Format.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    Format.PNG: "image/png",
}
ENCODINGS = ("utf-8", "cp932")

_COLUMNS = {
    Lang.JA: ("KPI", "単位", "目標", "実績", "達成率(%)", "状況", "理由"),
    Lang.EN: ("KPI", "Unit", "Target", "Actual", "Achievement (%)", "Status", "Reason"),
}
_BASELINE_COLUMNS = {
    Lang.JA: ("適用開始日", "基準手数料率(%)", "出典"),
    Lang.EN: ("Effective from", "Baseline rate (%)", "Source"),
}
# A month whose figures include imported history is marked so in every format's month heading.
_IMPORTED = {Lang.JA: "（移行データを含む）", Lang.EN: " (incl. imported history)"}
_TITLES = {
    Lang.JA: ("{fy}年度 KPI 実績報告", "月別", "基準手数料率", "対象期間", "基準手数料率が未設定の月"),
    Lang.EN: ("FY{fy} KPI report", "Monthly", "Baseline rates", "Period", "Months without a baseline rate"),
}


def parse_format(value: str) -> Format:
    try:
        return Format(value)
    except ValueError:
        raise UnknownFormat(f"No report format {value!r}; one of {', '.join(f.value for f in Format)}.",
                            formats=[f.value for f in Format]) from None


def _label(kpi: Kpi, lang: Lang) -> tuple[str, str]:
    found = LABELS[kpi]
    return (found.ja, found.unit_ja) if lang is Lang.JA else (found.en, found.unit_en)


def _status(row: KpiRow, lang: Lang) -> str:
    if row.status is None:
        return ""
    return row.status.value if lang is Lang.JA else STATUS_EN[row.status]


def _number(value: Decimal | None) -> str:
    return "" if value is None else format(value, "f")


def _month(month: date) -> str:
    return month.strftime("%Y-%m")


def _heading(report: KpiReport, month: date, lang: Lang) -> str:
    return _month(month) + (_IMPORTED[lang] if month in report.imported_months else "")


def _rate(bp: int) -> str:
    return format(Decimal(bp) / 100, ".2f")


def as_dict(report: KpiReport, lang: Lang = Lang.JA) -> dict[str, Any]:
    """The report as JSON data; figures are decimal strings, exact to their places."""
    return {
        "region": report.region,
        "fiscal_year": report.fiscal_year,
        "since": report.since.isoformat(),
        "through": report.through.isoformat(),
        "months": [_month(m) for m in report.months],
        "kpis": [
            {
                "kpi": row.kpi.value, "label": _label(row.kpi, lang)[0], "unit": _label(row.kpi, lang)[1],
                "target": _number(row.target) or None, "actual": _number(row.actual) or None,
                "achievement_percent": _number(row.achievement) or None,
                "status": _status(row, lang) or None, "reasons": list(row.reasons),
                "monthly": {_month(m): _number(v) or None for m, v in row.monthly.items()},
            }
            for row in report.rows
        ],
        "baseline_rates": [
            {"effective_from": r.effective_from.isoformat(), "rate_percent": _rate(r.rate_bp), "source": r.source}
            for r in report.baselines
        ],
        "missing_baseline_months": [_month(m) for m in report.missing_baseline_months],
        "imported_months": [_month(m) for m in report.imported_months],
    }


def to_csv(report: KpiReport, lang: Lang = Lang.JA, encoding: str = "utf-8") -> bytes:
    """One line per KPI with the template's columns, then one column per month. UTF-8 gets a
    BOM (Excel reads a BOM-less CSV as the local code page); cp932 has none."""
    if encoding not in ENCODINGS:
        raise UnknownFormat(f"No CSV encoding {encoding!r}; one of {', '.join(ENCODINGS)}.", encodings=list(ENCODINGS))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*_COLUMNS[lang], *(_heading(report, m, lang) for m in report.months)])
    for row in report.rows:
        label, unit = _label(row.kpi, lang)
        writer.writerow([
            label, unit, _number(row.target), _number(row.actual), _number(row.achievement), _status(row, lang),
            " / ".join(row.reasons), *(_number(row.monthly[m]) for m in report.months),
        ])
    text = out.getvalue()
    return ("\ufeff" + text).encode("utf-8") if encoding == "utf-8" else text.encode("cp932")


def to_xlsx(report: KpiReport, lang: Lang = Lang.JA) -> bytes:
    """Three sheets: the KPIs in the template's columns, the monthly breakdown, the baseline rates."""
    import xlsxwriter  # imported here, as matplotlib below: only their format needs them, and the server starts faster

    out = io.BytesIO()
    # A fixed creation time keeps the bytes of one report the same from run to run.
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    book.set_properties({"created": datetime(2000, 1, 1)})
    title, monthly_title, baseline_title, period_title, missing_title = _TITLES[lang]
    bold = book.add_format({"bold": True})
    sheet = book.add_worksheet("KPI")
    sheet.write(0, 0, title.format(fy=report.fiscal_year), bold)
    sheet.write(1, 0, period_title)
    sheet.write(1, 1, f"{report.since.isoformat()} – {report.through.isoformat()}")
    sheet.write_row(3, 0, _COLUMNS[lang], bold)
    for i, row in enumerate(report.rows, start=4):
        label, unit = _label(row.kpi, lang)
        sheet.write_row(i, 0, [label, unit])
        for col, value in ((2, row.target), (3, row.actual), (4, row.achievement)):
            if value is not None:
                sheet.write_number(i, col, float(value))
        sheet.write_row(i, 5, [_status(row, lang), " / ".join(row.reasons)])
    sheet.set_column(0, 0, 40)
    sheet.set_column(1, 5, 14)
    sheet.set_column(6, 6, 50)

    months = book.add_worksheet(monthly_title)
    months.write_row(0, 0, ["KPI", *(_heading(report, m, lang) for m in report.months)], bold)
    for i, row in enumerate(report.rows, start=1):
        months.write(i, 0, _label(row.kpi, lang)[0])
        for j, month in enumerate(report.months, start=1):
            if (value := row.monthly[month]) is not None:
                months.write_number(i, j, float(value))
    months.set_column(0, 0, 40)

    rates = book.add_worksheet(baseline_title)
    rates.write_row(0, 0, _BASELINE_COLUMNS[lang], bold)
    for i, rate in enumerate(report.baselines, start=1):
        rates.write_row(i, 0, [rate.effective_from.isoformat(), float(Decimal(rate.rate_bp) / 100), rate.source])
    if report.missing_baseline_months:
        rates.write(len(report.baselines) + 2, 0, missing_title, bold)
        rates.write(len(report.baselines) + 2, 1, ", ".join(_month(m) for m in report.missing_baseline_months))
    rates.set_column(0, 2, 24)
    book.close()
    return out.getvalue()


def to_png(report: KpiReport, lang: Lang = Lang.JA) -> bytes:
    """Bar charts of the monthly payment amount and fee savings (¥ thousand), labelled in the
    embedded Japanese font; months without a baseline rate have no fee-savings bar."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager
    from matplotlib import pyplot as plt

    font = font_manager.FontProperties(fname=str(japanese_font_file()))
    rows = {row.kpi: row for row in report.rows}
    # A short mark under the bars (a month heading would not fit), explained under the chart.
    labels = [_month(m)[2:] + ("*" if m in report.imported_months else "") for m in report.months]
    figure, axes = plt.subplots(2, 1, figsize=(10, 7), dpi=100)
    for axis, kpi in zip(axes, (Kpi.PAYMENT_AMOUNT, Kpi.FEE_SAVINGS), strict=True):
        values = [float(v) if (v := rows[kpi].monthly[m]) is not None else 0.0 for m in report.months]
        axis.bar(labels, values, color="#2f6fad" if kpi is Kpi.PAYMENT_AMOUNT else "#3c9a5f")
        name, unit = _label(kpi, lang)
        axis.set_title(f"{name}（{unit}）" if lang is Lang.JA else f"{name} ({unit})", fontproperties=font)
        axis.set_ylabel(unit, fontproperties=font)
        for tick in axis.get_xticklabels():
            tick.set_fontproperties(font)
    figure.suptitle(_TITLES[lang][0].format(fy=report.fiscal_year), fontproperties=font)
    if report.imported_months:
        figure.text(0.01, 0.005, "*" + _IMPORTED[lang].strip(" ()（）"), fontproperties=font, fontsize=8)
    figure.tight_layout()
    out = io.BytesIO()
    # No software/creation metadata in the file: the same report gives the same bytes.
    figure.savefig(out, format="png", metadata={"Software": None})
    plt.close(figure)
    return out.getvalue()


def render(report: KpiReport, fmt: Format, lang: Lang = Lang.JA, encoding: str = "utf-8") -> bytes:
    if fmt is Format.JSON:
        return json.dumps(as_dict(report, lang), ensure_ascii=False, indent=2).encode()
    if fmt is Format.CSV:
        return to_csv(report, lang, encoding)
    if fmt is Format.XLSX:
        return to_xlsx(report, lang)
    return to_png(report, lang)
