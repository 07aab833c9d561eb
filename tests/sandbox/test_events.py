"""Events: shape, retrieve, list filters, Connect scoping."""

from __future__ import annotations

import httpx
import pytest
import stripe

from tests.sandbox.helpers import API_KEY


def test_event_shape_and_retrieve(client: stripe.StripeClient, api: httpx.Client) -> None:
    response = api.post(
        "/v1/customers", data={"email": "e@example.com"}, headers={"Idempotency-Key": "evt-shape-1"}
    )
    customer_id = response.json()["id"]
    [event] = client.v1.events.list(params={"type": "customer.created"}).data
    assert event.id.startswith("evt_")
    assert event.api_version == stripe.api_version
    assert event.livemode is False
    assert event.data.object["id"] == customer_id
    assert event.request is not None
    assert event.request.id == response.headers["Request-Id"]
    assert event.request.idempotency_key == "evt-shape-1"
    assert event.pending_webhooks == 0 or event.pending_webhooks == 1
    assert "account" not in event
    again = client.v1.events.retrieve(event.id)
    assert again.data.object["email"] == "e@example.com"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.events.retrieve("evt_missing")


def test_list_filters(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": "f@example.com"})
    client.v1.customers.update(customer.id, params={"name": "F"})
    product = client.v1.products.create(params={"name": "P"})
    types = [e.type for e in client.v1.events.list().data]
    assert types == ["product.created", "customer.updated", "customer.created"]
    assert [
        e.type
        for e in client.v1.events.list(
            params={"types": ["customer.created", "product.created"]}
        ).data
    ] == ["product.created", "customer.created"]
    wildcard = client.v1.events.list(params={"type": "customer.*"})
    assert [e.type for e in wildcard.data] == ["customer.updated", "customer.created"]
    created = client.v1.events.list().data[0].created
    assert client.v1.events.list(params={"created": {"gt": created}}).data == []
    assert len(client.v1.events.list(params={"created": {"gte": created}}).data) >= 1
    assert product.id


def test_connect_events_need_the_stripe_account_header(
    client: stripe.StripeClient, ctl: httpx.Client, sandbox_url: str
) -> None:
    account = client.v1.accounts.create(params={"type": "express"})
    ctl.post(f"/accounts/{account.id}/complete_onboarding")
    assert client.v1.events.list(params={"type": "account.updated"}).data == []
    connected = stripe.StripeClient(
        API_KEY, base_addresses={"api": sandbox_url}, stripe_account=account.id
    )
    [event] = connected.v1.events.list(params={"type": "account.updated"}).data
    assert event.account == account.id
