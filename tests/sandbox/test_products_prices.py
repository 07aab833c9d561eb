"""Products and prices: recurring prices, lookup keys, filters."""

from __future__ import annotations

import pytest
import stripe

from tests.sandbox.helpers import raw


def test_product_and_recurring_price(client: stripe.StripeClient) -> None:
    product = client.v1.products.create(params={"name": "Pro", "metadata": {"tier": "pro"}})
    assert product.id.startswith("prod_") and product.active is True
    price = client.v1.prices.create(
        params={
            "product": product.id,
            "unit_amount": 1500,
            "currency": "usd",
            "recurring": {"interval": "month"},
            "lookup_key": "pro_monthly",
        }
    )
    assert price.id.startswith("price_")
    assert price.type == "recurring"
    assert price.recurring is not None
    assert (price.recurring.interval, price.recurring.interval_count) == ("month", 1)
    assert (price.unit_amount, price.currency, price.product) == (1500, "usd", product.id)
    assert client.v1.prices.retrieve(price.id).lookup_key == "pro_monthly"
    assert client.v1.products.retrieve(product.id).metadata.to_dict() == {"tier": "pro"}


def test_list_prices_by_lookup_keys_and_active(client: stripe.StripeClient) -> None:
    product = client.v1.products.create(params={"name": "Team"})
    base = {"product": product.id, "currency": "usd", "recurring": {"interval": "year"}}
    yearly = client.v1.prices.create(
        params=raw({**base, "unit_amount": 9900, "lookup_key": "team_y"})
    )
    old = client.v1.prices.create(
        params=raw({**base, "unit_amount": 8900, "lookup_key": "team_old"})
    )
    client.v1.prices.update(old.id, params={"active": False})

    found = client.v1.prices.list(params={"lookup_keys": ["team_y", "team_old"]})
    assert {p.id for p in found.data} == {yearly.id, old.id}
    active = client.v1.prices.list(params={"lookup_keys": ["team_y", "team_old"], "active": True})
    assert [p.id for p in active.data] == [yearly.id]


def test_lookup_keys_are_unique_unless_transferred(client: stripe.StripeClient) -> None:
    product = client.v1.products.create(params={"name": "Solo"})
    params = {
        "product": product.id,
        "currency": "usd",
        "unit_amount": 500,
        "recurring": {"interval": "month"},
        "lookup_key": "solo",
    }
    first = client.v1.prices.create(params=raw(params))
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.prices.create(params=raw(params))
    assert excinfo.value.param == "lookup_key"
    second = client.v1.prices.create(params=raw({**params, "transfer_lookup_key": True}))
    assert second.lookup_key == "solo"
    assert client.v1.prices.retrieve(first.id).lookup_key is None


def test_price_validation(client: stripe.StripeClient) -> None:
    product = client.v1.products.create(params={"name": "Bad"})
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.prices.create(
            params=raw(
                {
                    "product": product.id,
                    "currency": "usd",
                    "unit_amount": 100,
                    "recurring": {"interval": "fortnight"},
                }
            )
        )
    assert excinfo.value.param == "recurring[interval]"
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.prices.create(params=raw({"product": product.id, "unit_amount": 100}))
    assert excinfo.value.param == "currency"
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.prices.create(
            params={"product": "prod_missing", "currency": "usd", "unit_amount": 1}
        )
    assert excinfo.value.http_status == 404


def test_expanding_list_and_nested_fields(client: stripe.StripeClient) -> None:
    product = client.v1.products.create(params={"name": "Expandable"})
    client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 100,
            "recurring": {"interval": "month"},
            "lookup_key": "exp",
        }
    )
    listed = client.v1.prices.list(params={"lookup_keys": ["exp"], "expand": ["data.product"]})
    expanded = listed.data[0].product
    assert isinstance(expanded, stripe.Product)
    assert expanded.name == "Expandable"
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.prices.list(params={"expand": ["data.nonsense"]})
    assert excinfo.value.param == "expand[0]"


def test_price_with_product_data_and_product_list(client: stripe.StripeClient) -> None:
    price = client.v1.prices.create(
        params={"currency": "eur", "unit_amount": 700, "product_data": {"name": "Inline"}}
    )
    assert price.type == "one_time"
    assert isinstance(price.product, str)
    product = client.v1.products.retrieve(price.product)
    assert product.name == "Inline"
    assert price.product in [p.id for p in client.v1.products.list(params={"active": True}).data]


def test_update_and_delete_products(client: stripe.StripeClient) -> None:
    product = client.v1.products.create(params={"name": "Old name"})
    updated = client.v1.products.update(product.id, params={"name": "New", "active": False})
    assert (updated.name, updated.active) == ("New", False)
    assert client.v1.products.list(params={"active": False}).data[0].id == product.id
    with_price = client.v1.products.create(
        params={"name": "Priced", "default_price_data": {"currency": "usd", "unit_amount": 300}}
    )
    assert isinstance(with_price.default_price, str)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.products.delete(with_price.id)
    assert client.v1.products.delete(product.id).deleted is True
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.products.retrieve(product.id)
    assert excinfo.value.http_status == 404
    price = client.v1.prices.update(
        with_price.default_price, params={"nickname": "basic", "metadata": {"k": "v"}}
    )
    assert price.nickname == "basic"
