"""Subscriptions: create (charging the first invoice), retrieve, update (price changes
with proration behaviour, `cancel_at_period_end`), cancel, list."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from sandbox.domain import billing
from sandbox.domain.context import Ctx
from sandbox.domain.errors import StripeError, bad_param, invalid, no_such
from sandbox.domain.jsontypes import Obj
from sandbox.domain.listing import created_matches, paginate
from sandbox.domain.params import (
    Bool,
    Created,
    Enum,
    Free,
    Hash,
    Int,
    ListOf,
    Metadata,
    Str,
    apply_metadata,
    validate,
)
from sandbox.domain.periods import add_interval
from sandbox.domain.resources import payment_methods
from sandbox.domain.resources.customers import get_customer
from sandbox.domain.resources.prices import get_price

PRORATION = Enum("always_invoice", "create_prorations", "none")
PAYMENT_BEHAVIOR = Enum(
    "allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"
)
CANCELLATION = Hash(
    {
        "comment": Str(),
        "feedback": Enum(
            "customer_service",
            "low_quality",
            "missing_features",
            "other",
            "switched_service",
            "too_complex",
            "too_expensive",
            "unused",
        ),
    }
)

CREATE_FIELDS = {
    "customer": Str(),
    "items": ListOf(
        Hash(
            {
                "price": Str(),
                "quantity": Int(minimum=0),
                "metadata": Metadata(),
                "tax_rates": Free(),
                "discounts": Free(),
            },
            required=["price"],
        )
    ),
    "default_payment_method": Str(),
    "metadata": Metadata(),
    "proration_behavior": PRORATION,
    "payment_behavior": PAYMENT_BEHAVIOR,
    "cancel_at_period_end": Bool(),
    "description": Str(500),
    "collection_method": Enum("charge_automatically", "send_invoice"),
    "off_session": Bool(),
    "payment_settings": Free(),
    "currency": Str(),
    "automatic_tax": Free(),
    "default_tax_rates": Free(),
}

UPDATE_FIELDS = {
    "items": ListOf(
        Hash(
            {
                "id": Str(),
                "price": Str(),
                "quantity": Int(minimum=0),
                "deleted": Bool(),
                "metadata": Metadata(),
                "clear_usage": Bool(),
                "tax_rates": Free(),
                "discounts": Free(),
            }
        )
    ),
    "default_payment_method": Str(),
    "metadata": Metadata(),
    "proration_behavior": PRORATION,
    "proration_date": Int(),
    "payment_behavior": PAYMENT_BEHAVIOR,
    "cancel_at_period_end": Bool(),
    "cancel_at": Int(),
    "description": Str(500),
    "off_session": Bool(),
    "payment_settings": Free(),
    "cancellation_details": CANCELLATION,
    # Endive takes the anchor change as a hash (stripe.params.SubscriptionUpdateParams).
    "billing_cycle_anchor": Hash({"type": Enum("now", "unchanged")}, required=["type"]),
    "default_tax_rates": Free(),
    "automatic_tax": Free(),
}

PENDING_UPDATE_PARAMS = frozenset(
    {"expand", "payment_behavior", "proration_behavior", "proration_date", "billing_cycle_anchor"}
    | {"items", "trial_end", "trial_from_plan", "add_invoice_items"}
)
"""What Stripe accepts with `payment_behavior=pending_if_incomplete` (pending updates
reference); of `items`, only `price` and `quantity` (and the `id` naming the item)."""
PENDING_UPDATE_ITEM_PARAMS = frozenset({"id", "price", "quantity"})
INCOMPLETE_PARAMS = frozenset({"metadata", "default_source", "expand"})
"""The stripe library's Subscription.status: an `incomplete` subscription "can only have
metadata and default_source updated"."""


def get_subscription(ctx: Ctx, sub_id: str, param: str = "id") -> Obj:
    sub = ctx.store.get(sub_id, "subscription")
    if sub is None:
        raise no_such("subscription", sub_id, param)
    return sub


