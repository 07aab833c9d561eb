"""Injected faults: error shares, which ones `stripe` retries, and that faulted requests
change nothing."""

from __future__ import annotations

import httpx
import pytest
import stripe

from tests.sandbox.helpers import API_KEY


def _requests(ctl: httpx.Client, path: str) -> list[dict[str, object]]:
    return [r for r in ctl.get("/requests").json()["data"] if r["path"] == path]


def test_a_share_of_requests_fails_and_changes_nothing(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    fault = ctl.post(
        "/faults", json={"path": "^/v1/customers$", "method": "POST", "rate": 0.3, "status": 500}
    )
    assert fault.json()["id"].startswith("fault_")
    errors = 0
    for i in range(200):
        try:
            client.v1.customers.create(params={"email": f"f{i}@example.com"})
        except stripe.APIError as exc:
            assert exc.http_status == 500
            errors += 1
    assert 40 <= errors <= 80  # 30 % of 200, with a generous band
    stats = ctl.get("/stats").json()
    assert stats["objects"]["customer"]["live"] == 200 - errors
    assert stats["events"]["customer.created"] == 200 - errors
    listed = ctl.get("/faults").json()["data"]
    assert listed[0]["fired"] == errors
    assert ctl.delete("/faults").status_code == 200
    client.v1.customers.create(params={"email": "after@example.com"})


def test_stripe_retries_recover_every_request(sandbox_url: str, ctl: httpx.Client) -> None:
    # A seeded fault makes the sequence of failures the same on every run.
    ctl.post("/faults", json={"path": "^/v1/customers$", "rate": 0.3, "status": 500, "seed": 7})
    retrying = stripe.StripeClient(
        API_KEY, base_addresses={"api": sandbox_url}, max_network_retries=5
    )
    ids = [
        retrying.v1.customers.create(params={"email": f"r{i}@example.com"}).id for i in range(12)
    ]
    assert len(set(ids)) == 12
    log = _requests(ctl, "/v1/customers")
    assert sum(1 for r in log if r["status"] == 500) >= 3
    assert ctl.get("/stats").json()["objects"]["customer"]["live"] == 12
    # Retries reuse the idempotency key, so each key created exactly one customer.
    created_by_key: dict[object, set[object]] = {}
    for r in log:
        if r["status"] == 200:
            created_by_key.setdefault(r["idempotency_key"], set()).add(r["object_id"])
    assert len(created_by_key) == 12 and all(len(v) == 1 for v in created_by_key.values())


def test_plain_rate_limit_is_not_retried(sandbox_url: str, ctl: httpx.Client) -> None:
    ctl.post("/faults", json={"path": "^/v1/customers$", "status": 429, "times": 1})
    retrying = stripe.StripeClient(
        API_KEY, base_addresses={"api": sandbox_url}, max_network_retries=3
    )
    with pytest.raises(stripe.RateLimitError) as excinfo:
        retrying.v1.customers.create(params={"email": "rl@example.com"})
    assert excinfo.value.error is not None
    assert excinfo.value.error.code == "rate_limit"
    assert excinfo.value.headers is not None
    assert "stripe-should-retry" not in {k.lower() for k in excinfo.value.headers}
    assert [r["status"] for r in _requests(ctl, "/v1/customers")] == [429]


def test_lock_timeout_is_retried_by_stripe(sandbox_url: str, ctl: httpx.Client) -> None:
    ctl.post(
        "/faults", json={"path": "^/v1/customers$", "status": 429, "lock_timeout": True, "times": 2}
    )
    retrying = stripe.StripeClient(
        API_KEY, base_addresses={"api": sandbox_url}, max_network_retries=3
    )
    customer = retrying.v1.customers.create(params={"email": "lock@example.com"})
    assert [r["status"] for r in _requests(ctl, "/v1/customers")] == [429, 429, 200]
    assert customer.email == "lock@example.com"


def test_other_injected_statuses(
    client: stripe.StripeClient, api: httpx.Client, ctl: httpx.Client
) -> None:
    ctl.post("/faults", json={"path": "^/v1/products", "method": "GET", "status": 503})
    with pytest.raises(stripe.APIError) as api_error:
        client.v1.products.list()
    assert api_error.value.http_status == 503
    client.v1.products.create(params={"name": "still works for POST"})

    ctl.post("/faults", json={"path": "^/v1/customers$", "status": 402, "times": 1})
    with pytest.raises(stripe.CardError):
        client.v1.customers.create(params={"email": "x@example.com"})
    ctl.post("/faults", json={"path": "^/v1/customers$", "status": 400, "times": 1})
    response = api.post("/v1/customers", data={"email": "y@example.com"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert ctl.post("/faults", json={"path": "(", "status": 500}).status_code == 400
    assert ctl.post("/faults", json={"path": "x", "status": 418}).status_code == 400


def test_delay_only_fault_slows_but_succeeds(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    ctl.post("/faults", json={"path": "^/v1/customers$", "delay_ms": 300, "times": 1})
    customer = client.v1.customers.create(params={"email": "slow@example.com"})
    assert customer.id.startswith("cus_")
    [entry] = _requests(ctl, "/v1/customers")
    assert entry["status"] == 200 and entry["fault"] is not None
