"""Issuing and collecting invoices: finalize, charge, authenticate, retry, renew."""

from __future__ import annotations

import copy

from sandbox.domain.billing.common import RETRY_AFTER_DAYS, interval_of, subscription_of
from sandbox.domain.billing.invoices import build_invoice
from sandbox.domain.billing.pending_updates import apply_pending_update
from sandbox.domain.billing.subscriptions import (
    cancel_now,
    open_invoices,
    payment_method_for,
    set_status,
    settle_status,
    update_subscription,
)
from sandbox.domain.cards import AUTHENTICATION_FAILED, AUTHENTICATION_REQUIRED, Decline
from sandbox.domain.context import Ctx
from sandbox.domain.jsontypes import Obj
from sandbox.domain.periods import add_interval
from sandbox.domain.resources.payment_methods import charge_outcome


def issue(ctx: Ctx, inv: Obj) -> Obj:
    """Store a built draft (`invoice.created`) and finalize it."""
    ctx.store.add(inv)
    ctx.emit("invoice.created", inv)
    finalize(ctx, inv)
    return inv


def finalize(ctx: Ctx, inv: Obj) -> None:
    """Draft -> open: number, hosted URLs, customer credit applied (`invoice.finalized`)."""
    customer = ctx.store.get(inv["customer"], "customer")
    if customer is not None:
        sequence = customer["next_invoice_sequence"]
        inv["number"] = f"{customer['invoice_prefix']}-{sequence:04d}"
        customer["next_invoice_sequence"] = sequence + 1
        # A negative balance is credit (e.g. from a downgrade): it pays invoices first.
        balance = customer["balance"]
        inv["starting_balance"] = balance
        after = balance + inv["total"]
        inv["amount_due"] = inv["amount_remaining"] = max(after, 0)
        inv["ending_balance"] = min(after, 0)
        customer["balance"] = min(after, 0)
    base = ctx.url_base
    inv["hosted_invoice_url"] = f"{base}/_sandbox/pages/invoices/{inv['id']}"
    inv["invoice_pdf"] = f"{base}/_sandbox/pages/invoices/{inv['id']}/pdf"
    inv["status"] = "open"
    inv["effective_at"] = ctx.now
    inv["status_transitions"]["finalized_at"] = ctx.now
    ctx.emit("invoice.finalized", inv)
    if inv["amount_due"] == 0:
        mark_paid(ctx, inv)


def mark_paid(ctx: Ctx, inv: Obj) -> None:
    """Open -> paid (`invoice.paid`, `invoice.payment_succeeded`); a pending update
    waiting for this invoice is applied."""
    hidden = ctx.store.hidden_of(inv["id"])
    hidden.pop("requires_action", None)
    inv["amount_paid"] = inv["amount_due"]
    inv["amount_remaining"] = 0
    inv["status"] = "paid"
    inv["next_payment_attempt"] = None
    inv["status_transitions"]["paid_at"] = ctx.now
    ctx.emit("invoice.paid", inv)
    ctx.emit("invoice.payment_succeeded", inv)
    sub_id = hidden.get("pending_update_for")
    sub = ctx.store.get(sub_id, "subscription") if sub_id else None
    if sub is not None and sub["pending_update"] is not None:
        stash = ctx.store.hidden_of(sub["id"]).get("pending_update") or {}
        if stash.get("invoice") == inv["id"]:
            apply_pending_update(ctx, sub)


def attempt_payment(
    ctx: Ctx,
    inv: Obj,
    pm_id: str | None,
    outcome: Decline | None = None,
    *,
    forced: bool = False,
    off_session: bool = False,
) -> Decline | None:
    """Charge an open invoice; on failure `invoice.payment_failed` and a retry date.

    With `forced`, `outcome` decides instead of the payment method (control API).
    `off_session`: the customer is not at hand (API call, renewal), so a card that needs
    authentication leaves the invoice waiting for it: `invoice.payment_failed` (Stripe's
    docs: "the PaymentIntent status changes to requires_action") then
    `invoice.payment_action_required`, and `AUTHENTICATION_REQUIRED` is returned.
    """
    inv["attempted"] = True
    inv["attempt_count"] += 1
    decline = outcome if forced else charge_outcome(ctx, pm_id, off_session=off_session)
    if decline is None:
        mark_paid(ctx, inv)
        return None
    retries = ctx.store.hidden_of(inv["id"])
    first_failure = retries.setdefault("first_failure", ctx.now)
    if retries.get("pending_update_for"):
        # A pending update's invoice is not retried: it is paid by hand or voided at expiry.
        inv["next_payment_attempt"] = None
    elif inv["attempt_count"] <= len(RETRY_AFTER_DAYS):
        due = first_failure + RETRY_AFTER_DAYS[inv["attempt_count"] - 1] * 86_400
        inv["next_payment_attempt"] = due
    else:
        inv["next_payment_attempt"] = None
    retries["last_decline"] = {"code": decline.code, "decline_code": decline.decline_code}
    if decline is AUTHENTICATION_REQUIRED:
        retries["requires_action"] = {"payment_method": pm_id}
    else:
        retries.pop("requires_action", None)
    ctx.emit("invoice.payment_failed", inv)
    if decline is AUTHENTICATION_REQUIRED:
        ctx.emit("invoice.payment_action_required", inv)
    return decline


