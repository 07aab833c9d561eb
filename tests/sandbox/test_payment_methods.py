"""Payment methods from test tokens: attach, default, detach, list."""

from __future__ import annotations

import httpx
import pytest
import stripe

from tests.sandbox.helpers import make_customer


def test_attaching_a_token_creates_a_card(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": "c@example.com"})
    visa = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    master = client.v1.payment_methods.attach(
        "pm_card_mastercard", params={"customer": customer.id}
    )
    assert visa.id.startswith("pm_") and visa.id != "pm_card_visa"
    assert (visa.type, visa["card"]["brand"], visa["card"]["last4"]) == ("card", "visa", "4242")
    assert (master["card"]["brand"], master["card"]["last4"]) == ("mastercard", "4444")
    assert visa.customer == customer.id

    listed = client.v1.payment_methods.list(params={"customer": customer.id, "type": "card"})
    assert {pm.id for pm in listed.data} == {visa.id, master.id}
    via_customer = client.v1.customers.payment_methods.list(customer.id)
    assert {pm.id for pm in via_customer.data} == {visa.id, master.id}


def test_declining_card_attaches_fine(client: stripe.StripeClient) -> None:
    customer = make_customer(client, card="pm_card_chargeDeclined")
    pm_id = customer["invoice_settings"]["default_payment_method"]
    assert isinstance(pm_id, str)
    pm = client.v1.payment_methods.retrieve(pm_id)
    assert pm["card"]["last4"] == "0002"
    assert pm.customer == customer.id


def test_default_payment_method_must_be_attached(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": "d@example.com"})
    other = client.v1.customers.create(params={"email": "o@example.com"})
    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": other.id})
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.customers.update(
            customer.id, params={"invoice_settings": {"default_payment_method": pm.id}}
        )
    assert excinfo.value.param == "invoice_settings[default_payment_method]"


def test_create_customer_with_payment_method_token(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(
        params={
            "email": "t@example.com",
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    pm_id = customer["invoice_settings"]["default_payment_method"]
    assert isinstance(pm_id, str) and pm_id.startswith("pm_") and pm_id != "pm_card_visa"
    assert client.v1.payment_methods.retrieve(pm_id).customer == customer.id


def test_detach_clears_the_default(client: stripe.StripeClient) -> None:
    customer = make_customer(client)
    pm_id = customer["invoice_settings"]["default_payment_method"]
    assert isinstance(pm_id, str)
    detached = client.v1.payment_methods.detach(pm_id)
    assert detached.customer is None
    assert (
        client.v1.customers.retrieve(customer.id)["invoice_settings"]["default_payment_method"]
        is None
    )
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_methods.detach(pm_id)


def test_unknown_payment_method_is_404(client: stripe.StripeClient, api: httpx.Client) -> None:
    customer = client.v1.customers.create(params={"email": "u@example.com"})
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.payment_methods.attach("pm_nope", params={"customer": customer.id})
    assert excinfo.value.http_status == 404
    assert excinfo.value.code == "resource_missing"
    missing = api.post("/v1/payment_methods/pm_card_visa/attach", data={})
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "customer"