def _recurring_price(ctx: Ctx, price_id: str, param: str) -> Obj:
    price = get_price(ctx, price_id, param)
    if price["type"] != "recurring":
        raise invalid(
            "The price specified is set to `type=one_time` but this field only accepts prices "
            "with `type=recurring`.",
            param,
        )
    if not price["active"]:
        raise invalid(
            "The price specified is inactive. This field only accepts active prices.", param
        )
    return price


def _decline_error(decline: Any) -> StripeError:
    return billing.payment_error(decline)


def create(ctx: Ctx) -> Obj:
    p = validate(ctx.params, CREATE_FIELDS, required=["customer", "items"])
    if not p["items"]:
        raise bad_param("Missing required param: items.", "items")
    if p.get("collection_method") == "send_invoice":
        raise bad_param(
            "The sandbox supports only collection_method=charge_automatically.", "collection_method"
        )
    behavior = p.get("payment_behavior") or "allow_incomplete"
    if behavior == "pending_if_incomplete":
        raise bad_param(
            "You can only pass `payment_behavior=pending_if_incomplete` when updating a "
            "subscription.",
            "payment_behavior",
        )
    customer = get_customer(ctx, p["customer"], "customer")
    lines = []
    for index, spec in enumerate(p["items"]):
        price = _recurring_price(ctx, spec["price"], f"items[{index}][price]")
        quantity = 1 if spec.get("quantity") is None else spec["quantity"]
        lines.append((price, quantity, apply_metadata({}, spec.get("metadata"))))
    interval = billing.interval_of(lines[0][0])
    for index, (price, _, _) in enumerate(lines):
        if billing.interval_of(price) != interval or price["currency"] != lines[0][0]["currency"]:
            raise invalid(
                "All prices on a subscription must have the same `recurring.interval`, "
                "`recurring.interval_count` and currency.",
                f"items[{index}][price]",
            )
    default_pm = None
    if p.get("default_payment_method"):
        default_pm = payment_methods.require_attached(
            ctx, p["default_payment_method"], customer["id"], "default_payment_method"
        )["id"]
    sub = billing.new_subscription(
        ctx,
        customer,
        lines,
        metadata=apply_metadata({}, p.get("metadata")),
        default_payment_method=default_pm,
        description=p.get("description"),
        cancel_at_period_end=bool(p.get("cancel_at_period_end")),
    )
    total = sum(price["unit_amount"] * qty for price, qty, _ in lines)
    pm_id = billing.payment_method_for(ctx, sub) if default_pm is None else default_pm
    decline = None
    if total > 0 and behavior != "default_incomplete":
        # Nobody is at hand to authenticate during an API call: such a card waits.
        decline = payment_methods.charge_outcome(ctx, pm_id, off_session=True)
        if decline is not None and (behavior == "error_if_incomplete" or pm_id is None):
            raise _decline_error(decline)
    if total == 0 or (decline is None and behavior != "default_incomplete"):
        sub["status"] = "active"
    inv = billing.build_invoice(
        ctx, sub, billing_reason="subscription_create", period_start=ctx.now, period_end=ctx.now
    )
    ctx.store.add(sub)
    ctx.created_id = sub["id"]
    ctx.emit("customer.subscription.created", sub)
    billing.issue(ctx, inv)
    if inv["status"] == "open" and behavior != "default_incomplete":
        billing.attempt_payment(ctx, inv, pm_id, off_session=True)
    return sub


def retrieve(ctx: Ctx) -> Obj:
    validate(ctx.params, {})
    return get_subscription(ctx, ctx.path["id"])


