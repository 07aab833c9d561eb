"""Strong Customer Authentication: cards that need 3-D Secure leave invoices waiting for
the customer (hosted invoice page or control API), `default_incomplete` subscriptions,
pending updates (`pending_if_incomplete`) and what an `incomplete` subscription refuses."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import stripe
from playwright.async_api import Browser

from tests.sandbox.helpers import (
    Receiver,
    advance,
    make_customer,
    make_price,
    raw,
    sandbox_events,
    types_about,
)

AUTH_CARD = "pm_card_authenticationRequired"
HOUR = 3600


def _subscribe(
    client: stripe.StripeClient, customer: stripe.Customer, price: stripe.Price, **extra: object
) -> stripe.Subscription:
    return client.v1.subscriptions.create(
        params=raw({"customer": customer.id, "items": [{"price": price.id}], **extra})
    )


def _latest_invoice(client: stripe.StripeClient, sub_id: str) -> stripe.Invoice:
    sub = client.v1.subscriptions.retrieve(sub_id)
    assert isinstance(sub.latest_invoice, str)
    return client.v1.invoices.retrieve(sub.latest_invoice)


def _set_default_card(client: stripe.StripeClient, customer_id: str, token: str) -> None:
    pm = client.v1.payment_methods.attach(token, params={"customer": customer_id})
    client.v1.customers.update(
        customer_id, params={"invoice_settings": {"default_payment_method": pm.id}}
    )


def _authenticate(ctl: httpx.Client, invoice_id: str, outcome: str) -> dict[str, object]:
    response = ctl.post(f"/invoices/{invoice_id}/authenticate", json={"outcome": outcome})
    assert response.status_code == 200, response.text
    data: dict[str, object] = response.json()
    return data


def _change_price(
    client: stripe.StripeClient, sub_id: str, price: stripe.Price, **extra: object
) -> stripe.Subscription:
    item = client.v1.subscriptions.retrieve(sub_id)["items"].data[0]
    return client.v1.subscriptions.update(
        sub_id,
        params=raw(
            {
                "items": [{"id": item.id, "price": price.id}],
                "proration_behavior": "always_invoice",
                "payment_behavior": "pending_if_incomplete",
                **extra,
            }
        ),
    )


def test_authentication_cards_attach_like_any_card(client: stripe.StripeClient) -> None:
    customer = make_customer(client, card=None)
    for token, last4 in [
        ("pm_card_authenticationRequired", "3184"),
        ("pm_card_threeDSecure2Required", "3220"),
        ("pm_card_authenticationRequiredChargeDeclinedInsufficientFunds", "3178"),
    ]:
        pm = client.v1.payment_methods.attach(token, params={"customer": customer.id})
        assert pm.card is not None and (pm.card.brand, pm.card.last4) == ("visa", last4)


def test_first_invoice_waits_for_authentication_then_the_subscription_activates(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    customer = make_customer(client, card=AUTH_CARD)
    sub = _subscribe(client, customer, make_price(client, 2000))
    assert sub.status == "incomplete"
    invoice = _latest_invoice(client, sub.id)
    assert (invoice.status, invoice.attempt_count, invoice.amount_paid) == ("open", 1, 0)
    assert types_about(ctl, {invoice.id})[-2:] == [
        "invoice.payment_failed",
        "invoice.payment_action_required",
    ]
    assert invoice.hosted_invoice_url is not None
    page = httpx.get(invoice.hosted_invoice_url)
    assert 'id="authenticate"' in page.text and 'id="fail_authentication"' in page.text

    result = _authenticate(ctl, invoice.id, "succeed")
    assert result["decline_code"] is None
    assert client.v1.invoices.retrieve(invoice.id).status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    assert types_about(ctl, {sub.id, invoice.id})[-3:] == [
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
    ]
    # Nothing left to authenticate: the control call and the page say so.
    again = ctl.post(f"/invoices/{invoice.id}/authenticate", json={"outcome": "succeed"})
    assert again.status_code == 400
    assert 'id="authenticate"' not in httpx.get(invoice.hosted_invoice_url).text


def test_error_if_incomplete_refuses_a_card_that_needs_authentication(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    customer = make_customer(client, card="pm_card_threeDSecure2Required")
    with pytest.raises(stripe.CardError) as excinfo:
        _subscribe(client, customer, make_price(client), payment_behavior="error_if_incomplete")
    assert excinfo.value.http_status == 402
    assert excinfo.value.code == "invoice_payment_intent_requires_action"
    assert client.v1.subscriptions.list(params={"status": "all"}).data == []
    assert sandbox_events(ctl, "invoice.payment_action_required") == []


def test_default_incomplete_then_pay_server_side_needs_authentication(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    customer = make_customer(client, card=None)
    sub = _subscribe(client, customer, make_price(client), payment_behavior="default_incomplete")
    invoice = _latest_invoice(client, sub.id)
    # default_incomplete: finalized and open, no payment attempted yet.
    assert (sub.status, invoice.status, invoice.attempt_count) == ("incomplete", "open", 0)
    pm = client.v1.payment_methods.attach(AUTH_CARD, params={"customer": customer.id})
    with pytest.raises(stripe.CardError) as excinfo:
        client.v1.invoices.pay(invoice.id, params={"payment_method": pm.id})
    assert excinfo.value.code == "invoice_payment_intent_requires_action"
    assert types_about(ctl, {invoice.id})[-1] == "invoice.payment_action_required"

    # Failing authentication leaves the invoice open and the subscription incomplete.
    result = _authenticate(ctl, invoice.id, "fail")
    assert result["decline_code"] == "payment_intent_authentication_failure"
    assert types_about(ctl, {invoice.id})[-1] == "invoice.payment_failed"
    assert client.v1.invoices.retrieve(invoice.id).status == "open"
    assert client.v1.subscriptions.retrieve(sub.id).status == "incomplete"
    assert invoice.hosted_invoice_url is not None
    page = httpx.get(invoice.hosted_invoice_url).text
    assert 'id="authenticate"' not in page and 'id="pay"' in page

    # No payment within 23 h: incomplete_expired, the invoice voided.
    advance(ctl, 23 * HOUR + 1)
    assert client.v1.subscriptions.retrieve(sub.id).status == "incomplete_expired"
    assert client.v1.invoices.retrieve(invoice.id).status == "void"


def test_default_incomplete_paid_with_a_card_that_needs_no_authentication(
    client: stripe.StripeClient,
) -> None:
    customer = make_customer(client, card=None)
    sub = _subscribe(client, customer, make_price(client), payment_behavior="default_incomplete")
    invoice = _latest_invoice(client, sub.id)
    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    paid = client.v1.invoices.pay(invoice.id, params={"payment_method": pm.id})
    assert paid.status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_authentication_then_decline(client: stripe.StripeClient, ctl: httpx.Client) -> None:
    customer = make_customer(
        client, card="pm_card_authenticationRequiredChargeDeclinedInsufficientFunds"
    )
    sub = _subscribe(client, customer, make_price(client))
    invoice = _latest_invoice(client, sub.id)
    result = _authenticate(ctl, invoice.id, "succeed")
    assert result["decline_code"] == "insufficient_funds"
    assert client.v1.invoices.retrieve(invoice.id).status == "open"
    assert client.v1.subscriptions.retrieve(sub.id).status == "incomplete"


def test_hosted_page_authenticates(client: stripe.StripeClient, ctl: httpx.Client) -> None:
    customer = make_customer(client, card=AUTH_CARD)
    sub = _subscribe(client, customer, make_price(client))
    invoice = _latest_invoice(client, sub.id)
    assert invoice.hosted_invoice_url is not None
    response = httpx.post(f"{invoice.hosted_invoice_url}/authenticate", data={"outcome": "succeed"})
    assert response.status_code == 303
    assert response.headers["location"].endswith(f"/_sandbox/pages/invoices/{invoice.id}")
    assert client.v1.invoices.retrieve(invoice.id).status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


@pytest.mark.browser
async def test_hosted_page_in_chromium_authenticates_or_fails(
    browser: Browser,
    client: stripe.StripeClient,
    ctl: httpx.Client,
    receiver: Receiver,
) -> None:
    customer = make_customer(client, card=AUTH_CARD)
    first = _subscribe(client, customer, make_price(client, 1500))
    failing = _subscribe(client, customer, make_price(client, 2500))
    page = await browser.new_page()

    invoice = _latest_invoice(client, failing.id)
    assert invoice.hosted_invoice_url is not None
    await page.goto(invoice.hosted_invoice_url)
    await page.click("#fail_authentication")
    await page.wait_for_selector("#pay")
    assert await page.query_selector("#authenticate") is None
    assert (await page.text_content("#status")) == "open"
    assert client.v1.subscriptions.retrieve(failing.id).status == "incomplete"

    invoice = _latest_invoice(client, first.id)
    assert invoice.hosted_invoice_url is not None
    await page.goto(invoice.hosted_invoice_url)
    await page.click("#authenticate")
    await page.wait_for_function("document.querySelector('#status').textContent === 'paid'")
    assert client.v1.subscriptions.retrieve(first.id).status == "active"
    event = await asyncio.to_thread(receiver.wait_for_event, "invoice.paid", invoice.id)
    assert event["data"]["object"]["status"] == "paid"


def test_renewal_needing_authentication_goes_past_due(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    customer = make_customer(client)
    sub = _subscribe(client, customer, make_price(client))
    _set_default_card(client, customer.id, AUTH_CARD)
    period_end = sub["items"].data[0].current_period_end
    advance(ctl, period_end - ctl.get("/clock").json()["now"] + 1)
    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert renewed.status == "past_due"
    invoice = _latest_invoice(client, sub.id)
    assert (invoice.billing_reason, invoice.status) == ("subscription_cycle", "open")
    assert types_about(ctl, {invoice.id})[-1] == "invoice.payment_action_required"

    _authenticate(ctl, invoice.id, "succeed")
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_control_fail_payment_with_an_authentication_card_requires_action(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    customer = make_customer(client)
    sub = _subscribe(client, customer, make_price(client))
    failed = ctl.post(f"/subscriptions/{sub.id}/fail_payment", json={"payment_method": AUTH_CARD})
    assert failed.status_code == 200, failed.text
    assert failed.json()["subscription"]["status"] == "past_due"
    invoice_id = failed.json()["invoice"]["id"]
    assert "invoice.payment_action_required" in types_about(ctl, {invoice_id})
    _authenticate(ctl, invoice_id, "succeed")
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


# pending updates


def test_pending_if_incomplete_applies_at_once_when_paid(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    customer = make_customer(client)
    sub = _subscribe(client, customer, make_price(client, 1000))
    higher = make_price(client, 3000)
    updated = _change_price(client, sub.id, higher)
    assert updated.pending_update is None
    assert updated["items"].data[0].price.id == higher.id
    assert _latest_invoice(client, sub.id).status == "paid"
    assert sandbox_events(ctl, "customer.subscription.pending_update_applied") == []


def test_declined_price_change_keeps_the_old_plan_until_the_update_expires(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    customer = make_customer(client)
    lower = make_price(client, 1000)
    sub = _subscribe(client, customer, lower)
    _set_default_card(client, customer.id, "pm_card_chargeDeclined")
    higher = make_price(client, 3000)
    now = ctl.get("/clock").json()["now"]
    updated = _change_price(client, sub.id, higher)

    assert updated.status == "active"
    assert updated["items"].data[0].price.id == lower.id
    pending = updated.pending_update
    assert pending is not None and pending.expires_at == now + 23 * HOUR
    assert pending.subscription_items is not None
    assert [i.price.id for i in pending.subscription_items] == [higher.id]
    invoice = _latest_invoice(client, sub.id)
    assert (invoice.billing_reason, invoice.status) == ("subscription_update", "open")
    assert invoice.next_payment_attempt is None

    advance(ctl, 23 * HOUR + 1)
    expired = client.v1.subscriptions.retrieve(sub.id)
    assert expired.pending_update is None and expired.status == "active"
    assert expired["items"].data[0].price.id == lower.id
    assert client.v1.invoices.retrieve(invoice.id).status == "void"
    assert types_about(ctl, {sub.id, invoice.id})[-3:] == [
        "invoice.voided",
        "customer.subscription.updated",
        "customer.subscription.pending_update_expired",
    ]


def test_price_change_needing_authentication_applies_once_authenticated(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    customer = make_customer(client)
    lower = make_price(client, 1000)
    sub = _subscribe(client, customer, lower)
    _set_default_card(client, customer.id, AUTH_CARD)
    higher = make_price(client, 3000)
    updated = _change_price(client, sub.id, higher)
    assert updated.pending_update is not None
    assert updated["items"].data[0].price.id == lower.id
    invoice = _latest_invoice(client, sub.id)
    assert types_about(ctl, {invoice.id})[-1] == "invoice.payment_action_required"
    assert invoice.hosted_invoice_url is not None
    assert 'id="authenticate"' in httpx.get(invoice.hosted_invoice_url).text

    _authenticate(ctl, invoice.id, "succeed")
    applied = client.v1.subscriptions.retrieve(sub.id)
    assert applied.pending_update is None and applied.status == "active"
    assert applied["items"].data[0].price.id == higher.id
    assert types_about(ctl, {sub.id})[-1] == "customer.subscription.pending_update_applied"


def test_pending_update_invoice_paid_server_side_applies_the_update(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    customer = make_customer(client)
    sub = _subscribe(client, customer, make_price(client, 1000))
    _set_default_card(client, customer.id, "pm_card_chargeDeclined")
    higher = make_price(client, 3000)
    _change_price(client, sub.id, higher)
    invoice = _latest_invoice(client, sub.id)
    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    client.v1.invoices.pay(invoice.id, params={"payment_method": pm.id})
    applied = client.v1.subscriptions.retrieve(sub.id)
    assert applied.pending_update is None
    assert applied["items"].data[0].price.id == higher.id


def test_interval_change_as_a_pending_update(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    customer = make_customer(client)
    monthly = make_price(client, 1000)
    sub = _subscribe(client, customer, monthly)
    anchor = sub.billing_cycle_anchor
    _set_default_card(client, customer.id, AUTH_CARD)
    yearly = make_price(client, 10000, "year")
    updated = _change_price(client, sub.id, yearly)
    assert updated.billing_cycle_anchor == anchor
    assert updated["items"].data[0].price.id == monthly.id
    assert updated.pending_update is not None
    assert updated.pending_update.billing_cycle_anchor is not None
    _authenticate(ctl, _latest_invoice(client, sub.id).id, "succeed")
    applied = client.v1.subscriptions.retrieve(sub.id)
    assert applied["items"].data[0].price.id == yearly.id
    assert applied.billing_cycle_anchor == updated.pending_update.billing_cycle_anchor


def test_pending_if_incomplete_refuses_unsupported_parameters(
    client: stripe.StripeClient,
) -> None:
    customer = make_customer(client)
    sub = _subscribe(client, customer, make_price(client, 1000))
    higher = make_price(client, 3000)
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        _change_price(client, sub.id, higher, metadata={"tier": "pro"})
    assert excinfo.value.http_status == 400
    assert excinfo.value.param == "metadata"
    item = sub["items"].data[0]
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.subscriptions.update(
            sub.id,
            params={
                "items": [{"id": item.id, "deleted": True}, {"price": higher.id}],
                "payment_behavior": "pending_if_incomplete",
            },
        )
    assert excinfo.value.param == "items[0][deleted]"
    # Nothing changed.
    assert client.v1.subscriptions.retrieve(sub.id)["items"].data[0].price.id == item.price.id
    with pytest.raises(stripe.InvalidRequestError):
        _subscribe(client, customer, higher, payment_behavior="pending_if_incomplete")


def test_incomplete_subscription_refuses_changes_but_metadata(
    client: stripe.StripeClient,
) -> None:
    customer = make_customer(client, card="pm_card_chargeDeclined")
    sub = _subscribe(client, customer, make_price(client, 1000))
    assert sub.status == "incomplete"
    higher = make_price(client, 3000)
    item = sub["items"].data[0]
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.subscriptions.update(
            sub.id, params={"items": [{"id": item.id, "price": higher.id}]}
        )
    assert excinfo.value.http_status == 400 and excinfo.value.param == "items"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    tagged = client.v1.subscriptions.update(sub.id, params={"metadata": {"user": "7"}})
    assert tagged.metadata is not None and tagged.metadata["user"] == "7"
    assert client.v1.subscriptions.cancel(sub.id).status == "canceled"


def test_price_change_while_past_due_charges_the_open_balance_separately(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    customer = make_customer(client)
    sub = _subscribe(client, customer, make_price(client, 1000))
    failed = ctl.post(f"/subscriptions/{sub.id}/fail_payment", json={})
    assert failed.json()["subscription"]["status"] == "past_due"
    higher = make_price(client, 3000)
    # Stripe accepts changes to a past_due subscription; the renewal invoice stays open.
    updated = _change_price(client, sub.id, higher)
    assert updated.pending_update is None
    assert updated["items"].data[0].price.id == higher.id
    assert updated.status == "past_due"
    assert client.v1.invoices.retrieve(failed.json()["invoice"]["id"]).status == "open"


def test_error_if_incomplete_price_change_needing_authentication_changes_nothing(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    customer = make_customer(client)
    lower = make_price(client, 1000)
    sub = _subscribe(client, customer, lower)
    _set_default_card(client, customer.id, AUTH_CARD)
    item = sub["items"].data[0]
    with pytest.raises(stripe.CardError) as excinfo:
        client.v1.subscriptions.update(
            sub.id,
            params={
                "items": [{"id": item.id, "price": make_price(client, 3000).id}],
                "proration_behavior": "always_invoice",
                "payment_behavior": "error_if_incomplete",
            },
        )
    assert excinfo.value.code == "invoice_payment_intent_requires_action"
    unchanged = client.v1.subscriptions.retrieve(sub.id)
    assert unchanged["items"].data[0].price.id == lower.id and unchanged.status == "active"


def test_default_incomplete_price_change_waits_past_due(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    customer = make_customer(client)
    sub = _subscribe(client, customer, make_price(client, 1000))
    item = sub["items"].data[0]
    updated = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": item.id, "price": make_price(client, 3000).id}],
            "proration_behavior": "always_invoice",
            "payment_behavior": "default_incomplete",
        },
    )
    assert updated.status == "past_due"
    invoice = _latest_invoice(client, sub.id)
    assert (invoice.status, invoice.attempt_count) == ("open", 0)
    client.v1.invoices.pay(invoice.id)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
