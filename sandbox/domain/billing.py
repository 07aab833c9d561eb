"""Invoices, charges and subscription state changes.

Shared by the API handlers, Checkout, the control API and the clock, so that a renewal
triggered by `/_sandbox/clock/advance` emits exactly what a real one would: the events
are emitted step by step, each with the object as it is at that step.
"""

from __future__ import annotations

import copy

from sandbox.domain.cards import AUTHENTICATION_FAILED, AUTHENTICATION_REQUIRED, Decline
from sandbox.domain.context import Ctx
from sandbox.domain.errors import StripeError, card_declined, invalid
from sandbox.domain.events import previous_attributes
from sandbox.domain.ids import new_id
from sandbox.domain.jsontypes import Obj
from sandbox.domain.listing import list_object
from sandbox.domain.periods import add_interval
from sandbox.domain.resources.payment_methods import charge_outcome

ENDED = frozenset({"canceled", "incomplete_expired"})
RETRY_AFTER_DAYS = (3, 5, 7)
"""Days after the first failure at which a renewal is retried (Stripe's classic schedule)."""
INCOMPLETE_SECONDS = 23 * 60 * 60
"""An `incomplete` subscription whose first invoice is unpaid expires after 23 h."""
PENDING_UPDATE_SECONDS = 23 * 60 * 60
"""A pending update expires 23 h after the update at the latest (Stripe's pending updates)."""


REQUIRES_ACTION_MESSAGE = (
    "This payment requires additional user action before it can be completed successfully. "
    "Payment can be completed using the PaymentIntent associated with the invoice. For more "
    "details see: https://stripe.com/docs/billing/subscriptions/overview#requires-action"
)
NO_PAYMENT_METHOD = (
    "This customer has no attached payment source or default payment method. Please consider "
    "adding a default payment method. For more information, visit "
    "https://stripe.com/docs/billing/subscriptions/payment-methods-setting"
    "#payment-method-priority."
)


def payment_error(decline: Decline) -> StripeError:
    """The error Stripe answers when a payment made during a request did not succeed.

    A card that needs authentication is a 402 `invoice_payment_intent_requires_action`
    (the invoice stays open; the customer completes it on the hosted invoice page).
    """
    if decline is AUTHENTICATION_REQUIRED:
        code = "invoice_payment_intent_requires_action"
        return card_declined(code, None, REQUIRES_ACTION_MESSAGE)
    if decline.code == "resource_missing":
        return invalid(NO_PAYMENT_METHOD, code="resource_missing")
    return card_declined(decline.code, decline.decline_code, decline.message)


def money(amount: int, currency: str) -> str:
    sign = "-" if amount < 0 else ""
    if currency == "usd":
        return f"{sign}${abs(amount) / 100:.2f}"
    return f"{sign}{abs(amount) / 100:.2f} {currency.upper()}"


# subscriptions