def _prorate(
    ctx: Ctx,
    sub: Obj,
    item: Obj,
    old: tuple[Obj, int] | None,
    new: tuple[Obj, int] | None,
    when: int,
) -> None:
    """Invoice items for the unused time on the old price and the remaining time on the new."""
    start, end = item["current_period_start"], item["current_period_end"]
    if end <= start or when >= end:
        return
    fraction = (end - max(when, start)) / (end - start)
    day = dt.datetime.fromtimestamp(when, dt.UTC).strftime("%d %b %Y")
    if old is not None:
        price, quantity = old
        name = billing.product_name(ctx, price["product"])
        billing.new_invoice_item(
            ctx,
            sub,
            item,
            price,
            amount=-round(price["unit_amount"] * quantity * fraction),
            quantity=quantity,
            description=f"Unused time on {quantity} \N{MULTIPLICATION SIGN} {name} after {day}",
            start=when,
            end=end,
        )
    if new is not None:
        price, quantity = new
        name = billing.product_name(ctx, price["product"])
        billing.new_invoice_item(
            ctx,
            sub,
            item,
            price,
            amount=round(price["unit_amount"] * quantity * fraction),
            quantity=quantity,
            description=f"Remaining time on {quantity} \N{MULTIPLICATION SIGN} {name} after {day}",
            start=when,
            end=end,
        )


