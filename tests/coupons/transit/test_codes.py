"""The reference offline verifier (services/coupons/transit/codes.py), as a validator device runs
it: no database, no server, only the region's public keys and the device's clock."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.coupons.transit import codes
from services.coupons.transit.codes import ProductKind, RiderCategory, TicketClaims
from services.coupons.transit.errors import TicketCodeForged, TicketCodeStale, TicketExpired, TicketOtherOperator

AT = datetime(2026, 4, 1, 0, 30, tzinfo=UTC)  # on a step's start
BUS = uuid.UUID("01a00000-0000-7000-8000-000000000001")
KEY = Ed25519PrivateKey.generate()
KEYS = {codes.key_id(KEY.public_key()): KEY.public_key()}


def claims(**more) -> TicketClaims:
    values = dict(ticket_id=uuid.UUID("01a00000-0000-7000-8000-0000000000aa"), region="aizu", operator_id=BUS,
                  kind=ProductKind.MULTI_RIDE, rider_category=RiderCategory.ELDERLY,
                  valid_until=AT + timedelta(days=90), step=codes.step_of(AT))
    return TicketClaims(**{**values, **more})


def verify(code: str, at: datetime = AT, keys=KEYS, operator_id: uuid.UUID = BUS, region: str = "aizu") -> TicketClaims:
    return codes.verify(code, keys=keys, region=region, operator_id=operator_id, at=at)


def test_a_code_says_what_the_server_signed():
    code = codes.sign(KEY, claims())
    assert code.startswith("CKT1.") and len(code) < 200  # one small QR
    assert verify(code) == claims()


@pytest.mark.parametrize("seconds, accepted", [(-31, False), (-30, True), (0, True), (59, True), (60, False)])
def test_a_code_is_accepted_one_step_either_side_of_the_validators_clock(seconds, accepted):
    code = codes.sign(KEY, claims())
    at = AT + timedelta(seconds=seconds)
    if accepted:
        assert verify(code, at).step == codes.step_of(AT)
    else:
        with pytest.raises(TicketCodeStale):
            verify(code, at)


def test_every_changed_byte_makes_a_code_forged():
    code = codes.sign(KEY, claims())
    data = base64.urlsafe_b64decode(code[5:] + "=" * (-len(code[5:]) % 4))
    for i in range(len(data)):
        changed = bytearray(data)
        changed[i] ^= 0x01
        with pytest.raises(TicketCodeForged):
            verify("CKT1." + base64.urlsafe_b64encode(bytes(changed)).decode().rstrip("="))
    for junk in ("", "CKT1.", "CKT1.!!!", "CKT1." + "A" * 300, "ckt1." + code[5:], code[:-10]):
        with pytest.raises(TicketCodeForged):
            verify(junk)


def test_a_code_signed_by_an_unknown_key_is_forged_and_a_previous_key_still_counts():
    other = Ed25519PrivateKey.generate()
    code = codes.sign(other, claims())
    with pytest.raises(TicketCodeForged):
        verify(code)
    assert verify(code, keys={**KEYS, codes.key_id(other.public_key()): other.public_key()}) == claims()


def test_another_operators_or_regions_validator_refuses_the_code():
    code = codes.sign(KEY, claims())
    with pytest.raises(TicketOtherOperator):
        verify(code, operator_id=uuid.uuid4())
    with pytest.raises(TicketOtherOperator):
        verify(code, region="kitakata")


def test_a_code_of_a_ticket_past_its_validity_is_expired():
    code = codes.sign(KEY, claims(valid_until=AT + timedelta(seconds=10)))
    assert verify(code, AT + timedelta(seconds=9))
    with pytest.raises(TicketExpired):
        verify(code, AT + timedelta(seconds=10))


def test_the_codes_ahead_are_each_valid_in_their_own_window():
    keys = codes.SigningKeys(KEY, codes.key_id(KEY.public_key()), KEYS)
    ahead = codes.codes_from(keys, claims(), 10)
    for c in ahead:
        assert verify(c.code, c.valid_from).step == c.step
        assert verify(c.code, c.valid_until - timedelta(seconds=1)).step == c.step
        with pytest.raises(TicketCodeStale):
            verify(c.code, c.valid_until)
    assert ahead[-1].valid_until - ahead[0].valid_from == timedelta(seconds=30 * 12)


def test_a_published_key_round_trips():
    published = codes.raw_public_key(KEY.public_key())
    assert len(published) == 43
    key = codes.public_key_from_raw(published)
    assert codes.key_id(key) == codes.key_id(KEY.public_key())
