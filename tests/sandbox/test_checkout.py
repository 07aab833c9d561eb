"""Checkout sessions in subscription mode: create, pay (control API), decline, delayed
payment methods, expiry."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe

from tests.sandbox.helpers import (
    Receiver,
    advance,
    make_customer,
    make_price,
    raw,
    types_about,
)


def _session(
    client: stripe.StripeClient, price: stripe.Price, **extra: Any
) -> stripe.checkout.Session:
    return client.v1.checkout.sessions.create(
        params=raw(
            {
                "mode": "subscription",
                "line_items": [{"price": price.id, "quantity": 1}],
                "success_url": "https://app.example/done?session={CHECKOUT_SESSION_ID}",
                "cancel_url": "https://app.example/cancel",
                **extra,
            }
        )
    )


def test_create_and_retrieve(client: stripe.StripeClient, sandbox_url: str) -> None:
    price = make_price(client, 2500)
    customer = make_customer(client, card=None)
    session = _session(
        client,
        price,
        customer=customer.id,
        client_reference_id="user-42",
        metadata={"user_id": "42"},
        subscription_data={"metadata": {"user_id": "42"}},
    )
    assert session.id.startswith("cs_test_")
    assert (session.status, session.payment_status, session.mode) == (
        "open",
        "unpaid",
        "subscription",
    )
    assert session.url == f"{sandbox_url}/_sandbox/pages/checkout/{session.id}"
    assert session.success_url == "https://app.example/done?session={CHECKOUT_SESSION_ID}"
    assert (session.amount_total, session.currency, session.customer) == (2500, "usd", customer.id)
    assert session.client_reference_id == "user-42"
    assert session.subscription is None and session.invoice is None
    assert session.expires_at - session.created == 24 * 3600

    items = client.v1.checkout.sessions.line_items.list(session.id)
    assert [(i.price.id if i.price else None, i.quantity) for i in items.data] == [(price.id, 1)]


def test_pay_completes_session_in_stripes_event_order(
    client: stripe.StripeClient, ctl: httpx.Client, receiver: Receiver
) -> None:
    price = make_price(client, 1000)
    session = _session(
        client,
        price,
        customer_email="new@example.com",
        subscription_data={"metadata": {"user_id": "7"}},
    )
    paid = ctl.post(f"/checkout/sessions/{session.id}/pay", json={})
    assert paid.status_code == 200, paid.text

    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["subscription"]})
    assert (done.status, done.payment_status) == ("complete", "paid")
    assert isinstance(done.customer, str) and done.customer.startswith("cus_")
    sub = done.subscription
    assert isinstance(sub, stripe.Subscription)
    assert sub.status == "active"
    assert sub["metadata"].to_dict() == {"user_id": "7"}
    assert sub.customer == done.customer
    assert sub["items"].data[0].current_period_end > sub["items"].data[0].current_period_start
    assert isinstance(done.invoice, str)
    invoice = client.v1.invoices.retrieve(done.invoice)
    assert (invoice.status, invoice.amount_paid, invoice.billing_reason) == (
        "paid",
        1000,
        "subscription_create",
    )
    assert invoice.parent is not None and invoice.parent.subscription_details is not None
    assert invoice.parent.subscription_details.subscription == sub.id
    customer = client.v1.customers.retrieve(done.customer)
    assert customer.email == "new@example.com"

    ids = {session.id, sub.id, invoice.id}
    assert types_about(ctl, ids) == [
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
        "checkout.session.completed",
    ]
    completed = receiver.wait_for_event("checkout.session.completed", session.id)
    assert completed["data"]["object"]["subscription"] == sub.id


def test_declined_card_keeps_the_session_open(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    session = _session(client, make_price(client))
    declined = ctl.post(
        f"/checkout/sessions/{session.id}/pay", json={"payment_method": "pm_card_chargeDeclined"}
    )
    assert declined.status_code == 402
    assert declined.json()["error"]["type"] == "card_error"
    assert declined.json()["error"]["code"] == "card_declined"
    assert declined.json()["error"]["decline_code"] == "generic_decline"
    still = client.v1.checkout.sessions.retrieve(session.id)
    assert (still.status, still.subscription) == ("open", None)
    assert client.v1.subscriptions.list(params={"status": "all"}).data == []

    funds = ctl.post(
        f"/checkout/sessions/{session.id}/pay",
        json={"payment_method": "pm_card_chargeDeclinedInsufficientFunds"},
    )
    assert funds.json()["error"]["decline_code"] == "insufficient_funds"

    ok = ctl.post(f"/checkout/sessions/{session.id}/pay", json={"payment_method": "pm_card_visa"})
    assert ok.status_code == 200
    assert client.v1.checkout.sessions.retrieve(session.id).status == "complete"
    again = ctl.post(f"/checkout/sessions/{session.id}/pay", json={})
    assert again.status_code == 400


@pytest.mark.parametrize(
    ("method", "outcome", "event", "sub_status"),
    [
        ("pm_delayed_success", "succeeded", "checkout.session.async_payment_succeeded", "active"),
        ("pm_delayed_fail", "failed", "checkout.session.async_payment_failed", "incomplete"),
    ],
)
def test_delayed_payment_methods_settle_later(
    client: stripe.StripeClient,
    ctl: httpx.Client,
    receiver: Receiver,
    method: str,
    outcome: str,
    event: str,
    sub_status: str,
) -> None:
    session = _session(client, make_price(client))
    assert (
        ctl.post(
            f"/checkout/sessions/{session.id}/pay", json={"payment_method": method}
        ).status_code
        == 200
    )
    pending = client.v1.checkout.sessions.retrieve(session.id)
    assert (pending.status, pending.payment_status) == ("complete", "unpaid")
    assert isinstance(pending.subscription, str)
    assert client.v1.subscriptions.retrieve(pending.subscription).status == "incomplete"
    receiver.wait_for_event("checkout.session.completed", session.id)

    settled = ctl.post(f"/checkout/sessions/{session.id}/settle", json={})
    assert settled.status_code == 200, settled.text
    receiver.wait_for_event(event, session.id)
    assert client.v1.subscriptions.retrieve(pending.subscription).status == sub_status
    final = client.v1.checkout.sessions.retrieve(session.id)
    assert final.payment_status == ("paid" if outcome == "succeeded" else "unpaid")


def test_only_delayed_methods_can_fail_asynchronously(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    session = _session(client, make_price(client))
    ctl.post(f"/checkout/sessions/{session.id}/pay", json={})
    response = ctl.post(f"/checkout/sessions/{session.id}/settle", json={"outcome": "failed"})
    assert response.status_code == 400
    assert "checkout.session.async_payment_failed" not in types_about(ctl, {session.id})


def test_expire_via_api_and_control(
    client: stripe.StripeClient, ctl: httpx.Client, receiver: Receiver
) -> None:
    price = make_price(client)
    first = _session(client, price)
    expired = client.v1.checkout.sessions.expire(first.id)
    assert (expired.status, expired.url) == ("expired", None)
    receiver.wait_for_event("checkout.session.expired", first.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(first.id)
    assert ctl.post(f"/checkout/sessions/{first.id}/pay", json={}).status_code == 400

    second = _session(client, price)
    assert ctl.post(f"/checkout/sessions/{second.id}/expire").json()["status"] == "expired"


def test_clock_advance_expires_open_sessions(
    client: stripe.StripeClient, ctl: httpx.Client, receiver: Receiver
) -> None:
    now = ctl.get("/clock").json()["now"]
    session = _session(client, make_price(client), expires_at=now + 3600)
    advance(ctl, 3599)
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    advance(ctl, 2)
    assert client.v1.checkout.sessions.retrieve(session.id).status == "expired"
    event = receiver.wait_for_event("checkout.session.expired", session.id)
    assert event["created"] == now + 3600


def test_session_validation(client: stripe.StripeClient) -> None:
    price = make_price(client)
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.checkout.sessions.create(
            params={"mode": "subscription", "line_items": [{"price": price.id}]}
        )
    assert excinfo.value.param == "line_items[0][quantity]"
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.checkout.sessions.create(
            params={"mode": "rental", "line_items": [{"price": price.id, "quantity": 1}]}
        )
    assert excinfo.value.param == "mode"
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        _session(client, price, expires_at=1)
    assert excinfo.value.param == "expires_at"
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        _session(client, price, customer="cus_missing")
    assert (excinfo.value.http_status, excinfo.value.param) == (404, "customer")


def test_list_sessions(client: stripe.StripeClient, ctl: httpx.Client) -> None:
    price = make_price(client)
    open_one = _session(client, price)
    paid_one = _session(client, price)
    ctl.post(f"/checkout/sessions/{paid_one.id}/pay", json={})
    complete = client.v1.checkout.sessions.list(params={"status": "complete"})
    assert [s.id for s in complete.data] == [paid_one.id]
    assert {s.id for s in client.v1.checkout.sessions.list().data} == {open_one.id, paid_one.id}