def update(ctx: Ctx) -> Obj:
    p = validate(ctx.params, UPDATE_FIELDS)
    sub = get_subscription(ctx, ctx.path["id"])
    if sub["status"] in billing.ENDED:
        allowed = {"metadata", "cancellation_details", "expand"}
        if set(p) - allowed:
            raise invalid(
                "A canceled subscription can only update its cancellation_details and metadata."
            )
    if sub["status"] == "incomplete":
        refused = sorted(set(p) - INCOMPLETE_PARAMS)
        if refused:
            raise invalid(
                "A subscription in the `incomplete` status can only have its `metadata` and "
                "`default_source` updated. Pay its latest invoice to activate it, or cancel it.",
                refused[0],
            )
    proration = p.get("proration_behavior") or "create_prorations"
    behavior = p.get("payment_behavior") or "allow_incomplete"
    if behavior == "pending_if_incomplete":
        _check_pending_update_params(p)
    when = p.get("proration_date") or ctx.now
    before = copy.deepcopy(sub)
    items: list[Obj] = sub["items"]["data"]
    current_interval = billing.interval_of(items[0]["price"])

    # Work out the item changes first: nothing is changed if a parameter is wrong.
    plan: list[tuple[int, Obj | None, Obj | None, int, Obj]] = []
    for index, spec in enumerate(p.get("items") or []):
        item = None
        if spec.get("id"):
            item = next((i for i in items if i["id"] == spec["id"]), None)
            if item is None:
                raise no_such("subscription item", spec["id"], f"items[{index}][id]")
        elif spec.get("price") is None:
            raise bad_param(
                f"Missing required param: items[{index}][price].", f"items[{index}][price]"
            )
        price = (
            _recurring_price(ctx, spec["price"], f"items[{index}][price]")
            if spec.get("price")
            else (item["price"] if item else None)
        )
        quantity = spec.get("quantity")
        if quantity is None:
            quantity = item["quantity"] if item else 1
        plan.append((index, item, None if spec.get("deleted") else price, quantity, spec))
    new_prices = [price for _, _, price, _, _ in plan if price is not None]
    interval_change = any(billing.interval_of(pr) != current_interval for pr in new_prices)
    if interval_change and len(items) > 1:
        raise invalid("The sandbox changes the billing interval only of single-item subscriptions.")
    charges_now = interval_change or (proration == "always_invoice" and plan)
    if charges_now and behavior == "error_if_incomplete":
        pm_id = p.get("default_payment_method") or billing.payment_method_for(ctx, sub)
        decline = payment_methods.charge_outcome(ctx, pm_id, off_session=True)
        if decline is not None:
            raise _decline_error(decline)
    if p.get("default_payment_method"):
        payment_methods.require_attached(
            ctx, p["default_payment_method"], sub["customer"], "default_payment_method"
        )
    if plan and sub["pending_update"] is not None:
        # A new change replaces the one still waiting for its payment.
        billing.discard_pending_update(ctx, sub, expired=False)
        before = copy.deepcopy(sub)

    for _, item, price, quantity, spec in plan:
        if item is None and price is not None:
            start, end = items[0]["current_period_start"], items[0]["current_period_end"]
            item = billing.new_item(
                ctx,
                sub["id"],
                price,
                quantity,
                start,
                end,
                apply_metadata({}, spec.get("metadata")),
            )
            items.append(item)
            if proration != "none" and not interval_change:
                _prorate(ctx, sub, item, None, (price, quantity), when)
            continue
        assert item is not None
        old = (item["price"], item["quantity"])
        if price is None:
            items.remove(item)
            if proration != "none":
                _prorate(ctx, sub, item, old, None, when)
            continue
        changed = price["id"] != item["price"]["id"] or quantity != item["quantity"]
        if changed and proration != "none":
            _prorate(ctx, sub, item, old, None if interval_change else (price, quantity), when)
        billing.set_item_price(item, price)
        item["quantity"] = quantity
        item["metadata"] = apply_metadata(item["metadata"], spec.get("metadata"))
    sub["items"]["total_count"] = len(items)
    if interval_change or (p.get("billing_cycle_anchor") or {}).get("type") == "now":
        interval, count = billing.interval_of(items[0]["price"])
        sub["billing_cycle_anchor"] = ctx.now
        for item in items:
            item["current_period_start"] = ctx.now
            item["current_period_end"] = add_interval(ctx.now, interval, count, ctx.now)

    if "cancel_at_period_end" in p and p["cancel_at_period_end"] is not None:
        if p["cancel_at_period_end"]:
            sub["cancel_at_period_end"] = True
            sub["cancel_at"] = items[0]["current_period_end"]
            sub["canceled_at"] = ctx.now
        else:
            sub["cancel_at_period_end"] = False
            sub["cancel_at"] = None
            sub["canceled_at"] = None
    if "cancel_at" in p:
        sub["cancel_at"] = p["cancel_at"]
        sub["canceled_at"] = ctx.now if p["cancel_at"] else None
        sub["cancel_at_period_end"] = bool(
            p["cancel_at"] and p["cancel_at"] == items[0]["current_period_end"]
        )
    if "default_payment_method" in p:
        sub["default_payment_method"] = p["default_payment_method"]
    if "description" in p:
        sub["description"] = p["description"]
    if p.get("cancellation_details") is not None:
        sub["cancellation_details"] = {**sub["cancellation_details"], **p["cancellation_details"]}
    sub["metadata"] = apply_metadata(sub["metadata"], p.get("metadata"))
    inv = None
    if interval_change or (proration == "always_invoice" and billing.pending_items(ctx, sub["id"])):
        inv = billing.build_invoice(
            ctx,
            sub,
            billing_reason="subscription_update",
            period_start=ctx.now,
            period_end=ctx.now,
            items=items if interval_change else [],
        )
    if inv is not None and behavior == "pending_if_incomplete":
        anchor_reset = interval_change or p.get("billing_cycle_anchor") == "now"
        _update_if_paid(ctx, sub, before, inv, anchor_reset=anchor_reset)
        return sub
    billing.update_subscription(ctx, sub, before)
    if inv is not None:
        billing.issue(ctx, inv)
        if inv["status"] == "open" and behavior == "default_incomplete":
            # Stripe: past_due while the invoice's payment awaits explicit confirmation.
            if sub["status"] == "active":
                billing.set_status(ctx, sub, "past_due")
        elif inv["status"] == "open":
            decline = billing.attempt_payment(
                ctx, inv, billing.payment_method_for(ctx, sub), off_session=True
            )
            if decline is not None and sub["status"] == "active":
                billing.set_status(ctx, sub, "past_due")
    return sub