def plan_of(price: Obj) -> Obj:
    """The legacy `plan` view of a recurring price, still shown on subscription items."""
    recurring = price["recurring"] or {}
    return {
        "id": price["id"],
        "object": "plan",
        "active": price["active"],
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": price["billing_scheme"],
        "created": price["created"],
        "currency": price["currency"],
        "interval": recurring.get("interval"),
        "interval_count": recurring.get("interval_count"),
        "livemode": False,
        "metadata": price["metadata"],
        "meter": None,
        "nickname": price["nickname"],
        "product": price["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": recurring.get("trial_period_days"),
        "usage_type": recurring.get("usage_type", "licensed"),
    }


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


def interval_of(price: Obj) -> tuple[str, int]:
    recurring = price["recurring"] or {"interval": "month", "interval_count": 1}
    return recurring["interval"], recurring["interval_count"]


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
    return {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": start,
        "billing_cycle_anchor_config": None,
        # Endive creates subscriptions in flexible billing mode unless told otherwise.
        "billing_mode": {"flexible": None, "type": "flexible", "updated_at": start},
        "billing_thresholds": None,
        "cancel_at": end if cancel_at_period_end else None,
        "cancel_at_period_end": cancel_at_period_end,
        "canceled_at": start if cancel_at_period_end else None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": start,
        "currency": lines[0][0]["currency"],
        "customer": customer["id"],
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": default_payment_method,
        "default_source": None,
        "default_tax_rates": [],
        "description": description,
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": list_object(items, f"/v1/subscription_items?subscription={sub_id}"),
        "latest_invoice": None,
        "livemode": False,
        "metadata": metadata,
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
        "start_date": start,
        "status": "incomplete",
        "test_clock": customer["test_clock"],
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
    }


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


# invoices


def subscription_of(inv: Obj) -> str | None:
    parent = inv.get("parent") or {}
    details = parent.get("subscription_details") or {}
    value = details.get("subscription")
    return str(value) if value else None


def new_invoice(
    ctx: Ctx,
    customer: Obj,
    sub: Obj | None,
    *,
    billing_reason: str,
    period_start: int,
    period_end: int,
    currency: str,
) -> Obj:
    """A draft invoice without lines (not stored yet)."""
    inv_id = new_id("in")
    return {
        "id": inv_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "onramp sandbox",
        "account_tax_ids": None,
        "amount_due": 0,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": True,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "confirmation_secret": None,
        "created": ctx.now,
        "currency": currency,
        "custom_fields": None,
        "customer": customer["id"],
        "customer_account": None,
        "customer_address": customer["address"],
        "customer_email": customer["email"],
        "customer_name": customer["name"],
        "customer_phone": customer["phone"],
        "customer_shipping": customer["shipping"],
        "customer_tax_exempt": customer["tax_exempt"],
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": list_object([], f"/v1/invoices/{inv_id}/lines"),
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": None
        if sub is None
        else {
            "quote_details": None,
            "subscription_details": {
                "metadata": copy.deepcopy(sub["metadata"]),
                "subscription": sub["id"],
            },
            "type": "subscription_details",
        },
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": period_end,
        "period_start": period_start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": 0,
        "subtotal_excluding_tax": 0,
        "test_clock": customer["test_clock"],
        "total": 0,
        "total_discount_amounts": [],
        "total_excluding_tax": 0,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": None,
    }


def product_name(ctx: Ctx, product_id: str) -> str:
    product = ctx.store.get(product_id, "product")
    return str(product["name"]) if product else product_id


def add_item_line(ctx: Ctx, inv: Obj, sub: Obj, item: Obj, start: int, end: int) -> None:
    price = item["price"]
    amount = price["unit_amount"] * item["quantity"]
    interval, count = interval_of(price)
    every = interval if count == 1 else f"every {count} {interval}s"
    _add_line(
        inv,
        amount=amount,
        description=(
            f"{item['quantity']} \N{MULTIPLICATION SIGN} {product_name(ctx, price['product'])} "
            f"(at {money(price['unit_amount'], price['currency'])} / {every})"
        ),
        price=price,
        quantity=item["quantity"],
        start=start,
        end=end,
        parent={
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": sub["id"],
                "subscription_item": item["id"],
            },
            "type": "subscription_item_details",
        },
    )


def add_invoiceitem_line(ctx: Ctx, inv: Obj, ii: Obj) -> None:
    details = ii["parent"]["subscription_details"]
    price = ctx.store.get(ii["pricing"]["price_details"]["price"], "price") or {}
    _add_line(
        inv,
        amount=ii["amount"],
        description=ii["description"],
        price=price,
        quantity=ii["quantity"],
        start=ii["period"]["start"],
        end=ii["period"]["end"],
        parent={
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": ii["id"],
                "proration": ii["proration"],
                "proration_details": {"credited_items": None},
                "subscription": details["subscription"],
                "subscription_item": details.get("subscription_item"),
            },
            "type": "subscription_item_details",
        },
    )
    ii["invoice"] = inv["id"]


