"""Idempotency like Stripe's: replays, mismatches, in-flight conflicts, expiry."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest
import stripe

from tests.sandbox.helpers import API_KEY, advance, wait_for


def _key() -> str:
    return f"test-{uuid.uuid4()}"


def test_same_key_same_params_replays(
    client: stripe.StripeClient, api: httpx.Client, ctl: httpx.Client
) -> None:
    key = _key()
    first = client.v1.customers.create(
        params={"email": "i@example.com"}, options={"idempotency_key": key}
    )
    second = client.v1.customers.create(
        params={"email": "i@example.com"}, options={"idempotency_key": key}
    )
    assert second.id == first.id
    raw = api.post(
        "/v1/customers", data={"email": "i@example.com"}, headers={"Idempotency-Key": key}
    )
    assert raw.status_code == 200
    assert raw.json()["id"] == first.id
    assert raw.headers["Idempotent-Replayed"] == "true"
    assert raw.headers["Original-Request"].startswith("req_")
    stats = ctl.get("/stats").json()
    assert stats["objects"]["customer"]["live"] == 1
    assert stats["idempotent_replays"] == 2
    assert stats["events"]["customer.created"] == 1
    fresh = api.post(
        "/v1/customers", data={"email": "i@example.com"}, headers={"Idempotency-Key": _key()}
    )
    assert "Idempotent-Replayed" not in fresh.headers


def test_same_key_other_params_is_an_idempotency_error(client: stripe.StripeClient) -> None:
    key = _key()
    client.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": key})
    with pytest.raises(stripe.IdempotencyError) as excinfo:
        client.v1.customers.create(
            params={"email": "b@example.com"}, options={"idempotency_key": key}
        )
    assert excinfo.value.http_status == 400
    with pytest.raises(stripe.IdempotencyError):
        client.v1.products.create(params={"name": "x"}, options={"idempotency_key": key})


def test_errors_after_execution_began_are_replayed(
    client: stripe.StripeClient, api: httpx.Client
) -> None:
    key = _key()
    first = api.post(
        "/v1/customers/cus_missing", data={"name": "x"}, headers={"Idempotency-Key": key}
    )
    again = api.post(
        "/v1/customers/cus_missing", data={"name": "x"}, headers={"Idempotency-Key": key}
    )
    assert first.status_code == again.status_code == 404
    assert again.headers["Idempotent-Replayed"] == "true"

    # A request that fails validation never began executing: nothing is saved.
    bad_key = _key()
    bad = api.post("/v1/customers", data={"emial": "x"}, headers={"Idempotency-Key": bad_key})
    assert bad.status_code == 400
    fixed = api.post("/v1/customers", data={"emial": "x"}, headers={"Idempotency-Key": bad_key})
    assert "Idempotent-Replayed" not in fixed.headers

    declined_key = _key()
    customer = client.v1.customers.create(params={"email": "card@example.com"})
    pm = client.v1.payment_methods.attach(
        "pm_card_chargeDeclined", params={"customer": customer.id}
    )
    product = client.v1.products.create(params={"name": "Card test"})
    price = client.v1.prices.create(
        params={
            "product": product.id,
            "currency": "usd",
            "unit_amount": 100,
            "recurring": {"interval": "month"},
        }
    )
    params = {
        "customer": customer.id,
        "items[0][price]": price.id,
        "default_payment_method": pm.id,
        "payment_behavior": "error_if_incomplete",
    }
    one = api.post("/v1/subscriptions", data=params, headers={"Idempotency-Key": declined_key})
    two = api.post("/v1/subscriptions", data=params, headers={"Idempotency-Key": declined_key})
    assert one.status_code == two.status_code == 402
    assert two.headers["Idempotent-Replayed"] == "true"


@pytest.mark.slow
def test_in_flight_key_gets_409_with_retry_hint(
    api: httpx.Client, ctl: httpx.Client, sandbox_url: str
) -> None:
    fault = ctl.post(
        "/faults", json={"path": "^/v1/customers$", "method": "POST", "delay_ms": 1500, "times": 1}
    )
    assert fault.status_code == 200
    key = _key()
    results: dict[str, httpx.Response] = {}

    def slow() -> None:
        results["first"] = api.post(
            "/v1/customers", data={"email": "slow@example.com"}, headers={"Idempotency-Key": key}
        )

    thread = threading.Thread(target=slow)
    thread.start()
    wait_for(lambda: ctl.get("/stats").json()["requests_in_flight"] == 1, 5.0, "the slow request")
    conflict = api.post(
        "/v1/customers", data={"email": "slow@example.com"}, headers={"Idempotency-Key": key}
    )
    assert conflict.status_code == 409
    assert conflict.headers["Stripe-Should-Retry"] == "true"
    assert conflict.json()["error"]["type"] == "idempotency_error"
    assert conflict.json()["error"]["code"] == "idempotency_key_in_use"

    # stripe-python retries 409s by itself and ends with the first request's result.
    retrying = stripe.StripeClient(
        API_KEY, base_addresses={"api": sandbox_url}, max_network_retries=5
    )
    replayed = retrying.v1.customers.create(
        params={"email": "slow@example.com"}, options={"idempotency_key": key}
    )
    thread.join(10)
    assert replayed.id == results["first"].json()["id"]
    assert ctl.get("/stats").json()["objects"]["customer"]["live"] == 1


def test_keys_expire_after_24_hours_of_sandbox_time(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    key = _key()
    first = client.v1.customers.create(
        params={"email": "t@example.com"}, options={"idempotency_key": key}
    )
    advance(ctl, 23 * 3600)
    assert (
        client.v1.customers.create(
            params={"email": "t@example.com"}, options={"idempotency_key": key}
        ).id
        == first.id
    )
    advance(ctl, 3600)
    later = client.v1.customers.create(
        params={"email": "t2@example.com"}, options={"idempotency_key": key}
    )
    assert later.id != first.id


def test_keys_are_scoped_per_api_key(client: stripe.StripeClient, sandbox_url: str) -> None:
    key = _key()
    first = client.v1.customers.create(
        params={"email": "s@example.com"}, options={"idempotency_key": key}
    )
    other = stripe.StripeClient("sk_test_another_key", base_addresses={"api": sandbox_url})
    second = other.v1.customers.create(
        params={"email": "s@example.com"}, options={"idempotency_key": key}
    )
    assert second.id != first.id
