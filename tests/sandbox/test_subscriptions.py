"""Subscriptions: first charge, declines, price changes with proration behaviours,
cancellation, renewals and dunning driven by the sandbox clock."""

from __future__ import annotations

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
    wait_for,
)

DAY = 86_400


def _subscribe(
    client: stripe.StripeClient, customer: stripe.Customer, price: stripe.Price, **extra: object
) -> stripe.Subscription:
    return client.v1.subscriptions.create(
        params=raw({"customer": customer.id, "items": [{"price": price.id}], **extra})
    )


def _invoices(client: stripe.StripeClient, sub: stripe.Subscription) -> list[stripe.Invoice]:
    return list(client.v1.invoices.list(params={"subscription": sub.id}).data)


def test_create_charges_the_default_payment_method(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    customer = make_customer(client)
    price = make_price(client, 2000)
    sub = client.v1.subscriptions.create(
        params={
            "customer": customer.id,
            "items": [{"price": price.id}],
            "metadata": {"user_id": "9"},
            "expand": ["latest_invoice"],
        }
    )
    assert sub.id.startswith("sub_") and sub.status == "active"
    item = sub["items"].data[0]
    assert item.id.startswith("si_") and item.price.id == price.id
    assert item.current_period_end - item.current_period_start >= 28 * DAY
    invoice = sub.latest_invoice
    assert isinstance(invoice, stripe.Invoice)
    assert (invoice.status, invoice.amount_due, invoice.amount_paid) == ("paid", 2000, 2000)
    assert invoice.number is not None and invoice.number.endswith("-0001")
    assert invoice.hosted_invoice_url and invoice.invoice_pdf
    assert invoice.parent is not None and invoice.parent.subscription_details is not None
    assert invoice.parent.subscription_details.subscription == sub.id
    assert invoice.lines.data[0].amount == 2000
    assert types_about(ctl, {sub.id, invoice.id}) == [
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    assert httpx.get(invoice.hosted_invoice_url).status_code == 200


def test_declining_card_leaves_an_incomplete_subscription(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    customer = make_customer(client, card="pm_card_chargeDeclined")
    sub = _subscribe(client, customer, make_price(client))
    assert sub.status == "incomplete"
    [invoice] = _invoices(client, sub)
    assert (invoice.status, invoice.attempt_count, invoice.amount_paid) == ("open", 1, 0)
    assert types_about(ctl, {sub.id, invoice.id})[-1] == "invoice.payment_failed"

    paid = ctl.post(f"/subscriptions/{sub.id}/pay", json={})
    assert paid.status_code == 200
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_error_if_incomplete_creates_nothing(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    customer = make_customer(client, card="pm_card_chargeDeclinedInsufficientFunds")
    with pytest.raises(stripe.CardError) as excinfo:
        _subscribe(client, customer, make_price(client), payment_behavior="error_if_incomplete")
    assert excinfo.value.code == "card_declined"
    assert excinfo.value.error is not None
    assert excinfo.value.error.decline_code == "insufficient_funds"
    assert client.v1.subscriptions.list(params={"status": "all"}).data == []
    assert ctl.get("/stats").json()["objects"].get("invoice", {"live": 0})["live"] == 0


def test_default_incomplete_waits_for_payment(client: stripe.StripeClient) -> None:
    customer = make_customer(client)
    sub = _subscribe(client, customer, make_price(client), payment_behavior="default_incomplete")
    assert sub.status == "incomplete"
    assert [i.status for i in _invoices(client, sub)] == ["open"]


def test_no_payment_method_is_an_error(client: stripe.StripeClient) -> None:
    customer = make_customer(client, card=None)
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        _subscribe(client, customer, make_price(client))
    assert excinfo.value.code == "resource_missing"


def test_price_change_with_create_prorations_bills_next_renewal(
    client: stripe.StripeClient, ctl: httpx.Client
) -> None:
    customer = make_customer(client)
    basic, pro = make_price(client, 1000), make_price(client, 3000)
    sub = _subscribe(client, customer, basic)
    item = sub["items"].data[0]
    advance(ctl, 10 * DAY)
    updated = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": item.id, "price": pro.id}],
            "proration_behavior": "create_prorations",
        },
    )
    assert updated["items"].data[0].price.id == pro.id
    assert updated["items"].data[0].id == item.id
    assert len(_invoices(client, sub)) == 1  # nothing billed yet
    pending = client.v1.invoice_items.list(params={"customer": customer.id, "pending": True})
    amounts = sorted(ii.amount for ii in pending.data)
    assert len(amounts) == 2 and amounts[0] < 0 < amounts[1]
    assert amounts[0] > -1000 and amounts[1] < 3000

    advance(ctl, item.current_period_end - ctl.get("/clock").json()["now"] + 1)
    newest = _invoices(client, sub)[0]
    assert newest.billing_reason == "subscription_cycle"
    assert newest.status == "paid"
    assert newest.amount_paid == 3000 + sum(amounts)
    assert len(newest.lines.data) == 3


def test_price_change_always_invoice_bills_now(client: stripe.StripeClient) -> None:
    customer = make_customer(client)
    basic, pro = make_price(client, 1000), make_price(client, 3000)
    sub = _subscribe(client, customer, basic)
    updated = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": sub["items"].data[0].id, "price": pro.id}],
            "proration_behavior": "always_invoice",
        },
    )
    invoices = _invoices(client, sub)
    assert len(invoices) == 2
    assert invoices[0].billing_reason == "subscription_update"
    assert invoices[0].status == "paid"
    assert 0 < invoices[0].amount_paid <= 2000
    assert updated.latest_invoice == invoices[0].id


