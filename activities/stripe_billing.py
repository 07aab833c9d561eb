"""Stripe activities of `subscription-<user>`: one Stripe side effect each.

Reads re-fetch the subscription or invoice (events are triggers, not truth). Writes
carry the key `<workflow id>/<update id>/<step>` built by the workflow (SPEC 3.0).
Object shapes follow the library's API version: the period end lives on the
subscription item, an invoice's subscription under `parent.subscription_details`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import stripe
from temporalio import activity

from activities.stripe_gateway import call_stripe
from onramp.logging import log_event
from workflows.contracts import (
    AttachPaymentMethodInput,
    ChangePriceInput,
    CreateSubscriptionInput,
    InvoiceSnapshot,
    ReadStripeObjectInput,
    SetCancelAtPeriodEndInput,
    SetDefaultPaymentMethodInput,
    SetSubscriptionPaymentMethodInput,
    SubscriptionSnapshot,
)

logger = logging.getLogger(__name__)


def _time(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value is not None else None


def _id(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    found = value.get("id") if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


def _plain(obj: Any) -> dict[str, Any]:
    """A StripeObject as plain nested dicts (StripeObject refuses dict methods)."""
    if isinstance(obj, stripe.StripeObject):
        plain: dict[str, Any] = obj.to_dict()
        return plain
    return dict(obj)


def subscription_snapshot(obj: Any) -> SubscriptionSnapshot:
    """Reduce a Stripe subscription to what the tier function needs."""
    sub = _plain(obj)
    items = sub["items"]["data"] if sub.get("items") else []
    item = items[0] if items else None
    price = item["price"] if item is not None else None
    interval = None
    if price is not None and price.get("recurring"):
        interval = price["recurring"].get("interval")
    cycle = {"month": "monthly", "year": "yearly"}.get(interval or "")
    return SubscriptionSnapshot(
        subscription_id=sub["id"],
        customer_id=_id(sub["customer"]) or "",
        status=sub["status"],
        created=_time(sub["created"]) or datetime.fromtimestamp(0, UTC),
        item_id=item["id"] if item is not None else None,
        price_id=price["id"] if price is not None else None,
        price_lookup_key=price.get("lookup_key") if price is not None else None,
        billing_cycle=cycle,
        cancel_at_period_end=bool(sub.get("cancel_at_period_end")),
        current_period_end=_time(item.get("current_period_end")) if item is not None else None,
    )


def invoice_snapshot(obj: Any) -> InvoiceSnapshot:
    inv = _plain(obj)
    parent = inv.get("parent") or {}
    details = parent.get("subscription_details") or {}
    return InvoiceSnapshot(
        invoice_id=inv["id"],
        customer_id=_id(inv["customer"]) or "",
        subscription_id=_id(details.get("subscription")),
        number=inv.get("number"),
        status=inv["status"],
        currency=inv["currency"],
        amount_due=inv.get("amount_due") or 0,
        amount_paid=inv.get("amount_paid") or 0,
        amount_remaining=inv.get("amount_remaining") or 0,
        total=inv.get("total") or 0,
        period_start=_time(inv.get("period_start")),
        period_end=_time(inv.get("period_end")),
        hosted_invoice_url=inv.get("hosted_invoice_url"),
        invoice_pdf=inv.get("invoice_pdf"),
        created=_time(inv["created"]) or datetime.fromtimestamp(0, UTC),
    )


class StripeBillingActivities:
    def __init__(self, client: stripe.StripeClient) -> None:
        self.stripe = client

    @activity.defn
    async def read_subscription(self, request: ReadStripeObjectInput) -> SubscriptionSnapshot:
        sub = await call_stripe(
            "subscriptions.retrieve",
            self.stripe.v1.subscriptions.retrieve_async(request.stripe_id),
        )
        return subscription_snapshot(sub)

    @activity.defn
    async def read_invoice(self, request: ReadStripeObjectInput) -> InvoiceSnapshot:
        inv = await call_stripe(
            "invoices.retrieve", self.stripe.v1.invoices.retrieve_async(request.stripe_id)
        )
        return invoice_snapshot(inv)

    @activity.defn
    async def attach_payment_method(self, request: AttachPaymentMethodInput) -> str:
        pm = await call_stripe(
            "payment_methods.attach",
            self.stripe.v1.payment_methods.attach_async(
                request.payment_method,
                {"customer": request.customer_id},
                {"idempotency_key": request.idempotency_key},
            ),
        )
        return pm.id

    @activity.defn
    async def set_default_payment_method(self, request: SetDefaultPaymentMethodInput) -> None:
        await call_stripe(
            "customers.update",
            self.stripe.v1.customers.update_async(
                request.customer_id,
                {"invoice_settings": {"default_payment_method": request.payment_method_id}},
                {"idempotency_key": request.idempotency_key},
            ),
        )

    @activity.defn
    async def create_subscription(self, request: CreateSubscriptionInput) -> SubscriptionSnapshot:
        sub = await call_stripe(
            "subscriptions.create",
            self.stripe.v1.subscriptions.create_async(
                {
                    "customer": request.customer_id,
                    "items": [{"price": request.price_id}],
                    "default_payment_method": request.payment_method_id,
                    # A declined card is an error now, not a subscription left incomplete.
                    "payment_behavior": "error_if_incomplete",
                    "metadata": {
                        "user_id": request.user_id,
                        "workflow_id": request.workflow_id,
                    },
                },
                {"idempotency_key": request.idempotency_key},
            ),
        )
        log_event(
            logger, "SUBSCRIPTION_CREATED", user_id=request.user_id,
            stripe_subscription_id=sub.id, price_id=request.price_id,
        )  # fmt: skip
        return subscription_snapshot(sub)

    @activity.defn
    async def change_subscription_price(self, request: ChangePriceInput) -> SubscriptionSnapshot:
        # The read is no side effect; the one write is the update under its key.
        current = await call_stripe(
            "subscriptions.retrieve",
            self.stripe.v1.subscriptions.retrieve_async(request.subscription_id),
        )
        item_id = current["items"]["data"][0]["id"]
        sub = await call_stripe(
            "subscriptions.update",
            self.stripe.v1.subscriptions.update_async(
                request.subscription_id,
                {
                    "items": [{"id": item_id, "price": request.price_id}],
                    "proration_behavior": request.proration_behavior,
                    "cancel_at_period_end": False,
                },
                {"idempotency_key": request.idempotency_key},
            ),
        )
        return subscription_snapshot(sub)

    @activity.defn
    async def set_cancel_at_period_end(
        self, request: SetCancelAtPeriodEndInput
    ) -> SubscriptionSnapshot:
        sub = await call_stripe(
            "subscriptions.update",
            self.stripe.v1.subscriptions.update_async(
                request.subscription_id,
                {"cancel_at_period_end": request.cancel_at_period_end},
                {"idempotency_key": request.idempotency_key},
            ),
        )
        return subscription_snapshot(sub)

    @activity.defn
    async def set_subscription_payment_method(
        self, request: SetSubscriptionPaymentMethodInput
    ) -> SubscriptionSnapshot:
        sub = await call_stripe(
            "subscriptions.update",
            self.stripe.v1.subscriptions.update_async(
                request.subscription_id,
                {"default_payment_method": request.payment_method_id},
                {"idempotency_key": request.idempotency_key},
            ),
        )
        return subscription_snapshot(sub)
