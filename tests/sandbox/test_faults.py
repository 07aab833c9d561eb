"""Injected faults: error shares, which ones `stripe` retries, and that faulted requests
change nothing."""

from __future__ import annotations

import uuid

import httpx
import pytest
import stripe

from tests.sandbox.helpers import API_KEY


def _requests(ctl: httpx.Client, path: str) -> list[dict[str, object]]:
    return [r for r in ctl.get("/requests").json()["data"] if r["path"] == path]


def test_a_share_of_requests_fails_and_changes_nothing(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    # 200 creates in a row would exceed Stripe's rate limit, which this test is not about.
    assert ctl.post("/rate_limits", json={"rate": 0}).status_code == 200
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


@pytest.mark.slow
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


@pytest.mark.slow
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


def _saved_fault(ctl: httpx.Client, **spec: object) -> None:
    response = ctl.post(
        "/faults",
        json={"path": "^/v1/customers$", "method": "POST", "status": 500, "times": 1, **spec},
    )
    assert response.status_code == 200, response.text


def test_saved_500_applied_created_the_object_and_is_replayed(
    api: httpx.Client, ctl: httpx.Client
) -> None:
    _saved_fault(ctl, saved=True, applied=True)
    key = f"saved-{uuid.uuid4()}"
    first = api.post(
        "/v1/customers", data={"email": "s@example.com"}, headers={"Idempotency-Key": key}
    )
    assert first.status_code == 500
    assert first.json()["error"]["type"] == "api_error"
    assert first.headers["Stripe-Should-Retry"] == "false"
    assert "Idempotent-Replayed" not in first.headers
    # The endpoint had done its work before it failed: the customer exists.
    stats = ctl.get("/stats").json()
    assert stats["objects"]["customer"]["live"] == 1
    assert stats["events"]["customer.created"] == 1

    again = api.post(
        "/v1/customers", data={"email": "s@example.com"}, headers={"Idempotency-Key": key}
    )
    assert again.status_code == 500
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Stripe-Should-Retry"] == "false"
    assert again.json()["error"]["message"] == first.json()["error"]["message"]
    assert ctl.get("/stats").json()["objects"]["customer"]["live"] == 1
    [fault] = ctl.get("/faults").json()["data"]
    assert (fault["fired"], fault["saved_fired"], fault["applied_fired"]) == (1, 1, 1)
    log = _requests(ctl, "/v1/customers")
    assert log[0]["object_id"] is not None and log[0]["fault"] == fault["id"]


def test_saved_500_not_applied_changes_nothing_and_is_replayed(
    api: httpx.Client, ctl: httpx.Client
) -> None:
    _saved_fault(ctl, saved=True, applied=False)
    key = f"saved-{uuid.uuid4()}"
    body = {"email": "n@example.com"}
    first = api.post("/v1/customers", data=body, headers={"Idempotency-Key": key})
    assert first.status_code == 500 and first.headers["Stripe-Should-Retry"] == "false"
    assert ctl.get("/stats").json()["objects"].get("customer", {"live": 0})["live"] == 0
    again = api.post("/v1/customers", data=body, headers={"Idempotency-Key": key})
    assert again.status_code == 500 and again.headers["Idempotent-Replayed"] == "true"
    # Only a new key runs the endpoint again.
    fresh = api.post("/v1/customers", data=body, headers={"Idempotency-Key": key + "/2"})
    assert fresh.status_code == 200
    assert ctl.get("/stats").json()["objects"]["customer"]["live"] == 1


def test_stripe_library_sees_a_saved_500_and_its_replay(
    sandbox_url: str, ctl: httpx.Client
) -> None:
    _saved_fault(ctl, saved=True)
    retrying = stripe.StripeClient(
        API_KEY, base_addresses={"api": sandbox_url}, max_network_retries=2
    )
    key = f"lib-{uuid.uuid4()}"
    with pytest.raises(stripe.APIError) as first:
        retrying.v1.customers.create(
            params={"email": "l@example.com"}, options={"idempotency_key": key}
        )
    headers = {k.lower(): v for k, v in (first.value.headers or {}).items()}
    assert first.value.http_status == 500
    assert headers["stripe-should-retry"] == "false"
    # `Stripe-Should-Retry: false` stops the library's own retries: one request only.
    assert [r["status"] for r in _requests(ctl, "/v1/customers")] == [500]
    with pytest.raises(stripe.APIError) as replayed:
        retrying.v1.customers.create(
            params={"email": "l@example.com"}, options={"idempotency_key": key}
        )
    headers = {k.lower(): v for k, v in (replayed.value.headers or {}).items()}
    assert headers["idempotent-replayed"] == "true"
    assert [r["replayed"] for r in _requests(ctl, "/v1/customers")] == [False, True]


def test_a_share_of_500s_is_saved(api: httpx.Client, ctl: httpx.Client) -> None:
    ctl.post(
        "/faults",
        json={"path": "^/v1/customers$", "status": 500, "saved": 0.5, "applied": 0.5, "seed": 3},
    )
    answers = [
        api.post(
            "/v1/customers",
            data={"email": f"m{i}@example.com"},
            headers={"Idempotency-Key": f"m-{uuid.uuid4()}"},
        )
        for i in range(20)
    ]
    assert {a.status_code for a in answers} == {500}
    [fault] = ctl.get("/faults").json()["data"]
    saved = sum(1 for a in answers if a.headers.get("Stripe-Should-Retry") == "false")
    assert fault["saved_fired"] == saved and 0 < saved < 20
    assert 0 < fault["applied_fired"] < saved
    assert ctl.get("/stats").json()["objects"]["customer"]["live"] == fault["applied_fired"]


def test_a_saved_fault_does_not_fire_on_a_replay_or_an_invalid_request(
    api: httpx.Client, ctl: httpx.Client
) -> None:
    key = f"first-{uuid.uuid4()}"
    created = api.post(
        "/v1/customers", data={"email": "r@example.com"}, headers={"Idempotency-Key": key}
    )
    _saved_fault(ctl, saved=True, applied=True)
    replay = api.post(
        "/v1/customers", data={"email": "r@example.com"}, headers={"Idempotency-Key": key}
    )
    assert replay.status_code == 200 and replay.json()["id"] == created.json()["id"]
    invalid = api.post(
        "/v1/customers", data={"emial": "x"}, headers={"Idempotency-Key": f"bad-{uuid.uuid4()}"}
    )
    assert invalid.status_code == 400
    [fault] = ctl.get("/faults").json()["data"]
    assert fault["fired"] == 0  # still armed for the next request that runs the endpoint


def test_saved_fault_options_are_checked(ctl: httpx.Client) -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"status": 429, "saved": True}, "saved"),
        ({"status": 500, "applied": True}, "applied"),
        ({"status": 500, "saved": 1.5}, "saved"),
        ({"status": 500, "saved": "yes"}, "saved"),
    ]
    for spec, param in cases:
        response = ctl.post("/faults", json={"path": "^/v1/", **spec})
        assert response.status_code == 400, spec
        assert response.json()["error"]["param"] == param


@pytest.mark.parametrize(
    ("status", "raised"), [(401, stripe.AuthenticationError), (403, stripe.PermissionError)]
)
def test_a_refused_key_is_answered_as_stripe_does(
    client: stripe.StripeClient, ctl: httpx.Client, status: int, raised: type[stripe.StripeError]
) -> None:
    """A rotated (401) or under-permitted (403) key: `stripe` raises the error classes
    onramp's gateway treats as permanent for the call (and its workflows as "keep the
    work pending")."""
    customer = client.v1.customers.create(params={"email": f"k{status}@example.com"})
    fault = ctl.post(
        "/faults",
        json={"path": f"^/v1/customers/{customer.id}$", "method": "GET", "status": status},
    ).json()["id"]
    with pytest.raises(raised) as refused:
        client.v1.customers.retrieve(customer.id)
    assert refused.value.http_status == status
    assert ctl.delete(f"/faults/{fault}").status_code == 200
    assert client.v1.customers.retrieve(customer.id).id == customer.id