def test_price_change_without_proration(client: stripe.StripeClient) -> None:
    customer = make_customer(client)
    basic, pro = make_price(client, 1000), make_price(client, 3000)
    sub = _subscribe(client, customer, basic)
    client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": sub["items"].data[0].id, "price": pro.id}],
            "proration_behavior": "none",
        },
    )
    assert len(_invoices(client, sub)) == 1
    assert client.v1.invoice_items.list(params={"customer": customer.id}).data == []


def test_update_validation(client: stripe.StripeClient) -> None:
    customer = make_customer(client)
    sub = _subscribe(client, customer, make_price(client))
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.subscriptions.update(sub.id, params={"proration_behavior": "sometimes"})
    assert excinfo.value.param == "proration_behavior"
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.subscriptions.update(sub.id, params={"items": [{"id": "si_nope", "price": "x"}]})
    assert excinfo.value.param == "items[0][id]"


def test_cancel_at_period_end_then_clock(
    client: stripe.StripeClient, ctl: httpx.Client, receiver: Receiver
) -> None:
    customer = make_customer(client)
    sub = _subscribe(client, customer, make_price(client))
    end = sub["items"].data[0].current_period_end
    flagged = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert flagged.cancel_at_period_end is True and flagged.cancel_at == end
    assert flagged.status == "active"
    updated = receiver.wait_for_event("customer.subscription.updated", sub.id)
    assert updated["data"]["previous_attributes"]["cancel_at_period_end"] is False

    advance(ctl, end - ctl.get("/clock").json()["now"] + 5)
    ended = client.v1.subscriptions.retrieve(sub.id)
    assert (ended.status, ended.ended_at) == ("canceled", end)
    deleted = receiver.wait_for_event("customer.subscription.deleted", sub.id)
    assert deleted["created"] == end
    assert len(_invoices(client, sub)) == 1  # no renewal


def test_cancel_now_and_list(client: stripe.StripeClient, receiver: Receiver) -> None:
    customer = make_customer(client)
    price = make_price(client)
    keep = _subscribe(client, customer, price)
    gone = _subscribe(client, customer, price)
    canceled = client.v1.subscriptions.cancel(gone.id)
    assert canceled.status == "canceled" and canceled.canceled_at is not None
    receiver.wait_for_event("customer.subscription.deleted", gone.id)

    assert [s.id for s in client.v1.subscriptions.list(params={"customer": customer.id}).data] == [
        keep.id
    ]
    assert [s.id for s in client.v1.subscriptions.list(params={"status": "canceled"}).data] == [
        gone.id
    ]
    assert len(client.v1.subscriptions.list(params={"status": "all"}).data) == 2
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.cancel(gone.id)


def test_renewal_charges_each_period(client: stripe.StripeClient, ctl: httpx.Client) -> None:
    customer = make_customer(client)
    sub = _subscribe(client, customer, make_price(client, 1200))
    first_end = sub["items"].data[0].current_period_end
    advance(ctl, 65 * DAY)
    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert renewed.status == "active"
    assert renewed["items"].data[0].current_period_start > first_end
    invoices = _invoices(client, sub)
    assert [i.billing_reason for i in invoices] == [
        "subscription_cycle",
        "subscription_cycle",
        "subscription_create",
    ]
    assert all(i.status == "paid" and i.amount_paid == 1200 for i in invoices)
    assert invoices[1].created == first_end


