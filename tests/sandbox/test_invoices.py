"""Invoices: list filters, retrieve, lines, paying through the API and hosted pages."""

from __future__ import annotations

import httpx
import pytest
import stripe

from tests.sandbox.helpers import make_customer, make_price


def test_list_filters(client: stripe.StripeClient, ctl: httpx.Client) -> None:
    ada, bob = make_customer(client, email="ada@example.com"), make_customer(client, email="b@x.io")
    price = make_price(client)
    sub_a = client.v1.subscriptions.create(
        params={"customer": ada.id, "items": [{"price": price.id}]}
    )
    sub_b = client.v1.subscriptions.create(
        params={"customer": bob.id, "items": [{"price": price.id}]}
    )
    ctl.post(f"/subscriptions/{sub_b.id}/fail_payment", json={})

    by_customer = client.v1.invoices.list(params={"customer": ada.id})
    assert [i.customer for i in by_customer.data] == [ada.id]
    by_sub = client.v1.invoices.list(params={"subscription": sub_b.id})
    assert len(by_sub.data) == 2
    open_ones = client.v1.invoices.list(params={"status": "open"})
    assert [i.customer for i in open_ones.data] == [bob.id]
    invoice = client.v1.invoices.retrieve(by_customer.data[0].id)
    assert invoice.parent is not None and invoice.parent.subscription_details is not None
    assert invoice.parent.subscription_details.subscription == sub_a.id
    assert (invoice.customer_email, invoice.currency) == ("ada@example.com", "usd")
    assert invoice.period_start <= invoice.period_end
    lines = client.v1.invoices.line_items.list(invoice.id)
    assert [line.amount for line in lines.data] == [2000]


def test_pay_open_invoice_via_api(client: stripe.StripeClient, ctl: httpx.Client) -> None:
    customer = make_customer(client, card="pm_card_chargeDeclined")
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": make_price(client).id}]}
    )
    [invoice] = client.v1.invoices.list(params={"subscription": sub.id}).data
    with pytest.raises(stripe.CardError):
        client.v1.invoices.pay(invoice.id)
    assert client.v1.invoices.retrieve(invoice.id).attempt_count == 2

    visa = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    paid = client.v1.invoices.pay(invoice.id, params={"payment_method": visa.id})
    assert paid.status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_hosted_invoice_page_pays(client: stripe.StripeClient) -> None:
    customer = make_customer(client, card="pm_card_chargeDeclined")
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": make_price(client).id}]}
    )
    [invoice] = client.v1.invoices.list(params={"subscription": sub.id}).data
    assert invoice.hosted_invoice_url is not None and invoice.invoice_pdf is not None
    page = httpx.get(invoice.hosted_invoice_url)
    assert page.status_code == 200 and 'id="pay"' in page.text
    paid = httpx.post(f"{invoice.hosted_invoice_url}/pay")
    assert paid.status_code == 303
    assert client.v1.invoices.retrieve(invoice.id).status == "paid"
    assert httpx.get(invoice.invoice_pdf).status_code == 200


def test_void_and_mark_uncollectible(client: stripe.StripeClient) -> None:
    customer = make_customer(client, card="pm_card_chargeDeclined")
    price = make_price(client)
    first = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    second = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    [inv1] = client.v1.invoices.list(params={"subscription": first.id}).data
    [inv2] = client.v1.invoices.list(params={"subscription": second.id}).data
    assert client.v1.invoices.void_invoice(inv1.id).status == "void"
    assert client.v1.invoices.mark_uncollectible(inv2.id).status == "uncollectible"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.void_invoice(inv1.id)
    with pytest.raises(stripe.InvalidRequestError) as excinfo:
        client.v1.invoices.retrieve("in_missing")
    assert excinfo.value.http_status == 404
