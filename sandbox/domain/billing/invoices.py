"""Building invoices: the draft, its lines, proration invoice items, voiding."""

from __future__ import annotations

import copy

from sandbox.domain.billing.common import interval_of, money, product_name
from sandbox.domain.context import Ctx
from sandbox.domain.ids import new_id
from sandbox.domain.jsontypes import Obj
from sandbox.domain.listing import list_object
from sandbox.domain.shapes import stripe_object

INVOICE_DEFAULTS: Obj = {
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
    "collection_method": "charge_automatically",
    "confirmation_secret": None,
    "custom_fields": None,
    "customer_account": None,
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
    "livemode": False,
    "metadata": {},
    "next_payment_attempt": None,
    "number": None,
    "on_behalf_of": None,
    "payment_settings": {
        "default_mandate": None,
        "payment_method_options": None,
        "payment_method_types": None,
    },
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
    "total": 0,
    "total_discount_amounts": [],
    "total_excluding_tax": 0,
    "total_pretax_credit_amounts": [],
    "total_taxes": [],
    "webhooks_delivered_at": None,
}
"""The fields of a new invoice that nothing about it decides."""


def _subscription_parent(sub: Obj | None) -> Obj | None:
    if sub is None:
        return None
    return {
        "quote_details": None,
        "subscription_details": {
            "metadata": copy.deepcopy(sub["metadata"]),
            "subscription": sub["id"],
        },
        "type": "subscription_details",
    }


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
    fields: Obj = {
        "billing_reason": billing_reason,
        "created": ctx.now,
        "currency": currency,
        "customer": customer["id"],
        "customer_address": customer["address"],
        "customer_email": customer["email"],
        "customer_name": customer["name"],
        "customer_phone": customer["phone"],
        "customer_shipping": customer["shipping"],
        "customer_tax_exempt": customer["tax_exempt"],
        "lines": list_object([], f"/v1/invoices/{inv_id}/lines"),
        "parent": _subscription_parent(sub),
        "period_end": period_end,
        "period_start": period_start,
        "test_clock": customer["test_clock"],
    }
    return stripe_object(inv_id, "invoice", INVOICE_DEFAULTS, fields)


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
