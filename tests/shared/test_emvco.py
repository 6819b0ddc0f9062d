"""Merchant QR codes: EMVCo MPM payloads and their images. No database.

Beyond our own parser, every payload is checked by two independent implementations: the PNG is
decoded by zxing-cpp (a C++ barcode reader), and the payload is read and validated by cemacqr
(an EMV QRCPS v1.1 library written for the CEMAC national profile, used here with its bare
EMVCo profile).
"""

from __future__ import annotations

import dataclasses
import io
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import cemacqr
import PIL.Image
import pypdf
import pytest
import zxingcpp

from services.wallet.payments.qr_render import png, stand_pdf, svg
from shared.emvco import (
    InvalidQR,
    MerchantQR,
    QRChecksumError,
    QRCurrencyError,
    QRFormatError,
    build_payload,
    crc16_ccitt_false,
    parse_payload,
)

GUID = "jp.chiikipay.aizu"
STORE = "8c1f6f0e-3f7a-4c1e-9a55-1d2b3c4d5e6f"
BASE = dict(guid=GUID, store_id=STORE, mcc="5812", name="Tsurugajo Soba", city="Aizuwakamatsu", name_ja="鶴ヶ城そば 本店")
STATIC = build_payload(**BASE, city_ja="会津若松市", terminal="REG-1")
DYNAMIC = build_payload(**BASE, city_ja="会津若松市", amount=1280, bill_number="R1-000123")
DYNAMIC_BARE = build_payload(**BASE, amount=98000, bill_number="A1")  # no city_ja, no terminal
PAYLOADS = {"static": STATIC, "dynamic": DYNAMIC, "dynamic-bare": DYNAMIC_BARE}


def tlv(tag: str, value: str) -> str:
    return f"{tag}{len(value):02d}{value}"


def with_crc(body: str) -> str:
    """Seal a hand-made body (everything before '6304') with a correct CRC, computed by
    cemacqr so that the checksum is not our own code checking itself."""
    return body + "6304" + cemacqr.crc16_hex((body + "6304").encode("utf-8"))


def replace_field(payload: str, tag: str, value: str) -> str:
    """Change one root field and re-seal: a payload that is well-formed and correctly
    checksummed, so that only the meaning of the field is wrong."""
    objects = cemacqr.parse_tlv(payload)
    body = "".join(tlv(o.tag, value if o.tag == tag else o.value) for o in objects if o.tag != "63")
    return with_crc(body)


# --- CRC ---------------------------------------------------------------------------------------


def test_crc_check_value() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_crc_agrees_with_cemacqr_over_utf8(payload: str) -> None:
    data = payload[:-4].encode("utf-8")
    assert len(data) > len(payload[:-4])  # the Japanese makes bytes and characters differ
    assert crc16_ccitt_false(data) == cemacqr.crc16(data)
    assert payload[-4:] == f"{crc16_ccitt_false(data):04X}"


# --- building and parsing ----------------------------------------------------------------------


def test_static_round_trip() -> None:
    assert parse_payload(STATIC) == MerchantQR(
        guid=GUID, store_id=STORE, mcc="5812", currency="392", country="JP",
        name="Tsurugajo Soba", city="Aizuwakamatsu", name_ja="鶴ヶ城そば 本店", city_ja="会津若松市",
        terminal="REG-1", amount=None, bill_number=None, dynamic=False,
    )  # fmt: skip


