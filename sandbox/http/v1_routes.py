"""The `/v1/` route table: each Stripe endpoint (method and path template) to the domain
handler that serves it. A new route also needs its `stripe.params` class in
`sandbox.domain.validation.PARAMS` (a test walks this table)."""

from __future__ import annotations

from sandbox.domain.resources import (
    account_links,
    accounts,
    checkout,
    customers,
    events,
    invoices,
    payment_methods,
    prices,
    products,
    setup_intents,
    subscription_update,
    subscriptions,
    test_clocks,
)
from sandbox.http.routing import Route, Router

ROUTES: list[Route] = [
    # customers
    Route("POST", "/v1/customers", customers.create),
    Route("GET", "/v1/customers", customers.list_handler),
    Route("GET", "/v1/customers/{id}", customers.retrieve),
    Route("POST", "/v1/customers/{id}", customers.update),
    Route("DELETE", "/v1/customers/{id}", customers.delete),
    # payment_methods
    Route("GET", "/v1/payment_methods", payment_methods.list_handler),
    Route("GET", "/v1/payment_methods/{id}", payment_methods.retrieve),
    Route("POST", "/v1/payment_methods/{id}", payment_methods.update),
    Route("POST", "/v1/payment_methods/{id}/attach", payment_methods.attach_handler),
    Route("POST", "/v1/payment_methods/{id}/detach", payment_methods.detach_handler),
    Route("GET", "/v1/customers/{id}/payment_methods", payment_methods.list_for_customer),
    # products
    Route("POST", "/v1/products", products.create),
    Route("GET", "/v1/products", products.list_handler),
    Route("GET", "/v1/products/{id}", products.retrieve),
    Route("POST", "/v1/products/{id}", products.update),
    Route("DELETE", "/v1/products/{id}", products.delete),
    # prices
    Route("POST", "/v1/prices", prices.create),
    Route("GET", "/v1/prices", prices.list_handler),
    Route("GET", "/v1/prices/{id}", prices.retrieve),
    Route("POST", "/v1/prices/{id}", prices.update),
    # checkout
    Route("POST", "/v1/checkout/sessions", checkout.create),
    Route("GET", "/v1/checkout/sessions", checkout.list_handler),
    Route("GET", "/v1/checkout/sessions/{id}", checkout.retrieve),
    Route("GET", "/v1/checkout/sessions/{id}/line_items", checkout.list_line_items),
    Route("POST", "/v1/checkout/sessions/{id}/expire", checkout.expire),
    # setup intents (made by setup-mode Checkout Sessions)
    Route("GET", "/v1/setup_intents/{id}", setup_intents.retrieve),
    # subscriptions
    Route("POST", "/v1/subscriptions", subscriptions.create),
    Route("GET", "/v1/subscriptions", subscriptions.list_handler),
    Route("GET", "/v1/subscriptions/{id}", subscriptions.retrieve),
    Route("POST", "/v1/subscriptions/{id}", subscription_update.update),
    Route("DELETE", "/v1/subscriptions/{id}", subscriptions.cancel),
    # invoices
    Route("GET", "/v1/invoices", invoices.list_handler),
    Route("GET", "/v1/invoices/{id}", invoices.retrieve),
    Route("POST", "/v1/invoices/{id}", invoices.update),
    Route("GET", "/v1/invoices/{id}/lines", invoices.lines),
    Route("POST", "/v1/invoices/{id}/pay", invoices.pay),
    Route("POST", "/v1/invoices/{id}/void", invoices.void_handler),
    Route("POST", "/v1/invoices/{id}/finalize", invoices.finalize_handler),
    Route("POST", "/v1/invoices/{id}/mark_uncollectible", invoices.mark_uncollectible),
    Route("GET", "/v1/invoiceitems", invoices.list_items),
    Route("GET", "/v1/invoiceitems/{id}", invoices.retrieve_item),
    # accounts
    Route("POST", "/v1/accounts", accounts.create),
    Route("GET", "/v1/accounts", accounts.list_handler),
    Route("GET", "/v1/accounts/{id}", accounts.retrieve),
    Route("POST", "/v1/accounts/{id}", accounts.update),
    Route("DELETE", "/v1/accounts/{id}", accounts.delete),
    Route("POST", "/v1/account_links", account_links.create_link),
    # events
    Route("GET", "/v1/events", events.list_handler),
    Route("GET", "/v1/events/{id}", events.retrieve),
    # test_clocks
    Route("POST", "/v1/test_helpers/test_clocks", test_clocks.create),
    Route("GET", "/v1/test_helpers/test_clocks", test_clocks.list_handler),
    Route("GET", "/v1/test_helpers/test_clocks/{id}", test_clocks.retrieve),
    Route("DELETE", "/v1/test_helpers/test_clocks/{id}", test_clocks.delete),
    Route("POST", "/v1/test_helpers/test_clocks/{id}/advance", test_clocks.advance),
]

ROUTER = Router(ROUTES)
