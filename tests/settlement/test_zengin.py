"""The 全銀 総合振込 writer (services/settlement/zengin.py), read back by an independent parser
(tests/settlement/zengin_reader.py): record lengths, order, trailer count and sum, character set;
and the conversion of names as people type them into the file's characters."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.settlement import zengin
from services.settlement.zengin import Account, AccountType, NotZenginText, Requester, Transfer
from tests.settlement import zengin_reader
from tests.settlement.zengin_reader import Malformed

SOURCE = Account("0126", "ﾄｳﾎｳ", "416", "ｱｲﾂﾞﾜｶﾏﾂｼﾔｸｼﾖ", AccountType.ORDINARY, "0001234")
REQUESTER = Requester("1234567890", "ｱｲﾂﾞﾁｲｷﾂｳｶｽｲｼﾝｷﾖｳｷﾞｶｲ", SOURCE)
TEAHOUSE = Account("0126", "ﾄｳﾎｳ", "401", "ｱｲﾂﾞ", AccountType.ORDINARY, "1234501")
FARM = Account("9900", "ﾕｳﾁﾖ", "019", "ｾﾞﾛｲﾁｷﾕｳ", AccountType.SAVINGS, "7654321")
SHOP = Account("0001", "ﾐｽﾞﾎ", "001", "ﾄｳｷﾖｳ", AccountType.CURRENT, "0000001")


def transfers() -> list[Transfer]:
    return [
        Transfer(TEAHOUSE, "ﾂﾙｶﾞｼﾞﾖｳﾁﾔﾔ", 123_456, "1"),
        Transfer(FARM, "ﾐﾅﾄ(ﾕ", 9_999_999_999),
        Transfer(SHOP, "ｶ)ﾅﾉｶﾏﾁ ﾖﾛｽﾞﾔ", 1, "42", "0000000007"),
    ]


# --- the file ------------------------------------------------------------------------------------


def test_the_file_reads_back_record_by_record_as_written():
    content = zengin.write(REQUESTER, date(2026, 11, 16), transfers())
    parsed = zengin_reader.read(content)  # lengths, order, count, sum, characters: or it raises
    assert len(content) == 6 * 122
    assert parsed.header == {
        "kind": "1", "type_code": "21", "code_division": "0", "requester_code": "1234567890",
        "requester_name": "ｱｲﾂﾞﾁｲｷﾂｳｶｽｲｼﾝｷﾖｳｷﾞｶｲ", "transfer_date": "1116", "bank_code": "0126",
        "bank_name": "ﾄｳﾎｳ", "branch_code": "416", "branch_name": "ｱｲﾂﾞﾜｶﾏﾂｼﾔｸｼﾖ", "account_type": "1",
        "account_number": "0001234", "dummy": " " * 17,
    }
    first, second, third = parsed.data
    assert (first["bank_code"], first["branch_code"], first["branch_name"], first["account_type"],
            first["account_number"], first["payee_name"], first["amount"], first["customer_code_1"],
            first["customer_code_2"]) == ("0126", "401", "ｱｲﾂﾞ", "1", "1234501", "ﾂﾙｶﾞｼﾞﾖｳﾁﾔﾔ", "0000123456",
                                           "0000000001", " " * 10)
    assert (second["bank_code"], second["account_type"], second["amount"]) == ("9900", "4", "9999999999")
    assert (third["account_type"], third["amount"], third["customer_code_2"]) == ("2", "0000000001", "0000000007")
    assert parsed.trailer["count"] == "000003"
    assert parsed.trailer["total"] == f"{123_456 + 9_999_999_999 + 1:012d}"


def test_the_same_transfers_make_the_same_bytes():
    assert zengin.write(REQUESTER, date(2027, 1, 4), transfers()) == zengin.write(REQUESTER, date(2027, 1, 4), transfers())


def test_the_reader_catches_what_a_broken_writer_would_do():
    """The parser is no rubber stamp: each defect of a file is named."""
    good = zengin.write(REQUESTER, date(2026, 11, 16), transfers())
    records = good.split(b"\r\n")[:-1]
    broken = {
        "a short record": b"\r\n".join([records[0][:-1], *records[1:]]) + b"\r\n",
        "LF only": good.replace(b"\r\n", b"\n"),
        "no final CR LF": good[:-2],
        "a count off by one": good.replace(b"8000003", b"8000002"),
        "a wrong total": b"\r\n".join([*records[:-2], b"8000003" + b"0" * 12 + b" " * 101, records[-1]]) + b"\r\n",
        "a small kana": good.replace("ﾖｳ".encode("cp932"), "ｮｳ".encode("cp932"), 1),
        "lower case": good.replace(b"1234567890", b"123456789a"),
        "trailer before data": b"\r\n".join([records[0], records[4], *records[1:4], records[5]]) + b"\r\n",
    }
    for defect, content in broken.items():
        with pytest.raises(Malformed):
            zengin_reader.read(content)
            pytest.fail(f"the reader accepted a file with {defect}")


@pytest.mark.parametrize("transfer, why", [
    (Transfer(TEAHOUSE, "ﾂﾙｶﾞｼﾞﾖｳ", 0), "amount"),
    (Transfer(TEAHOUSE, "ﾂﾙｶﾞｼﾞﾖｳ", -5), "amount"),
    (Transfer(TEAHOUSE, "ﾂﾙｶﾞｼﾞﾖｳ", 10_000_000_000), "amount"),
    (Transfer(TEAHOUSE, "ｱ" * 31, 100), "longer than 30"),
    (Transfer(TEAHOUSE, "鶴ヶ城", 100), "outside the file's set"),
    (Transfer(TEAHOUSE, "tsuru", 100), "outside the file's set"),
    (Transfer(TEAHOUSE, "ﾂﾙ", 100, "12345678901"), "customer code 1"),
    (Transfer(TEAHOUSE, "ﾂﾙ", 100, "12A"), "customer code 1"),
    (Transfer(Account("126", "ﾄｳﾎｳ", "401", "ｱｲﾂﾞ", AccountType.ORDINARY, "1234501"), "ﾂﾙ", 100), "bank code"),
    (Transfer(Account("0126", "ﾄｳﾎｳ", "401", "ｱｲﾂﾞ", AccountType.ORDINARY, "123450"), "ﾂﾙ", 100), "account number"),
])
def test_a_field_that_does_not_fit_writes_no_file(transfer, why):
    with pytest.raises(ValueError, match=why):
        zengin.write(REQUESTER, date(2026, 11, 16), [*transfers(), transfer])


def test_a_file_without_transfers_is_not_written():
    with pytest.raises(ValueError, match="at least one transfer"):
        zengin.write(REQUESTER, date(2026, 11, 16), [])


def test_a_bad_requester_writes_no_file():
    with pytest.raises(ValueError, match="requester code"):
        zengin.write(Requester("12345", REQUESTER.name, SOURCE), date(2026, 11, 16), transfers())
    with pytest.raises(ValueError, match="longer than 40"):
        zengin.write(Requester(REQUESTER.code, "ｱ" * 41, SOURCE), date(2026, 11, 16), transfers())


_NAME_CHARACTERS = sorted(zengin.ZENGIN_CHARACTERS)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(
    st.text(alphabet=_NAME_CHARACTERS, min_size=1, max_size=30).filter(lambda s: s.strip() == s and s),
    st.integers(1, zengin.MAX_AMOUNT),
    st.sampled_from(list(AccountType)),
), min_size=1, max_size=30), st.dates(date(2026, 1, 1), date(2099, 12, 31)))
def test_any_transfers_read_back_with_their_names_amounts_and_sum(rows, transfer_date):
    content = zengin.write(REQUESTER, transfer_date, [
        Transfer(Account("0126", "ﾄｳﾎｳ", "401", "ｱｲﾂﾞ", kind, "1234501"), name, amount) for name, amount, kind in rows
    ])
    parsed = zengin_reader.read(content)
    assert [(d["payee_name"], int(d["amount"]), d["account_type"]) for d in parsed.data] == [
        (name, amount, {"ordinary": "1", "current": "2", "savings": "4"}[kind]) for name, amount, kind in rows
    ]
    assert int(parsed.trailer["total"]) == sum(amount for _, amount, _ in rows)
    assert parsed.header["transfer_date"] == f"{transfer_date.month:02d}{transfer_date.day:02d}"


# --- names as people type them -----------------------------------------------------------------------


@pytest.mark.parametrize("typed, in_file", [
    ("ヤマダ　タロウ", "ﾔﾏﾀﾞ ﾀﾛｳ"),  # full-width katakana and the ideographic space
    ("やまだ はなこ", "ﾔﾏﾀﾞ ﾊﾅｺ"),  # hiragana
    ("ﾂﾙｶﾞｼﾞｮｳ", "ﾂﾙｶﾞｼﾞﾖｳ"),  # half-width already; the small ｮ written large
    ("ミナトファーム", "ﾐﾅﾄﾌｱ-ﾑ"),  # small ァ large, the long vowel a hyphen
    ("ヴィラ・パーク", "ｳﾞｲﾗ.ﾊﾟ-ｸ"),
    ("カ）ナノカマチ", "ｶ)ﾅﾉｶﾏﾁ"),  # full-width ) (株式会社 abbreviated as banks write it)
    ("Ｔｓｕｒｕ  Shop 1", "TSURU SHOP 1"),  # full-width and lower-case ASCII, a run of spaces
    ("  ｱｲﾂﾞ ", "ｱｲﾂﾞ"),
    ("ヲヰヱヶ", "ｦｲｴｹ"),
])
def test_a_typed_name_becomes_the_files_characters(typed, in_file):
    assert zengin.to_zengin(typed) == in_file


@pytest.mark.parametrize("typed, refused", [
    ("山田太郎", ["山", "田", "太", "郎"]),
    ("ツルガ城茶屋", ["城", "茶", "屋"]),
    ("Café", ["é"]),
    ("SHOP@AIZU", ["@"]),
    ("ﾊﾟﾝ🍞", ["🍞"]),
    ("㈱ツルガ", ["株"]),
])
def test_a_name_with_characters_the_file_cannot_carry_is_refused_with_them(typed, refused):
    with pytest.raises(NotZenginText) as caught:
        zengin.to_zengin(typed)
    assert caught.value.characters == refused


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_a_converted_name_is_one_byte_a_character_in_cp932_and_stays_as_it_is(typed):
    try:
        converted = zengin.to_zengin(typed)
    except NotZenginText as refused:
        assert refused.characters and all(ch not in zengin.ZENGIN_CHARACTERS for ch in refused.characters)
        return
    encoded = converted.encode("cp932")
    assert len(encoded) == len(converted)
    assert all(b in zengin_reader.ALLOWED for b in encoded)
    assert zengin.to_zengin(converted) == converted


def test_every_bank_and_branch_name_of_the_zengin_data_fits_the_file():
    from zengin_code import Bank

    for bank in Bank.all.values():
        for kana in [bank.kana, *(b.kana for b in bank.branches.values())]:
            name = zengin.fit_name(kana, 15)
            assert 0 < len(name) <= 15 and all(b in zengin_reader.ALLOWED for b in name.encode("cp932"))
