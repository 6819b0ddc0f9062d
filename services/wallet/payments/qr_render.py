"""Merchant QR codes as images: PNG for screens, SVG for designers, and the printable A6 stand
that a shop puts by the register.

Error correction M (15 %): a stand gets scratched and splashed, and M still keeps a payload of
~200 characters at a version that phone cameras read from arm's length. The text goes in byte
mode as UTF-8, which is what JPQR readers expect for the Japanese in template 64.

The stand's Japanese is set in IPAex Gothic, embedded (subset to the characters used) in the
PDF: a shop prints it on whatever machine it has, and a PDF that only names a Japanese font
prints boxes where none is installed (shared/fonts.py says where the font comes from).
"""

from __future__ import annotations

import io

import qrcode
import qrcode.image.svg
from qrcode.constants import ERROR_CORRECT_M

from shared.emvco import parse_payload
from shared.fonts import JA_FONT, japanese_font_file

__all__ = ["png", "stand_pdf", "svg"]

LATIN_FONT = "Helvetica"
QUIET_ZONE = 4  # modules of white around the code; ISO/IEC 18004 requires 4 and readers need it


def _qr(payload: str, *, box_size: int = 10) -> qrcode.QRCode:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_size, border=QUIET_ZONE)
    code.add_data(payload)
    code.make(fit=True)  # the smallest version that holds the payload
    return code


def png(payload: str) -> bytes:
    from qrcode.image.pil import PilImage  # Pillow is needed for PNG only

    out = io.BytesIO()
    _qr(payload).make_image(image_factory=PilImage).save(out, format="PNG")
    return out.getvalue()


def svg(payload: str) -> bytes:
    # One <path> rather than a <rect> per module: small, and it scales without hairline gaps.
    out = io.BytesIO()
    _qr(payload).make_image(image_factory=qrcode.image.svg.SvgPathImage).save(out)
    return out.getvalue()


def stand_pdf(
    payload: str, *, store_name_ja: str, merchant_name: str, currency_ja: str, currency_en: str, app_name: str
) -> bytes:
    """A6 portrait PDF: the currency and the store name at the top, the QR code large in the
    middle, how to pay in Japanese and English at the bottom, with the app to pay in and the
    check that protects the resident from a sticker pasted over the shop's: their screen must
    show this shop's name before they pay.

    Only for a static code: a dynamic one is for a single sale and must not be printed."""
    from reportlab.lib.pagesizes import A6
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    if parse_payload(payload).dynamic:  # also refuses to print a payload that would not scan-and-pay
        raise ValueError("a dynamic QR (with an amount) is for one sale; print only a static QR")
    if JA_FONT not in pdfmetrics.getRegisteredFontNames():
        # A TrueType font is embedded as a subset of the glyphs each document uses.
        pdfmetrics.registerFont(TTFont(JA_FONT, str(japanese_font_file())))

    width, height = A6
    margin = 8 * mm
    usable = width - 2 * margin
    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A6, invariant=True)  # invariant: same input, same bytes
    pdf.setTitle(f"{store_name_ja} QR")
    pdf.setAuthor(currency_ja)

    def fitted(text: str, font: str, size: float, room: float) -> float:
        # Long names shrink to fit the width instead of running off the card.
        while size > 6 and pdfmetrics.stringWidth(text, font, size) > room:
            size -= 0.5
        return size

    def centred(text: str, font: str, size: float, y: float) -> None:
        pdf.setFont(font, fitted(text, font, size, usable))
        pdf.drawCentredString(width / 2, y, text)

    # Header: the currency, then the store as the resident knows it.
    centred(currency_ja, JA_FONT, 9, height - margin - 3 * mm)
    centred(store_name_ja, JA_FONT, 18, height - margin - 13 * mm)
    centred(merchant_name, LATIN_FONT, 8, height - margin - 19 * mm)

    # The code, drawn as vector squares (sharp at any printer resolution), quiet zone included
    # in its square so nothing is ever printed inside it.
    matrix = _qr(payload).get_matrix()  # includes the border
    side = 80 * mm  # most of the 105 mm width (the larger, the farther a phone reads it), leaving room below
    module = side / len(matrix)
    left, top = (width - side) / 2, height - margin - 22 * mm
    # A single path (one rectangle per run of dark modules) filled once: separate fills leave
    # anti-aliasing seams between touching modules on screen, and runs keep the file small.
    squares = pdf.beginPath()
    for row, cells in enumerate(matrix):
        col = 0
        while col < len(cells):
            if not cells[col]:
                col += 1
                continue
            start = col
            while col < len(cells) and cells[col]:
                col += 1
            squares.rect(left + start * module, top - (row + 1) * module, (col - start) * module, module)
    pdf.setFillColorRGB(0, 0, 0)
    pdf.drawPath(squares, stroke=0, fill=1)

    # How to pay (a static code: the resident types the amount).
    y = top - side - 4 * mm
    indent = margin + 2 * mm
    for line in how_to_pay_ja(app_name):
        pdf.setFont(JA_FONT, fitted(line, JA_FONT, 9.5, width - indent - margin))
        pdf.drawString(indent, y, line)
        y -= 4.5 * mm
    for line in how_to_pay_en(app_name, currency_en):
        centred(line, LATIN_FONT, 7, y - 0.5 * mm)
        y -= 3.5 * mm

    pdf.showPage()
    pdf.save()
    return out.getvalue()


def how_to_pay_ja(app_name: str) -> tuple[str, ...]:
    return (
        f"① {app_name} アプリでQRコードを読み取り、",
        "② 画面の店名がこのお店か確かめてから、",
        "③ 金額を入力して支払い、",
        "④ お店の方に画面を見せてください。",
    )


def how_to_pay_en(app_name: str, currency_en: str) -> tuple[str, ...]:
    return (
        f"Pay in {currency_en} with the {app_name} app: scan the code,",
        "check that your screen shows this shop's name, then enter the amount and show staff.",
    )
