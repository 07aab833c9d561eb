"""`POST /v1/subscriptions/{id}`: item changes with prorations, interval and anchor
changes, cancellation fields, and what `payment_behavior` does with an invoice due now."""

from __future__ import annotations

import copy

from sandbox.domain import billing
from sandbox.domain.context import Ctx
from sandbox.domain.errors import bad_param, invalid, no_such
from sandbox.domain.jsontypes import Obj
from sandbox.domain.params import (
    Bool,
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
from sandbox.domain.resources.subscriptions import (
    CANCELLATION,
    PAYMENT_BEHAVIOR,
    PRORATION,
    decline_error,
    get_subscription,
    prorate,
    recurring_price,
)

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


Change = tuple[int, Obj | None, Obj | None, int, Obj]
"""One `items[]` entry worked out: index, the item it changes (None: a new one), the
price it ends with (None: deleted), the quantity, and the entry itself."""


def _check_updatable(sub: Obj, p: Obj) -> None:
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


def _changes(ctx: Ctx, p: Obj, items: list[Obj]) -> list[Change]:
    """The item changes, worked out before any is made: nothing changes if one is wrong."""
    changes: list[Change] = []
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
            recurring_price(ctx, spec["price"], f"items[{index}][price]")
            if spec.get("price")
            else (item["price"] if item else None)
        )
        quantity = spec.get("quantity")
        if quantity is None:
            quantity = item["quantity"] if item else 1
        changes.append((index, item, None if spec.get("deleted") else price, quantity, spec))
    return changes


def _interval_change(items: list[Obj], changes: list[Change]) -> bool:
    current_interval = billing.interval_of(items[0]["price"])
    new_prices = [price for _, _, price, _, _ in changes if price is not None]
    interval_change = any(billing.interval_of(pr) != current_interval for pr in new_prices)
    if interval_change and len(items) > 1:
        raise invalid("The sandbox changes the billing interval only of single-item subscriptions.")
    return interval_change


def _check_payment(ctx: Ctx, p: Obj, sub: Obj, behavior: str, *, charges_now: bool) -> None:
    """`error_if_incomplete` refuses a change whose payment now would fail; a new default
    payment method must be the customer's."""
    if charges_now and behavior == "error_if_incomplete":
        pm_id = p.get("default_payment_method") or billing.payment_method_for(ctx, sub)
        decline = payment_methods.charge_outcome(ctx, pm_id, off_session=True)
        if decline is not None:
            raise decline_error(decline)
    if p.get("default_payment_method"):
        payment_methods.require_attached(
            ctx, p["default_payment_method"], sub["customer"], "default_payment_method"
        )


def _apply_changes(
    ctx: Ctx,
    sub: Obj,
    items: list[Obj],
    changes: list[Change],
    when: int,
    *,
    proration: str,
    interval_change: bool,
) -> None:
    for _, item, price, quantity, spec in changes:
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
                prorate(ctx, sub, item, None, (price, quantity), when)
            continue
        assert item is not None
        old = (item["price"], item["quantity"])
        if price is None:
            items.remove(item)
            if proration != "none":
                prorate(ctx, sub, item, old, None, when)
            continue
        changed = price["id"] != item["price"]["id"] or quantity != item["quantity"]
        if changed and proration != "none":
            prorate(ctx, sub, item, old, None if interval_change else (price, quantity), when)
        billing.set_item_price(item, price)
        item["quantity"] = quantity
        item["metadata"] = apply_metadata(item["metadata"], spec.get("metadata"))
    sub["items"]["total_count"] = len(items)


def _apply_anchor(ctx: Ctx, p: Obj, sub: Obj, items: list[Obj], interval_change: bool) -> None:
    if interval_change or (p.get("billing_cycle_anchor") or {}).get("type") == "now":
        interval, count = billing.interval_of(items[0]["price"])
        sub["billing_cycle_anchor"] = ctx.now
        for item in items:
            item["current_period_start"] = ctx.now
            item["current_period_end"] = add_interval(ctx.now, interval, count, ctx.now)


def _apply_fields(ctx: Ctx, p: Obj, sub: Obj, items: list[Obj]) -> None:
    """Cancellation, default payment method, description and metadata."""
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


def _collect(ctx: Ctx, sub: Obj, inv: Obj, behavior: str) -> None:
    """Issue the update's invoice and charge it as `payment_behavior` says."""
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


def update(ctx: Ctx) -> Obj:
    p = validate(ctx.params, UPDATE_FIELDS)
    sub = get_subscription(ctx, ctx.path["id"])
    _check_updatable(sub, p)
    proration = p.get("proration_behavior") or "create_prorations"
    behavior = p.get("payment_behavior") or "allow_incomplete"
    if behavior == "pending_if_incomplete":
        _check_pending_update_params(p)
    when = p.get("proration_date") or ctx.now
    before = copy.deepcopy(sub)
    items: list[Obj] = sub["items"]["data"]
    changes = _changes(ctx, p, items)
    interval_change = _interval_change(items, changes)
    charges_now = interval_change or (proration == "always_invoice" and bool(changes))
    _check_payment(ctx, p, sub, behavior, charges_now=charges_now)
    if changes and sub["pending_update"] is not None:
        # A new change replaces the one still waiting for its payment.
        billing.discard_pending_update(ctx, sub, expired=False)
        before = copy.deepcopy(sub)
    _apply_changes(
        ctx, sub, items, changes, when, proration=proration, interval_change=interval_change
    )
    _apply_anchor(ctx, p, sub, items, interval_change)
    _apply_fields(ctx, p, sub, items)
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
        # endive sends the anchor as a hash (SubscriptionUpdateParamsBillingCycleAnchor).
        anchor_reset = interval_change or (p.get("billing_cycle_anchor") or {}).get("type") == "now"
        _update_if_paid(ctx, sub, before, inv, anchor_reset=anchor_reset)
        return sub
    billing.update_subscription(ctx, sub, before)
    if inv is not None:
        _collect(ctx, sub, inv, behavior)
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
