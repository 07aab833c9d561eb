"""Subscription objects and their status changes (`customer.subscription.*`)."""

from __future__ import annotations

import copy

from sandbox.domain.billing.common import interval_of, plan_of, subscription_of
from sandbox.domain.context import Ctx
from sandbox.domain.events import previous_attributes
from sandbox.domain.ids import new_id
from sandbox.domain.jsontypes import Obj
from sandbox.domain.listing import list_object
from sandbox.domain.periods import add_interval
from sandbox.domain.shapes import stripe_object


def new_item(
    ctx: Ctx, sub_id: str, price: Obj, quantity: int, start: int, end: int, metadata: Obj
) -> Obj:
    return {
        "id": new_id("si"),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": ctx.now,
        "current_period_end": end,
        "current_period_start": start,
        "discounts": [],
        "metadata": metadata,
        "plan": plan_of(price),
        "price": copy.deepcopy(price),
        "quantity": quantity,
        "subscription": sub_id,
        "tax_rates": [],
    }


def set_item_price(item: Obj, price: Obj) -> None:
    item["price"] = copy.deepcopy(price)
    item["plan"] = plan_of(price)


SUBSCRIPTION_DEFAULTS: Obj = {
    "application": None,
    "application_fee_percent": None,
    "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
    "billing_cycle_anchor_config": None,
    "billing_thresholds": None,
    "cancellation_details": {"comment": None, "feedback": None, "reason": None},
    "collection_method": "charge_automatically",
    "customer_account": None,
    "days_until_due": None,
    "default_source": None,
    "default_tax_rates": [],
    "discounts": [],
    "ended_at": None,
    "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
    "latest_invoice": None,
    "livemode": False,
    "next_pending_invoice_item_invoice": None,
    "on_behalf_of": None,
    "pause_collection": None,
    "payment_settings": {
        "payment_method_options": None,
        "payment_method_types": None,
        "save_default_payment_method": "off",
    },
    "pending_invoice_item_interval": None,
    "pending_setup_intent": None,
    "pending_update": None,
    "schedule": None,
    "status": "incomplete",
    "transfer_data": None,
    "trial_end": None,
    "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
    "trial_start": None,
}
"""The fields of a new subscription that nothing about it decides."""


def new_subscription(
    ctx: Ctx,
    customer: Obj,
    lines: list[tuple[Obj, int, Obj]],
    *,
    metadata: Obj,
    default_payment_method: str | None,
    description: str | None = None,
    cancel_at_period_end: bool = False,
) -> Obj:
    """A subscription (status `incomplete`, not stored yet) with one item per price."""
    start = ctx.now
    interval, count = interval_of(lines[0][0])
    end = add_interval(start, interval, count, start)
    sub_id = new_id("sub")
    items = [new_item(ctx, sub_id, price, qty, start, end, meta) for price, qty, meta in lines]
    fields: Obj = {
        "billing_cycle_anchor": start,
        # Endive creates subscriptions in flexible billing mode unless told otherwise.
        "billing_mode": {"flexible": None, "type": "flexible", "updated_at": start},
        "cancel_at": end if cancel_at_period_end else None,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": start if cancel_at_period_end else None,
        "created": start,
        "currency": lines[0][0]["currency"],
        "customer": customer["id"],
        "default_payment_method": default_payment_method,
        "description": description,
        "items": list_object(items, f"/v1/subscription_items?subscription={sub_id}"),
        "metadata": metadata,
        "start_date": start,
        "test_clock": customer["test_clock"],
    }
    return stripe_object(sub_id, "subscription", SUBSCRIPTION_DEFAULTS, fields)


def payment_method_for(ctx: Ctx, sub: Obj) -> str | None:
    """The subscription's default payment method, else the customer's."""
    if sub["default_payment_method"]:
        return str(sub["default_payment_method"])
    customer = ctx.store.get(sub["customer"], "customer")
    if customer is None:
        return None
    value = customer["invoice_settings"]["default_payment_method"]
    return str(value) if value else None


def update_subscription(ctx: Ctx, sub: Obj, before: Obj) -> None:
    """Emit `customer.subscription.updated` if anything changed since `before`."""
    changed = previous_attributes(before, sub)
    if changed:
        ctx.emit("customer.subscription.updated", sub, previous=changed)


def set_status(ctx: Ctx, sub: Obj, status: str) -> None:
    if sub["status"] != status:
        before = copy.deepcopy(sub)
        sub["status"] = status
        update_subscription(ctx, sub, before)


def cancel_now(ctx: Ctx, sub: Obj, *, reason: str = "cancellation_requested") -> None:
    """End a subscription now (`customer.subscription.deleted`)."""
    sub["status"] = "canceled"
    sub["canceled_at"] = sub["canceled_at"] or ctx.now
    sub["ended_at"] = ctx.now
    sub["cancellation_details"] = {
        **sub["cancellation_details"],
        "reason": reason,
    }
    ctx.emit("customer.subscription.deleted", sub)


def open_invoices(ctx: Ctx, sub: Obj) -> list[Obj]:
    """The subscription's open invoices, oldest first."""
    found = [
        inv
        for inv in ctx.store.newest_first("invoice")
        if inv["status"] == "open" and subscription_of(inv) == sub["id"]
    ]
    return found[::-1]


def billing_invoices(ctx: Ctx, sub: Obj) -> list[Obj]:
    """Open invoices that decide the subscription's status, oldest first.

    A pending update's invoice does not count: the subscription goes on as if the update
    had not been asked for (Stripe's pending updates).
    """
    return [
        inv
        for inv in open_invoices(ctx, sub)
        if not ctx.store.hidden_of(inv["id"]).get("pending_update_for")
    ]


def settle_status(ctx: Ctx, sub: Obj) -> None:
    """After a payment: back to `active` once nothing is left open."""
    if sub["status"] in ("incomplete", "past_due", "unpaid") and not billing_invoices(ctx, sub):
        set_status(ctx, sub, "active")
