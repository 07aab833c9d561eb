"""The control API: health, clock, stats, the request log, reset."""

from __future__ import annotations

import httpx
import stripe

from tests.sandbox.helpers import Receiver, advance


def test_health_and_clock(ctl: httpx.Client) -> None:
    assert ctl.get("/health").json() == {"ok": True}
    before = ctl.get("/clock").json()["now"]
    after = advance(ctl, 3600)["now"]
    assert after - before in (3600, 3601)
    assert ctl.post("/clock/advance", json={"seconds": -5}).status_code == 400


def test_request_log_proves_the_order_of_calls(
    client: stripe.StripeClient, api: httpx.Client, ctl: httpx.Client
) -> None:
    customer = client.v1.customers.create(params={"email": "log@example.com"})
    client.v1.customers.retrieve(customer.id)
    api.post("/v1/customers", data={"email": "x"}, headers={"Idempotency-Key": "log-key"})
    log = ctl.get("/requests").json()["data"]
    assert [(r["method"], r["path"], r["status"]) for r in log] == [
        ("POST", "/v1/customers", 200),
        ("GET", f"/v1/customers/{customer.id}", 200),
        ("POST", "/v1/customers", 400),
    ]
    assert log[0]["object_id"] == customer.id
    assert log[0]["idempotency_key"]  # stripe-python sends one on every POST
    assert log[2]["idempotency_key"] == "log-key"
    assert all(isinstance(r["sandbox_time"], int) for r in log)

    stats = ctl.get("/stats").json()
    summary = {(r["method"], r["path"], r["status"]): r["count"] for r in stats["requests"]}
    assert summary[("POST", "/v1/customers", 200)] == 1
    assert summary[("GET", "/v1/customers/{id}", 200)] == 1
    assert summary[("POST", "/v1/customers", 400)] == 1
    assert stats["objects"]["customer"] == {"live": 1, "deleted": 0}


def test_reset_empties_state_but_keeps_endpoints(
    client: stripe.StripeClient, ctl: httpx.Client, receiver: Receiver
) -> None:
    client.v1.customers.create(params={"email": "r@example.com"})
    endpoints = ctl.get("/webhooks/endpoints").json()["data"]
    assert ctl.post("/reset", json={}).json() == {"reset": True}
    assert client.v1.customers.list().data == []
    assert ctl.get("/requests").json()["data"][-1]["path"] == "/v1/customers"
    assert [e["url"] for e in ctl.get("/webhooks/endpoints").json()["data"]] == [
        e["url"] for e in endpoints
    ]
    assert {e["url"] for e in endpoints} == {f"{receiver.url}/platform", f"{receiver.url}/connect"}