def _check_pending_update_params(p: Obj) -> None:
    """Refuse what pending updates do not support, as Stripe does (before any change)."""
    refused = sorted(set(p) - PENDING_UPDATE_PARAMS)
    for index, spec in enumerate(p.get("items") or []):
        extra = sorted(set(spec) - PENDING_UPDATE_ITEM_PARAMS)
        refused += [f"items[{index}][{key}]" for key in extra]
    if refused:
        raise invalid(
            f"The parameter `{refused[0]}` cannot be used with "
            "`payment_behavior=pending_if_incomplete`. Pending updates support only: "
            + ", ".join(sorted(PENDING_UPDATE_PARAMS))
            + " (and items[][price], items[][quantity]).",
            refused[0],
        )


def _update_if_paid(ctx: Ctx, sub: Obj, before: Obj, inv: Obj, *, anchor_reset: bool) -> None:
    """`pending_if_incomplete`: the change stands only if its invoice is paid now; otherwise
    the subscription keeps its old items, `pending_update` holds the new ones until the
    invoice is paid (then applied) or the update expires (then its invoice is voided)."""
    ctx.store.hidden_of(inv["id"])["pending_update_for"] = sub["id"]
    billing.issue(ctx, inv)
    if inv["status"] == "open":
        billing.attempt_payment(ctx, inv, billing.payment_method_for(ctx, sub), off_session=True)
    if inv["status"] == "paid":
        billing.update_subscription(ctx, sub, before)
        return
    new_items, new_anchor = sub["items"], sub["billing_cycle_anchor"]
    sub["items"] = copy.deepcopy(before["items"])
    sub["billing_cycle_anchor"] = before["billing_cycle_anchor"]
    period_end = sub["items"]["data"][0]["current_period_end"]
    expires_at = min(period_end, ctx.now + billing.PENDING_UPDATE_SECONDS)
    ctx.store.hidden_of(sub["id"])["pending_update"] = {
        "items": new_items,
        "billing_cycle_anchor": new_anchor,
        "invoice": inv["id"],
    }
    sub["pending_update"] = billing.pending_update_of(
        sub,
        new_items["data"],
        new_anchor if anchor_reset else None,
        expires_at,
    )
    billing.update_subscription(ctx, sub, before)


def cancel(ctx: Ctx) -> Obj:
    p = validate(
        ctx.params, {"invoice_now": Bool(), "prorate": Bool(), "cancellation_details": CANCELLATION}
    )
    sub = get_subscription(ctx, ctx.path["id"])
    if sub["status"] in billing.ENDED:
        raise invalid(
            "A canceled subscription can only update its cancellation_details and metadata."
        )
    if p.get("cancellation_details"):
        sub["cancellation_details"] = {**sub["cancellation_details"], **p["cancellation_details"]}
    if p.get("prorate"):
        for item in sub["items"]["data"]:
            _prorate(ctx, sub, item, (item["price"], item["quantity"]), None, ctx.now)
    billing.discard_pending_update(ctx, sub, expired=False)
    billing.cancel_now(ctx, sub)
    return sub


STATUSES = (
    "active",
    "all",
    "canceled",
    "ended",
    "incomplete",
    "incomplete_expired",
    "past_due",
    "paused",
    "trialing",
    "unpaid",
)


def list_handler(ctx: Ctx) -> Obj:
    p = validate(
        ctx.params,
        {
            "customer": Str(),
            "price": Str(),
            "status": Enum(*STATUSES),
            "created": Created(),
            "collection_method": Str(),
            "test_clock": Str(),
        },
        listing=True,
    )
    status = p.get("status")

    def wanted(sub: Obj) -> bool:
        if status is None and sub["status"] in billing.ENDED:
            return False
        if status == "ended" and sub["status"] not in billing.ENDED:
            return False
        if status not in (None, "all", "ended") and sub["status"] != status:
            return False
        if p.get("price") and all(i["price"]["id"] != p["price"] for i in sub["items"]["data"]):
            return False
        if p.get("test_clock") and sub["test_clock"] != p["test_clock"]:
            return False
        return (p.get("customer") is None or sub["customer"] == p["customer"]) and created_matches(
            sub["created"], p.get("created")
        )

    return paginate(filter(wanted, ctx.store.newest_first("subscription")), p, "/v1/subscriptions")
