"""Checkout sessions in setup mode: they save a payment method for the customer through
a SetupIntent and charge nothing, as Stripe's do."""

from __future__ import annotations

from typing import Any

import httpx
import stripe

from tests.sandbox.helpers import Receiver, make_customer, make_price, raw, types_about


def _setup_session(client: stripe.StripeClient, **extra: Any) -> stripe.checkout.Session:
    return client.v1.checkout.sessions.create(
        params=raw(
            {
                "mode": "setup",
                "currency": "usd",
                "success_url": "https://app.example/billing?done=payment_method",
                "cancel_url": "https://app.example/billing",
                **extra,
            }
        )
    )


def test_create_a_setup_session(client: stripe.StripeClient, sandbox_url: str) -> None:
    customer = make_customer(client, card=None)
    session = _setup_session(client, customer=customer.id, metadata={"user_id": "42"})
    assert (session.mode, session.status, session.payment_status) == (
        "setup", "open", "no_payment_required",
    )  # fmt: skip
    assert session.url == f"{sandbox_url}/_sandbox/pages/checkout/{session.id}"
    assert (session.amount_total, session.currency) == (None, "usd")
    assert session.setup_intent is None and session.subscription is None
    assert client.v1.checkout.sessions.retrieve(session.id).mode == "setup"


def test_setup_mode_parameters_are_checked(client: stripe.StripeClient) -> None:
    customer = make_customer(client, card=None)
    price = make_price(client, 1500)
    for extra, param in (
        ({"line_items": [{"price": price.id, "quantity": 1}]}, "line_items"),
        ({"currency": None}, "currency"),
    ):
        params = {"currency": "usd", **extra}
        if params["currency"] is None:
            del params["currency"]
        try:
            client.v1.checkout.sessions.create(
                params=raw({"mode": "setup", "customer": customer.id, **params})
            )
        except stripe.InvalidRequestError as error:
            assert error.param == param
        else:
            raise AssertionError(f"{param} was not refused")
    # Payment mode is not modelled: refused, never silently treated as another mode.
    try:
        client.v1.checkout.sessions.create(
            params=raw({"mode": "payment", "line_items": [{"price": price.id, "quantity": 1}]})
        )
    except stripe.InvalidRequestError as error:
        assert error.param == "mode"
    else:
        raise AssertionError("mode=payment was not refused")


def test_completing_saves_the_card_through_a_setup_intent(
    client: stripe.StripeClient, ctl: httpx.Client, receiver: Receiver
) -> None:
    customer = make_customer(client, card=None)
    session = _setup_session(
        client, customer=customer.id, setup_intent_data={"metadata": {"user_id": "42"}}
    )
    done = ctl.post(
        f"/checkout/sessions/{session.id}/pay", json={"payment_method": "pm_card_mastercard"}
    )
    assert done.status_code == 200, done.text
    completed = client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["setup_intent"]}
    )
    assert (completed.status, completed.payment_status, completed.url) == (
        "complete", "no_payment_required", None,
    )  # fmt: skip
    intent = completed.setup_intent
    assert isinstance(intent, stripe.SetupIntent)
    assert (intent.status, intent.customer, intent.usage) == (
        "succeeded",
        customer.id,
        "off_session",
    )
    assert intent.metadata is not None and intent.metadata.to_dict() == {"user_id": "42"}
    pm = client.v1.payment_methods.retrieve(str(intent.payment_method))
    assert pm.customer == customer.id and pm.card is not None and pm.card.last4 == "4444"
    assert client.v1.setup_intents.retrieve(intent.id).payment_method == pm.id
    # Nothing was charged and no subscription was made.
    assert client.v1.subscriptions.list(params={"customer": customer.id}).data == []
    assert client.v1.invoices.list(params={"customer": customer.id}).data == []
    assert types_about(ctl, {session.id, intent.id}) == [
        "setup_intent.created",
        "setup_intent.succeeded",
        "checkout.session.completed",
    ]
    event = receiver.wait_for_event("checkout.session.completed", session.id)
    assert event["data"]["object"]["mode"] == "setup"
    assert event["data"]["object"]["setup_intent"] == intent.id
    again = ctl.post(f"/checkout/sessions/{session.id}/pay", json={})
    assert again.status_code == 400


def test_a_declined_card_leaves_the_setup_session_open(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    customer = make_customer(client, card=None)
    session = _setup_session(client, customer=customer.id)
    declined = ctl.post(
        f"/checkout/sessions/{session.id}/pay", json={"payment_method": "pm_card_chargeDeclined"}
    )
    assert declined.status_code == 402
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"


def test_the_hosted_page_saves_a_card(client: stripe.StripeClient, sandbox_url: str) -> None:
    customer = make_customer(client, card=None)
    session = _setup_session(client, customer=customer.id)
    assert session.url is not None
    with httpx.Client(base_url=sandbox_url) as http:
        page = http.get(session.url)
        assert page.status_code == 200 and "Save a payment method" in page.text
        saved = http.post(
            f"/_sandbox/pages/checkout/{session.id}/pay",
            data={"payment_method": "pm_card_visa"},
        )
    assert saved.status_code == 303
    assert saved.headers["location"] == "https://app.example/billing?done=payment_method"
    assert client.v1.checkout.sessions.retrieve(session.id).status == "complete"