def test_dynamic_round_trip() -> None:
    qr = parse_payload(DYNAMIC)
    assert (qr.dynamic, qr.amount, qr.bill_number, qr.terminal) == (True, 1280, "R1-000123", None)
    assert (qr.guid, qr.store_id, qr.name_ja, qr.city_ja) == (GUID, STORE, "鶴ヶ城そば 本店", "会津若松市")
    bare = parse_payload(DYNAMIC_BARE)
    assert (bare.amount, bare.bill_number, bare.city_ja, bare.terminal) == (98000, "A1", None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        qr.amount = 1  # type: ignore[misc]


def test_fields_in_order_with_00_first_and_63_last() -> None:
    static = [o.tag for o in cemacqr.parse_tlv(STATIC)]
    assert static == ["00", "01", "26", "52", "53", "58", "59", "60", "62", "64", "63"]
    dynamic = [o.tag for o in cemacqr.parse_tlv(DYNAMIC)]
    assert dynamic == ["00", "01", "26", "52", "53", "54", "58", "59", "60", "62", "64", "63"]
    assert STATIC.startswith("000201" + "010211") and DYNAMIC.startswith("000201" + "010212")
    assert "5303392" in STATIC and "54041280" in DYNAMIC and "5802JP" in STATIC
    assert re.search(r"6304[0-9A-F]{4}$", STATIC)


def test_templates_are_nested_tlv() -> None:
    qr = cemacqr.parse_payload(DYNAMIC)
    assert qr.template("26") == {"00": GUID, "01": STORE}
    assert qr.template("62") == {"01": "R1-000123"}
    assert cemacqr.parse_payload(STATIC).template("62") == {"07": "REG-1"}
    assert qr.template("64") == {"00": "JA", "01": "鶴ヶ城そば 本店", "02": "会津若松市"}


def test_lengths_count_characters_not_bytes() -> None:
    assert "0205会津若松市" in STATIC  # 5 characters, 15 UTF-8 bytes
    assert "0108鶴ヶ城そば 本店" in STATIC
    language = "0002JA" + "0108鶴ヶ城そば 本店" + "0205会津若松市"
    assert f"64{len(language):02d}{language}" in STATIC and len(language) == 27


def test_long_names_are_cut_to_the_emvco_limits() -> None:
    payload = build_payload(
        **{
            **BASE,
            "name": "Aizu Wakamatsu Traditional Sake Brewery",
            "city": "Aizuwakamatsu-shi Fukushima",
            "name_ja": "会津若松伝統酒造株式会社鶴ヶ城前本店ならびに売店と食堂",
        },
        city_ja="福島県会津若松市追手町一丁目一番地",
    )
    qr = parse_payload(payload)
    assert qr.name == "Aizu Wakamatsu"  # cut at a word, not "Aizu Wakamatsu Traditiona"
    assert qr.city == "Aizuwakamatsu"  # a hyphen is a word boundary too
    assert len(qr.name_ja) == 25 and len(qr.city_ja or "") == 15  # no word boundaries in Japanese
    at_space = parse_payload(build_payload(**{**BASE, "name": "Aizu Bandai Soba Kitchen1 Annex"}))
    assert at_space.name == "Aizu Bandai Soba Kitchen1"  # the cut fell between words: all 25 kept
    unbroken = parse_payload(build_payload(**{**BASE, "name": "Inawashiroko-no-Hotorinoyado"}))
    assert unbroken.name == "Inawashiroko-no"
    assert cemacqr.validate(cemacqr.parse_payload(payload)).ok


def test_japanese_is_normalised_so_lengths_match_what_readers_count() -> None:
    decomposed = "か\u3099ま"  # が written as か + combining dakuten
    qr = parse_payload(build_payload(**{**BASE, "name_ja": decomposed}))
    assert qr.name_ja == "がま"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mcc": "541"}, "mcc must be 4 digits"),
        ({"mcc": "54a1"}, "mcc must be 4 digits"),
        ({"amount": 0, "bill_number": "B1"}, "positive whole number"),
        ({"amount": -5, "bill_number": "B1"}, "positive whole number"),
        ({"amount": 100.5, "bill_number": "B1"}, "positive whole number"),
        ({"amount": True, "bill_number": "B1"}, "positive whole number"),
        ({"amount": 10**13, "bill_number": "B1"}, "more than 13 digits"),
        ({"amount": 100}, "needs a bill_number"),
        ({"bill_number": "B1"}, "static QR"),
        ({"bill_number": "X" * 26, "amount": 1}, "at most 25"),
        ({"terminal": "T" * 26}, "at most 25"),
        ({"store_id": "store-1"}, "UUID"),
        ({"guid": "jp." + "x" * 40}, "guid"),
        ({"name": "鶴ヶ城"}, "ASCII"),
        ({"city": "  "}, "must not be empty"),
        ({"name_ja": ""}, "must not be empty"),
        ({"name_ja": "鶴\x00城"}, "control"),
    ],
)
def test_build_rejects_bad_input(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_payload(**{**BASE, **change})


# --- independent readers -----------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_png_decodes_to_the_payload_with_zxing(payload: str) -> None:
    image = PIL.Image.open(io.BytesIO(png(payload)))
    assert image.format == "PNG"
    results = zxingcpp.read_barcodes(image)
    assert len(results) == 1
    assert results[0].format == zxingcpp.BarcodeFormat.QRCode
    assert results[0].text == payload  # Japanese included: UTF-8 in byte mode survives


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_cemacqr_finds_no_emvco_violation(payload: str) -> None:
    # cemacqr (EMVCO profile, i.e. without its CEMAC overlay) covers: TLV framing with
    # lengths in characters, CRC-16 over the UTF-8 bytes, 00 = "01" first and 63 last, no
    # repeated IDs, the mandatory root fields (52, 53, 58, 59, 60) and at least one merchant
    # account template, the EMVCo maximum lengths (59 <= 25, 60 <= 15, 62 and 64 sub-fields),
    # MCC 4 digits, currency 3 digits, country 2 letters, the amount's EMVCo syntax, and template
    # 64 having 00 and 01. It does NOT cover: that the currency is JPY (its EMVCO profile allows
    # any code; its only currency rule is the CEMAC profile's 950), that a JPY amount has no
    # decimals ("100.5" is valid EMVCo), the contents of template 26 (the GUID: even its CEMAC
    # profile lists the GUID as undefined), 01 being 11/12 or matching the presence of an
    # amount, and our own choices (64 mandatory with "JA", a store UUID). Those are checked below.
    parsed = cemacqr.parse_payload(payload)
    report = cemacqr.validate(parsed, cemacqr.EMVCO)
    assert report.ok, str(report)
    assert report.fully_checked  # the EMVCO profile declares no rule it cannot check
    assert parsed.crc_ok and parsed.raw == payload

    # Our own checks of what cemacqr leaves open.
    assert parsed.currency == "392" and parsed.country_code == "JP"
    assert parsed.amount is None or re.fullmatch(r"[1-9][0-9]*", parsed.amount)
    assert list(parsed.merchant_accounts) == ["26"]
    assert parsed.get_in("26", "00") == GUID
    assert parsed.is_static is (parsed.amount is None)
    assert parsed.template("64")["00"] == "JA"


def test_cemacqr_does_not_see_what_our_parser_rejects() -> None:
    """Pins the gap above: both are valid EMVCo to cemacqr, only ours refuses them."""
    decimals = replace_field(DYNAMIC, "54", "100.5")
    dollars = replace_field(STATIC, "53", "840")
    for payload in (decimals, dollars):
        assert cemacqr.validate(cemacqr.parse_payload(payload), cemacqr.EMVCO).ok
        with pytest.raises(QRCurrencyError):
            parse_payload(payload)


# --- images ------------------------------------------------------------------------------------


def test_svg_is_xml_with_an_svg_root() -> None:
    root = ET.fromstring(svg(STATIC))
    assert root.tag in ("svg", "{http://www.w3.org/2000/svg}svg")
    assert root.find("{http://www.w3.org/2000/svg}path") is not None


STAND_TEXT = dict(
    store_name_ja="鶴ヶ城そば 本店", merchant_name="Tsurugajo Soba", currency_ja="会津若松市デジタル地域通貨",
    currency_en="Aizuwakamatsu digital regional currency", app_name="chiikipay",
)
# What a resident reads on the stand: the currency, the shop, the app, and the check against a
# sticker pasted over the shop's code (the name on their screen), in Japanese and English.
STAND_LINES = (
    "会津若松市デジタル地域通貨", "鶴ヶ城そば 本店", "Tsurugajo Soba",
    "① chiikipay アプリでQRコードを読み取り、", "② 画面の店名がこのお店か確かめてから、",
    "③ 金額を入力して支払い、", "④ お店の方に画面を見せてください。",
    "Pay in Aizuwakamatsu digital regional currency with the chiikipay app",
    "check that your screen shows this shop's name",
)
# The PDF standard fonts, which every reader has and need not be embedded (Latin only).
STANDARD_14 = {"Helvetica", "Helvetica-Bold", "Times-Roman", "Courier", "Symbol", "ZapfDingbats"}


@pytest.fixture(scope="module")
def stand() -> bytes:
    return stand_pdf(STATIC, **STAND_TEXT)


def test_stand_is_an_a6_pdf(stand: bytes) -> None:
    assert stand.startswith(b"%PDF-")
    page = pypdf.PdfReader(io.BytesIO(stand)).pages[0]
    # 105 x 148 mm in points
    assert (float(page.mediabox.width), float(page.mediabox.height)) == pytest.approx(
        (105 / 25.4 * 72, 148 / 25.4 * 72), abs=0.01
    )


def test_stand_embeds_its_japanese_font_and_says_how_to_pay(stand: bytes) -> None:
    """A PDF that only names its Japanese font prints boxes on a machine without one: every font
    but the Latin standard ones travels inside the file, as a subset."""
    page = pypdf.PdfReader(io.BytesIO(stand)).pages[0]
    fonts = [f.get_object() for f in page["/Resources"]["/Font"].values()]
    japanese = [f for f in fonts if f["/BaseFont"].lstrip("/") not in STANDARD_14]
    assert japanese, "no font besides the standard Latin ones"
    for font in japanese:
        descriptor = font["/FontDescriptor"].get_object()  # a Type0 font's would sit in its descendant
        assert {"/FontFile2", "/FontFile3"} & set(descriptor), f"{font['/BaseFont']} is not embedded"
        assert font["/BaseFont"].lstrip("/").endswith("+IPAexGothic")  # subset: only the glyphs used
    text = page.extract_text()
    for line in STAND_LINES:
        assert line in text
    assert len(stand) < 100_000  # the subset, not the 6 MB font


def test_stand_is_only_for_static_codes() -> None:
    with pytest.raises(ValueError, match="static"):
        stand_pdf(DYNAMIC, **STAND_TEXT)


# poppler is how a shop's PC or a print shop renders the stand; the checks it adds (the printed
# code scans, the text maps back) are also made above without it, from the PDF itself.
@pytest.mark.skipif(not shutil.which("pdftoppm"), reason="poppler-utils not installed (apt-get install poppler-utils)")
def test_stand_renders_and_its_qr_scans(stand: bytes, tmp_path: Path) -> None:
    (tmp_path / "stand.pdf").write_bytes(stand)
    subprocess.run(["pdftoppm", "-r", "150", "-png", "-singlefile", "stand.pdf", "stand"], cwd=tmp_path, check=True)
    results = zxingcpp.read_barcodes(PIL.Image.open(tmp_path / "stand.png"))
    assert [r.text for r in results] == [STATIC]
    # The Japanese is real text in the PDF (not tofu or outlines): poppler maps it back.
    text = subprocess.run(["pdftotext", "stand.pdf", "-"], cwd=tmp_path, check=True, capture_output=True, text=True)
    for line in STAND_LINES:
        assert line in text.stdout
    fonts = subprocess.run(["pdffonts", "stand.pdf"], cwd=tmp_path, check=True, capture_output=True, text=True)
    ipaex = [row.split() for row in fonts.stdout.splitlines() if "IPAexGothic" in row]
    assert ipaex and all(row[-5:-3] == ["yes", "yes"] for row in ipaex)  # emb, sub


# --- rejections --------------------------------------------------------------------------------


def test_wrong_crc_is_a_checksum_error() -> None:
    wrong = f"{(int(STATIC[-4:], 16) ^ 0x0001):04X}"
    with pytest.raises(QRChecksumError):
        parse_payload(STATIC[:-4] + wrong)
    assert not cemacqr.parse_payload(STATIC[:-4] + wrong).crc_ok  # cemacqr agrees


def test_tampered_amount_is_a_checksum_error() -> None:
    tampered = DYNAMIC.replace("54041280", "54041200")
    assert tampered != DYNAMIC
    with pytest.raises(QRChecksumError):
        parse_payload(tampered)


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_every_single_character_change_is_rejected(payload: str) -> None:
    """Substituting, deleting or inserting any one character never yields a payable code."""
    variants = set()
    for i, ch in enumerate(payload):
        for other in ("0", "1", "9", "A", "a", " ", "会"):
            if other != ch:
                variants.add(payload[:i] + other + payload[i + 1 :])
        variants.add(payload[:i] + payload[i + 1 :])
        variants.add(payload[:i] + "5" + payload[i:])
    for variant in variants:
        with pytest.raises((QRChecksumError, QRFormatError)):
            parse_payload(variant)


@pytest.mark.parametrize("cut", [1, 4, 8, 30, len(STATIC) // 2])
def test_truncated_is_a_format_error(cut: int) -> None:
    with pytest.raises(QRFormatError):
        parse_payload(STATIC[:-cut])


def test_currency_not_yen_is_a_currency_error() -> None:
    with pytest.raises(QRCurrencyError, match="392"):
        parse_payload(replace_field(STATIC, "53", "840"))


@pytest.mark.parametrize("amount", ["100.5", "100.", "0", "0100", "-100", "1e3"])
def test_amount_not_whole_yen_is_a_currency_error(amount: str) -> None:
    with pytest.raises(QRCurrencyError):
        parse_payload(replace_field(DYNAMIC, "54", amount))


def test_00_not_first_is_a_format_error() -> None:
    objects = cemacqr.parse_tlv(STATIC)
    swapped = [objects[1], objects[0], *objects[2:-1]]  # 01 before 00, then re-sealed
    with pytest.raises(QRFormatError, match="first"):
        parse_payload(with_crc("".join(o.as_text() for o in swapped)))


def test_crc_not_last_is_a_format_error() -> None:
    with pytest.raises(QRFormatError, match="last"):
        parse_payload(STATIC + "9903abc")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("01", "13"),  # neither static nor dynamic
        ("52", "54A1"),  # MCC not digits
        ("59", ""),  # empty mandatory field
        ("26", tlv("00", GUID)),  # no store id
        ("26", tlv("00", GUID) + tlv("01", "not-a-uuid")),
        ("64", tlv("00", "EN") + tlv("01", "Soba")),  # not the Japanese template
        ("62", "0107REG-1"),  # framing broken inside a template
    ],
)
def test_bad_fields_are_format_errors(field: str, value: str) -> None:
    with pytest.raises(QRFormatError):
        parse_payload(replace_field(STATIC, field, value))


def test_static_with_amount_or_dynamic_without_is_a_format_error() -> None:
    static_with_amount = replace_field(STATIC, "01", "11").replace("5303392", "5303392" + tlv("54", "500"))
    dynamic_without = replace_field(DYNAMIC, "01", "11")
    for payload in (with_crc(static_with_amount[:-8]), dynamic_without):
        with pytest.raises(QRFormatError, match="dynamic"):
            parse_payload(payload)


def test_repeated_field_is_a_format_error() -> None:
    body = STATIC[:-8].replace("5802JP", "5802JP5802US")
    with pytest.raises(QRFormatError, match="twice"):
        parse_payload(with_crc(body))


@pytest.mark.parametrize(
    "garbage", ["", "hello", "https://example.jp/pay?store=1", "0002", "000201", "63041234", "０００２０１", "\n"]
)
def test_garbage_is_a_format_error(garbage: str) -> None:
    with pytest.raises(QRFormatError):
        parse_payload(garbage)


def test_errors_are_value_errors_and_guid_is_not_judged() -> None:
    assert issubclass(InvalidQR, ValueError)
    for cls in (QRFormatError, QRChecksumError, QRCurrencyError):
        assert issubclass(cls, InvalidQR)
    other_region = build_payload(**{**BASE, "guid": "jp.chiikipay.kitakata"})
    assert parse_payload(other_region).guid == "jp.chiikipay.kitakata"  # the caller decides
