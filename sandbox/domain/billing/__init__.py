"""Invoices, charges and subscription state changes.

Shared by the API handlers, Checkout, the control API and the clock, so that a renewal
triggered by `/_sandbox/clock/advance` emits exactly what a real one would: the events
are emitted step by step, each with the object as it is at that step.

One module per responsibility; this package re-exports them so callers write
`billing.attempt_payment(...)`.
"""

from sandbox.domain.billing.common import (
    ENDED,
    INCOMPLETE_SECONDS,
    NO_PAYMENT_METHOD,
    PENDING_UPDATE_SECONDS,
    REQUIRES_ACTION_MESSAGE,
    RETRY_AFTER_DAYS,
    interval_of,
    money,
    payment_error,
    plan_of,
    product_name,
    subscription_of,
)
from sandbox.domain.billing.invoices import (
    add_invoiceitem_line,
    add_item_line,
    build_invoice,
    new_invoice,
    new_invoice_item,
    pending_items,
    void,
)
from sandbox.domain.billing.payments import (
    attempt_payment,
    authenticate,
    awaiting_authentication,
    due_invoice_retries,
    finalize,
    invoice_subscription,
    issue,
    mark_paid,
    pay_open_invoices,
    renew,
    retry_invoice,
)
from sandbox.domain.billing.pending_updates import (
    apply_pending_update,
    discard_pending_update,
    expire_incomplete,
    pending_update_of,
)
from sandbox.domain.billing.subscriptions import (
    billing_invoices,
    cancel_now,
    new_item,
    new_subscription,
    open_invoices,
    payment_method_for,
    set_item_price,
    set_status,
    settle_status,
    update_subscription,
)

__all__ = [
    "ENDED",
    "INCOMPLETE_SECONDS",
    "NO_PAYMENT_METHOD",
    "PENDING_UPDATE_SECONDS",
    "REQUIRES_ACTION_MESSAGE",
    "RETRY_AFTER_DAYS",
    "add_invoiceitem_line",
    "add_item_line",
    "apply_pending_update",
    "attempt_payment",
    "authenticate",
    "awaiting_authentication",
    "billing_invoices",
    "build_invoice",
    "cancel_now",
    "discard_pending_update",
    "due_invoice_retries",
    "expire_incomplete",
    "finalize",
    "interval_of",
    "invoice_subscription",
    "issue",
    "mark_paid",
    "money",
    "new_invoice",
    "new_invoice_item",
    "new_item",
    "new_subscription",
    "open_invoices",
    "pay_open_invoices",
    "payment_error",
    "payment_method_for",
    "pending_items",
    "pending_update_of",
    "plan_of",
    "product_name",
    "renew",
    "retry_invoice",
    "set_item_price",
    "set_status",
    "settle_status",
    "subscription_of",
    "update_subscription",
    "void",
]