def test_failed_renewal_goes_past_due_then_unpaid(
    client: stripe.StripeClient, ctl: httpx.Client, receiver: Receiver
) -> None:
    customer = make_customer(client)
    sub = _subscribe(client, customer, make_price(client))
    failing = client.v1.payment_methods.attach(
        "pm_card_chargeDeclined", params={"customer": customer.id}
    )
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": failing.id}}
    )
    advance(ctl, sub["items"].data[0].current_period_end - ctl.get("/clock").json()["now"] + 1)
    assert client.v1.subscriptions.retrieve(sub.id).status == "past_due"
    renewal = _invoices(client, sub)[0]
    assert (renewal.status, renewal.attempt_count) == ("open", 1)
    assert renewal.next_payment_attempt is not None
    receiver.wait_for_event("invoice.payment_failed", renewal.id)

    def went_past_due() -> bool:
        return any(
            e["type"] == "customer.subscription.updated"
            and e["data"]["object"]["id"] == sub.id
            and e["data"]["object"]["status"] == "past_due"
            and e["data"]["previous_attributes"].get("status") == "active"
            for e in receiver.events("/platform")
        )

    wait_for(went_past_due, what="customer.subscription.updated to past_due")

    advance(ctl, 8 * DAY)  # the three retries fail too
    assert client.v1.invoices.retrieve(renewal.id).attempt_count == 4
    assert client.v1.subscriptions.retrieve(sub.id).status == "unpaid"


def test_control_fail_and_pay(client: stripe.StripeClient, ctl: httpx.Client) -> None:
    customer = make_customer(client)
    sub = _subscribe(client, customer, make_price(client))
    failed = ctl.post(f"/subscriptions/{sub.id}/fail_payment", json={})
    assert failed.status_code == 200, failed.text
    assert failed.json()["subscription"]["status"] == "past_due"
    invoice_id = failed.json()["invoice"]["id"]
    assert types_about(ctl, {sub.id, invoice_id})[-2:] == [
        "invoice.payment_failed",
        "customer.subscription.updated",
    ]
    paid = ctl.post(f"/subscriptions/{sub.id}/pay", json={})
    assert paid.status_code == 200
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
    assert client.v1.invoices.retrieve(invoice_id).status == "paid"
    assert ctl.post(f"/subscriptions/{sub.id}/pay", json={}).status_code == 400


def test_incomplete_expires_after_23_hours(client: stripe.StripeClient, ctl: httpx.Client) -> None:
    customer = make_customer(client, card="pm_card_chargeDeclined")
    sub = _subscribe(client, customer, make_price(client))
    advance(ctl, 23 * 3600 + 1)
    assert client.v1.subscriptions.retrieve(sub.id).status == "incomplete_expired"
    assert [i.status for i in _invoices(client, sub)] == ["void"]


def test_delete_customer_cancels_subscriptions(client: stripe.StripeClient) -> None:
    customer = make_customer(client)
    sub = _subscribe(client, customer, make_price(client))
    client.v1.customers.delete(customer.id)
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"


def test_update_metadata_payment_method_and_undo_cancel(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    customer = make_customer(client)
    sub = _subscribe(client, customer, make_price(client))
    other = client.v1.payment_methods.attach("pm_card_mastercard", params={"customer": customer.id})
    updated = client.v1.subscriptions.update(
        sub.id,
        params={
            "metadata": {"plan": "pro"},
            "default_payment_method": other.id,
            "cancel_at_period_end": True,
        },
    )
    assert updated["metadata"].to_dict() == {"plan": "pro"}
    assert updated.default_payment_method == other.id
    undone = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": False})
    assert (undone.cancel_at_period_end, undone.cancel_at, undone.canceled_at) == (
        False,
        None,
        None,
    )
    event = receiver.wait_for_event("customer.subscription.updated", sub.id)
    assert event["data"]["previous_attributes"]["metadata"] == {}
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.subscriptions.update(sub.id, params={"default_payment_method": "pm_elsewhere"})
    assert excinfo.value.param == "default_payment_method"


async def test_async_subscription_flow(client: stripe.StripeClient) -> None:
    customer = await client.v1.customers.create_async(
        params={
            "email": "async@example.com",
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    price = make_price(client)
    sub = await client.v1.subscriptions.create_async(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    assert sub.status == "active"
    canceled = await client.v1.subscriptions.cancel_async(sub.id)
    assert canceled.status == "canceled"
