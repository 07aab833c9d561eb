"""Pending updates (`payment_behavior=pending_if_incomplete`) and `incomplete` expiry."""

from __future__ import annotations

import copy

from sandbox.domain.billing.invoices import void
from sandbox.domain.billing.subscriptions import open_invoices, update_subscription
from sandbox.domain.context import Ctx
from sandbox.domain.jsontypes import Obj


def pending_update_of(sub: Obj, stash_items: list[Obj], anchor: int | None, expires_at: int) -> Obj:
    """The `pending_update` hash: what the subscription becomes once its invoice is paid."""
    current = {item["id"]: item for item in sub["items"]["data"]}
    changed = [
        copy.deepcopy(item)
        for item in stash_items
        if item["id"] not in current
        or item["price"]["id"] != current[item["id"]]["price"]["id"]
        or item["quantity"] != current[item["id"]]["quantity"]
    ]
    return {
        "billing_cycle_anchor": anchor,
        "cancel_at_period_end": None,
        "discount": None,
        "discounts": None,
        "expires_at": expires_at,
        "metadata": None,
        "subscription_items": changed,
        "trial_end": None,
        "trial_from_plan": None,
    }


def apply_pending_update(ctx: Ctx, sub: Obj) -> None:
    """The pending update's invoice was paid: the subscription takes the new items."""
    stash = ctx.store.hidden_of(sub["id"]).pop("pending_update", None)
    before = copy.deepcopy(sub)
    if stash is not None:
        sub["items"] = stash["items"]
        sub["billing_cycle_anchor"] = stash["billing_cycle_anchor"]
    sub["pending_update"] = None
    update_subscription(ctx, sub, before)
    ctx.emit("customer.subscription.pending_update_applied", sub)


def discard_pending_update(ctx: Ctx, sub: Obj, *, expired: bool) -> None:
    """Drop a pending update and void its open invoice (at expiry, or replaced by a new
    update); the subscription keeps what it had."""
    if sub["pending_update"] is None:
        return
    stash = ctx.store.hidden_of(sub["id"]).pop("pending_update", None) or {}
    inv = ctx.store.get(stash.get("invoice", ""), "invoice")
    if inv is not None and inv["status"] == "open":
        void(ctx, inv)
    before = copy.deepcopy(sub)
    sub["pending_update"] = None
    update_subscription(ctx, sub, before)
    if expired:
        ctx.emit("customer.subscription.pending_update_expired", sub)


def expire_incomplete(ctx: Ctx, sub: Obj) -> None:
    """23 h without a paid first invoice: void it, subscription `incomplete_expired`."""
    for inv in open_invoices(ctx, sub):
        void(ctx, inv)
    before = copy.deepcopy(sub)
    sub["status"] = "incomplete_expired"
    sub["ended_at"] = ctx.now
    update_subscription(ctx, sub, before)