def awaiting_authentication(ctx: Ctx, inv: Obj) -> bool:
    """The invoice's last payment attempt waits for the customer's 3-D Secure."""
    return inv["status"] == "open" and bool(ctx.store.hidden_of(inv["id"]).get("requires_action"))


def authenticate(ctx: Ctx, inv: Obj, *, succeed: bool) -> Decline | None:
    """The customer completes (or fails) 3-D Secure for an invoice waiting for it.

    Succeeding confirms the payment with the same card (which may still decline);
    failing leaves the invoice open and unpaid (`invoice.payment_failed`). A paid
    invoice settles its subscription and applies a pending update waiting for it.
    """
    waiting = ctx.store.hidden_of(inv["id"]).get("requires_action") or {}
    pm_id = waiting.get("payment_method")
    decline = charge_outcome(ctx, pm_id) if succeed else AUTHENTICATION_FAILED
    decline = attempt_payment(ctx, inv, pm_id, decline, forced=True)
    sub_id = subscription_of(inv)
    sub = ctx.store.get(sub_id, "subscription") if sub_id else None
    if decline is None and sub is not None:
        settle_status(ctx, sub)
    return decline


def invoice_subscription(
    ctx: Ctx, sub: Obj, *, billing_reason: str, period_start: int, period_end: int
) -> Obj:
    """Build and issue an invoice for the current period right away."""
    inv = build_invoice(
        ctx, sub, billing_reason=billing_reason, period_start=period_start, period_end=period_end
    )
    return issue(ctx, inv)


def renew(ctx: Ctx, sub: Obj) -> None:
    """The period ended: cancel if asked, else start the next period and bill it."""
    if sub["cancel_at_period_end"] or (sub["cancel_at"] and sub["cancel_at"] <= ctx.now):
        cancel_now(ctx, sub)
        return
    before = copy.deepcopy(sub)
    for item in sub["items"]["data"]:
        interval, count = interval_of(item["price"])
        start = item["current_period_end"]
        item["current_period_start"] = start
        item["current_period_end"] = add_interval(
            start, interval, count, sub["billing_cycle_anchor"]
        )
    if sub["status"] == "unpaid":
        # Stripe keeps an unpaid subscription's periods going without charging.
        update_subscription(ctx, sub, before)
        return
    inv = build_invoice(
        ctx,
        sub,
        billing_reason="subscription_cycle",
        period_start=before["items"]["data"][0]["current_period_start"],
        period_end=sub["items"]["data"][0]["current_period_start"],
    )
    update_subscription(ctx, sub, before)
    issue(ctx, inv)
    if inv["status"] == "open":
        decline = attempt_payment(ctx, inv, payment_method_for(ctx, sub), off_session=True)
        if decline is not None and sub["status"] in ("active", "trialing"):
            set_status(ctx, sub, "past_due")


def retry_invoice(ctx: Ctx, inv: Obj) -> None:
    """A scheduled retry of a failed renewal; the last failure makes it `unpaid`."""
    sub_id = subscription_of(inv)
    sub = ctx.store.get(sub_id, "subscription") if sub_id else None
    pm = payment_method_for(ctx, sub) if sub else None
    decline = attempt_payment(ctx, inv, pm, off_session=True)
    if sub is None:
        return
    if decline is None:
        settle_status(ctx, sub)
    elif inv["next_payment_attempt"] is None and sub["status"] == "past_due":
        set_status(ctx, sub, "unpaid")


def pay_open_invoices(ctx: Ctx, sub: Obj, pm_id: str | None) -> Decline | None:
    """Pay every open invoice of the subscription (stops at the first decline)."""
    for inv in open_invoices(ctx, sub):
        decline = attempt_payment(ctx, inv, pm_id)
        if decline is not None:
            return decline
    settle_status(ctx, sub)
    return None


def due_invoice_retries(ctx: Ctx, until: int) -> list[tuple[int, Obj]]:
    return [
        (inv["next_payment_attempt"], inv)
        for inv in ctx.store.newest_first("invoice")
        if inv["status"] == "open"
        and inv["next_payment_attempt"] is not None
        and inv["next_payment_attempt"] <= until
    ]
