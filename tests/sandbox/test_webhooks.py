"""Webhooks: Stripe signatures, retries, hold/release (ordered, shuffled, duplicated),
platform vs Connect endpoints, endpoints registered at run time."""

from __future__ import annotations

import httpx
import pytest
import stripe

from tests.sandbox.helpers import CONNECT_SECRET, PLATFORM_SECRET, Receiver, wait_for


def _customers(client: stripe.StripeClient, count: int) -> list[str]:
    return [
        client.v1.customers.create(params={"email": f"w{i}@example.com"}).id for i in range(count)
    ]


def test_every_delivery_verifies_with_the_endpoint_secret(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    ids = _customers(client, 3)
    deliveries = wait_for(
        lambda: (
            receiver.deliveries("/platform") if len(receiver.deliveries("/platform")) >= 3 else None
        ),
        what="three deliveries",
    )
    for delivery in deliveries:
        header = delivery.headers["Stripe-Signature"]
        event = stripe.Webhook.construct_event(delivery.body, header, PLATFORM_SECRET)
        assert event.type == "customer.created"
        timestamp = int(header.split(",")[0].removeprefix("t="))
        assert header == stripe.WebhookSignature.generate_signature_header(
            delivery.body, PLATFORM_SECRET, timestamp
        )
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(delivery.body, header, CONNECT_SECRET)
    assert [d.event["data"]["object"]["id"] for d in deliveries] == ids


def test_failed_deliveries_are_retried(
    client: stripe.StripeClient, receiver: Receiver, ctl: httpx.Client
) -> None:
    receiver.fail_next(2)
    [customer_id] = _customers(client, 1)
    event = receiver.wait_for_event("customer.created", customer_id)
    attempts = [
        d.status
        for d in receiver.deliveries("/platform", ok_only=False)
        if d.event["id"] == event["id"]
    ]
    assert attempts == [500, 500, 200]

    def logged() -> list[tuple[int, int, str]] | None:
        # The sandbox logs an attempt once it has read the answer: after the receiver saw it.
        log = ctl.get("/webhooks/deliveries").json()["data"]
        mine = [(d["attempt"], d["status"], d["outcome"]) for d in log if d["event"] == event["id"]]
        return mine if len(mine) == 3 else None

    mine = wait_for(logged, what="the third attempt in the delivery log")
    assert mine == [(1, 500, "failed"), (2, 500, "failed"), (3, 200, "succeeded")]
    wait_for(
        lambda: client.v1.events.retrieve(event["id"]).pending_webhooks == 0,
        what="pending_webhooks to reach 0",
    )


def test_hold_and_release_in_creation_order(
    client: stripe.StripeClient, receiver: Receiver, ctl: httpx.Client
) -> None:
    ctl.post("/webhooks/hold")
    ids = _customers(client, 5)
    assert ctl.get("/stats").json()["webhooks_held"] == 5
    assert receiver.deliveries("/platform") == []
    assert ctl.post("/webhooks/release", json={"order": "created"}).json()["released"] == 5
    got = wait_for(
        lambda: receiver.events("/platform") if len(receiver.events("/platform")) == 5 else None
    )
    assert [e["data"]["object"]["id"] for e in got] == ids


def test_release_shuffled_with_duplicates(
    client: stripe.StripeClient, receiver: Receiver, ctl: httpx.Client
) -> None:
    ctl.post("/webhooks/hold")
    ids = _customers(client, 6)
    released = ctl.post("/webhooks/release", json={"order": "shuffled", "duplicates": 2})
    assert released.json()["released"] == 12
    got = wait_for(
        lambda: receiver.events("/platform") if len(receiver.events("/platform")) == 12 else None
    )
    seen = [e["data"]["object"]["id"] for e in got]
    assert sorted(seen) == sorted(ids * 2)
    assert len({e["id"] for e in got}) == 6  # duplicates are the same event ids


def test_release_keep_holding_queues_the_next_batch(
    client: stripe.StripeClient, receiver: Receiver, ctl: httpx.Client
) -> None:
    ctl.post("/webhooks/hold")
    first = _customers(client, 2)
    released = ctl.post("/webhooks/release", json={"duplicates": 3, "keep_holding": True})
    assert released.json()["released"] == 6
    second = _customers(client, 1)
    assert ctl.get("/stats").json()["webhooks_held"] == 1
    got = wait_for(
        lambda: receiver.events("/platform") if len(receiver.events("/platform")) == 6 else None
    )
    assert sorted(e["data"]["object"]["id"] for e in got) == sorted(first * 3)
    assert ctl.post("/webhooks/release", json={}).json()["released"] == 1
    receiver.wait_for_event("customer.created", second[0])
    refused = ctl.post("/webhooks/release", json={"keep_holding": "yes"})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "keep_holding"


def test_connect_and_platform_endpoints_are_separate(
    client: stripe.StripeClient, receiver: Receiver, ctl: httpx.Client
) -> None:
    account = client.v1.accounts.create(params={"type": "express"})
    ctl.post(f"/accounts/{account.id}/complete_onboarding")
    [customer_id] = _customers(client, 1)
    receiver.wait_for_event("account.updated", account.id, path="/connect")
    receiver.wait_for_event("customer.created", customer_id, path="/platform")
    assert {e["type"] for e in receiver.events("/connect")} == {"account.updated"}
    assert "account.updated" not in {e["type"] for e in receiver.events("/platform")}


def test_endpoints_registered_at_run_time(
    client: stripe.StripeClient, receiver: Receiver, ctl: httpx.Client
) -> None:
    url = f"{receiver.url}/extra"
    added = ctl.post("/webhooks/endpoints", json={"url": url, "secret": "whsec_extra_0003"})
    assert added.status_code == 200
    try:
        [customer_id] = _customers(client, 1)
        event = receiver.wait_for_event("customer.created", customer_id, path="/extra")
        delivery = receiver.deliveries("/extra")[0]
        stripe.Webhook.construct_event(
            delivery.body, delivery.headers["Stripe-Signature"], "whsec_extra_0003"
        )
        listed = ctl.get("/webhooks/endpoints").json()["data"]
        extra = next(e for e in listed if e["url"] == url)
        wait_for(
            lambda: (
                next(e for e in ctl.get("/webhooks/endpoints").json()["data"] if e["url"] == url)[
                    "deliveries"
                ]["succeeded"]
                == 1
            )
        )
        assert extra["connect"] is False
        assert {e["connect"] for e in listed} == {True, False}
        assert event["pending_webhooks"] == 2
    finally:
        removed = ctl.request("DELETE", "/webhooks/endpoints", json={"url": url})
    assert removed.json()["removed"] == 1
    assert all(e["url"] != url for e in ctl.get("/webhooks/endpoints").json()["data"])


def test_resend_delivers_an_event_again(
    client: stripe.StripeClient, receiver: Receiver, ctl: httpx.Client
) -> None:
    [customer_id] = _customers(client, 1)
    event = receiver.wait_for_event("customer.created", customer_id)
    assert ctl.post("/webhooks/resend", json={"events": [event["id"]]}).json()["queued"] == 1
    wait_for(lambda: len([e for e in receiver.events("/platform") if e["id"] == event["id"]]) == 2)
