"""Every money field takes a JSON integer exactly as written: a number with a fraction or an
exponent is refused, on every request model that carries an amount, and through each parser the
API uses (request bodies, the bank's signed webhook)."""

from __future__ import annotations

import importlib
import pkgutil
import typing

import pytest
from pydantic import BaseModel, ValidationError

import services
from shared.money import _whole_number
from tests.helpers import assert_problem, idem, snapshot
from tests.wallet.test_bank_webhook import URL, event, sign, signed
from tests.wallet.test_payments import pay, store_of
from tests.wallet.test_topups import INEXACT


def _money_fields() -> list[tuple[type[BaseModel], str]]:
    """(model, field) for every request field validated as a whole number, in every service."""
    found = []
    for module in pkgutil.walk_packages(services.__path__, "services."):
        if not module.name.endswith("schemas"):
            continue
        for model in vars(importlib.import_module(module.name)).values():
            if not (isinstance(model, type) and issubclass(model, BaseModel)) or model.__module__ != module.name:
                continue
            for name, field in model.model_fields.items():
                validators = [m.func for m in field.metadata if hasattr(m, "func")]
                for arg in typing.get_args(field.annotation):  # optional amounts: Amount | None
                    validators += [m.func for m in getattr(arg, "__metadata__", ()) if hasattr(m, "func")]
                if _whole_number in validators:
                    found.append((model, name))
    return found


MONEY_FIELDS = _money_fields()


def test_the_sweep_finds_the_money_fields():
    names = {f"{model.__name__}.{field}" for model, field in MONEY_FIELDS}
    assert {"TopupRequest.amount", "PaymentCreate.amount", "RefundCreate.amount", "BankTopupEvent.amount"} <= names


@pytest.mark.parametrize(("model", "field"), MONEY_FIELDS, ids=[f"{m.__name__}.{f}" for m, f in MONEY_FIELDS])
@pytest.mark.parametrize("number", INEXACT)
def test_every_money_field_refuses_a_fraction_or_exponent(model, field, number):
    with pytest.raises(ValidationError) as refused:
        model.model_validate_json(f'{{"{field}": {number}}}')
    assert any(e["loc"] == (field,) and "whole number" in e["msg"] for e in refused.value.errors())


@pytest.mark.parametrize("number", ["999.99999999999999999", "100.0000000000000001", "1e3"])
async def test_a_payment_of_an_inexact_amount_is_refused(client, tokens, town, sessionmaker, number):
    shop = await store_of(client, tokens, town)
    before = await snapshot(sessionmaker)
    response = await client.post(
        "/v1/payments", content=f'{{"qr": "{shop["payload"]}", "amount": {number}}}'.encode(),
        headers={**idem(tokens.resident()), "Content-Type": "application/json"},
    )
    assert_problem(response, 422, "validation-error")
    assert await snapshot(sessionmaker) == before
    assert (await pay(client, tokens, shop["payload"], 1_000)).status_code == 201  # the same, whole, pays


async def test_a_bank_topup_of_an_inexact_amount_is_refused(client, tokens, town, settings, clock, sessionmaker):
    wallet = (await client.get("/v1/wallet", headers=tokens.resident())).json()
    body, _ = signed(settings, clock, event(wallet["id"], amount=5_000))
    inexact, headers = sign(settings, clock, body.replace(b'"amount": 5000', b'"amount": 4999.99999999999999999'))
    assert inexact != body
    before = await snapshot(sessionmaker)
    assert_problem(await client.post(URL, content=inexact, headers=headers), 422, "validation-error")
    assert await snapshot(sessionmaker) == before