def _add_line(
    inv: Obj,
    *,
    amount: int,
    description: str,
    price: Obj,
    quantity: int,
    start: int,
    end: int,
    parent: Obj,
) -> None:
    line = {
        "id": new_id("il"),
        "object": "line_item",
        "amount": amount,
        "currency": inv["currency"],
        "description": description,
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": inv["id"],
        "livemode": False,
        "metadata": {},
        "parent": parent,
        "period": {"end": end, "start": start},
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": price.get("id"), "product": price.get("product")},
            "type": "price_details",
            "unit_amount_decimal": price.get("unit_amount_decimal"),
        },
        "quantity": quantity,
        "subtotal": amount,
        "taxes": [],
    }
    inv["lines"]["data"].append(line)
    inv["lines"]["total_count"] = len(inv["lines"]["data"])
    total = sum(line["amount"] for line in inv["lines"]["data"])
    for key in ("subtotal", "subtotal_excluding_tax", "total", "total_excluding_tax"):
        inv[key] = total
    inv["amount_due"] = inv["amount_remaining"] = max(total, 0)


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


def void(ctx: Ctx, inv: Obj) -> None:
    ctx.store.hidden_of(inv["id"]).pop("requires_action", None)
    inv["status"] = "void"
    inv["amount_remaining"] = 0
    inv["next_payment_attempt"] = None
    inv["status_transitions"]["voided_at"] = ctx.now
    ctx.emit("invoice.voided", inv)


def pending_items(ctx: Ctx, sub_id: str) -> list[Obj]:
    """Invoice items (prorations) waiting for the subscription's next invoice, oldest first."""
    found = [
        ii
        for ii in ctx.store.newest_first("invoiceitem")
        if ii["invoice"] is None and ii["parent"]["subscription_details"]["subscription"] == sub_id
    ]
    return found[::-1]


def new_invoice_item(
    ctx: Ctx,
    sub: Obj,
    item: Obj,
    price: Obj,
    *,
    amount: int,
    quantity: int,
    description: str,
    start: int,
    end: int,
) -> Obj:
    """A proration invoice item (`invoiceitem.created`)."""
    ii: Obj = {
        "id": new_id("ii"),
        "object": "invoiceitem",
        "amount": amount,
        "currency": price["currency"],
        "customer": sub["customer"],
        "customer_account": None,
        "date": ctx.now,
        "description": description,
        "discountable": False,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": {},
        "net_amount": amount,
        "parent": {
            "subscription_details": {"subscription": sub["id"], "subscription_item": item["id"]},
            "type": "subscription_details",
        },
        "period": {"end": end, "start": start},
        "pricing": {
            "price_details": {"price": price["id"], "product": price["product"]},
            "type": "price_details",
            "unit_amount_decimal": price["unit_amount_decimal"],
        },
        "proration": True,
        "proration_details": {"discount_amounts": []},
        "quantity": quantity,
        "tax_rates": [],
        "test_clock": sub["test_clock"],
    }
    ctx.store.add(ii)
    ctx.emit("invoiceitem.created", ii)
    return ii


def build_invoice(
    ctx: Ctx,
    sub: Obj,
    *,
    billing_reason: str,
    period_start: int,
    period_end: int,
    items: list[Obj] | None = None,
) -> Obj:
    """A draft for the subscription's items plus its pending items, made its
    `latest_invoice`; `issue` it once the subscription's own event is out."""
    customer = ctx.store.get(sub["customer"], "customer")
    assert customer is not None
    inv = new_invoice(
        ctx,
        customer,
        sub,
        billing_reason=billing_reason,
        period_start=period_start,
        period_end=period_end,
        currency=sub["currency"],
    )
    for ii in pending_items(ctx, sub["id"]):
        add_invoiceitem_line(ctx, inv, ii)
    for item in sub["items"]["data"] if items is None else items:
        add_item_line(ctx, inv, sub, item, item["current_period_start"], item["current_period_end"])
    sub["latest_invoice"] = inv["id"]
    return inv


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
