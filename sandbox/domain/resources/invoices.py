"""Invoices (retrieve, list, lines, pay, void, finalize, mark uncollectible) and the
invoice items prorations leave pending."""

from __future__ import annotations

from sandbox.domain import billing
from sandbox.domain.context import Ctx
from sandbox.domain.errors import invalid, no_such
from sandbox.domain.jsontypes import Obj
from sandbox.domain.listing import created_matches, paginate
from sandbox.domain.params import Bool, Created, Enum, Metadata, Str, apply_metadata, validate
from sandbox.domain.resources import payment_methods


def get_invoice(ctx: Ctx, invoice_id: str, param: str = "id") -> Obj:
    inv = ctx.store.get(invoice_id, "invoice")
    if inv is None:
        raise no_such("invoice", invoice_id, param)
    return inv


def retrieve(ctx: Ctx) -> Obj:
    validate(ctx.params, {})
    return get_invoice(ctx, ctx.path["id"])


def lines(ctx: Ctx) -> Obj:
    p = validate(ctx.params, {}, listing=True)
    inv = get_invoice(ctx, ctx.path["id"])
    data = inv["lines"]["data"][::-1]
    page = paginate(data, p, f"/v1/invoices/{inv['id']}/lines")
    page["data"] = page["data"][::-1]
    return page


def update(ctx: Ctx) -> Obj:
    p = validate(
        ctx.params,
        {"metadata": Metadata(), "description": Str(), "footer": Str(), "auto_advance": Bool()},
    )
    inv = get_invoice(ctx, ctx.path["id"])
    before = {k: inv[k] for k in ("metadata", "description", "footer", "auto_advance")}
    inv["metadata"] = apply_metadata(inv["metadata"], p.get("metadata"))
    for key in ("description", "footer", "auto_advance"):
        if key in p:
            inv[key] = p[key]
    changed = {k: v for k, v in before.items() if inv[k] != v}
    if changed:
        ctx.emit("invoice.updated", inv, previous=changed)
    return inv


def _require_status(inv: Obj, *allowed: str) -> None:
    if inv["status"] not in allowed:
        raise invalid(
            f"This invoice is {inv['status']}; the action requires one of: {', '.join(allowed)}."
        )


def pay(ctx: Ctx) -> Obj:
    p = validate(
        ctx.params,
        {
            "payment_method": Str(),
            "off_session": Bool(),
            "paid_out_of_band": Bool(),
            "forgive": Bool(),
            "source": Str(),
        },
    )
    inv = get_invoice(ctx, ctx.path["id"])
    if inv["status"] == "paid":
        raise invalid("Invoice is already paid", code="invoice_already_paid")
    if inv["status"] == "draft":
        billing.finalize(ctx, inv)
        if inv["status"] == "paid":
            return inv
    _require_status(inv, "open", "uncollectible")
    sub_id = billing.subscription_of(inv)
    sub = ctx.store.get(sub_id, "subscription") if sub_id else None
    if p.get("paid_out_of_band"):
        billing.mark_paid(ctx, inv)
    else:
        pm_id = p.get("payment_method")
        if pm_id:
            pm_id = payment_methods.require_attached(ctx, pm_id, inv["customer"], "payment_method")[
                "id"
            ]
        elif sub is not None:
            pm_id = billing.payment_method_for(ctx, sub)
        else:
            customer = ctx.store.get(inv["customer"], "customer")
            pm_id = customer["invoice_settings"]["default_payment_method"] if customer else None
        # A server-side payment: a card that needs authentication leaves the invoice
        # waiting for the customer (hosted invoice page) and answers a 402
        # `invoice_payment_intent_requires_action`.
        decline = billing.attempt_payment(ctx, inv, pm_id, off_session=True)
        if decline is not None:
            # The failed attempt is recorded (and emitted) before the 402, as at Stripe.
            raise billing.payment_error(decline)
    if sub is not None:
        billing.settle_status(ctx, sub)
    return inv


def void_handler(ctx: Ctx) -> Obj:
    validate(ctx.params, {})
    inv = get_invoice(ctx, ctx.path["id"])
    _require_status(inv, "open", "uncollectible")
    billing.void(ctx, inv)
    return inv


def finalize_handler(ctx: Ctx) -> Obj:
    validate(ctx.params, {"auto_advance": Bool()})
    inv = get_invoice(ctx, ctx.path["id"])
    _require_status(inv, "draft")
    billing.finalize(ctx, inv)
    return inv


def mark_uncollectible(ctx: Ctx) -> Obj:
    validate(ctx.params, {})
    inv = get_invoice(ctx, ctx.path["id"])
    _require_status(inv, "open")
    inv["status"] = "uncollectible"
    inv["next_payment_attempt"] = None
    inv["status_transitions"]["marked_uncollectible_at"] = ctx.now
    ctx.emit("invoice.marked_uncollectible", inv)
    return inv


STATUSES = ("draft", "open", "paid", "uncollectible", "void")


def list_handler(ctx: Ctx) -> Obj:
    p = validate(
        ctx.params,
        {
            "customer": Str(),
            "subscription": Str(),
            "status": Enum(*STATUSES),
            "created": Created(),
            "collection_method": Str(),
            "due_date": Created(),
        },
        listing=True,
    )

    def wanted(inv: Obj) -> bool:
        return (
            (p.get("customer") is None or inv["customer"] == p["customer"])
            and (p.get("subscription") is None or billing.subscription_of(inv) == p["subscription"])
            and (p.get("status") is None or inv["status"] == p["status"])
            and created_matches(inv["created"], p.get("created"))
        )

    return paginate(filter(wanted, ctx.store.newest_first("invoice")), p, "/v1/invoices")


def retrieve_item(ctx: Ctx) -> Obj:
    validate(ctx.params, {})
    ii = ctx.store.get(ctx.path["id"], "invoiceitem")
    if ii is None:
        raise no_such("invoiceitem", ctx.path["id"])
    return ii


def list_items(ctx: Ctx) -> Obj:
    p = validate(
        ctx.params,
        {"customer": Str(), "invoice": Str(), "pending": Bool(), "created": Created()},
        listing=True,
    )

    def wanted(ii: Obj) -> bool:
        return (
            (p.get("customer") is None or ii["customer"] == p["customer"])
            and (p.get("invoice") is None or ii["invoice"] == p["invoice"])
            and (p.get("pending") is None or (ii["invoice"] is None) == p["pending"])
            and created_matches(ii["date"], p.get("created"))
        )

    return paginate(filter(wanted, ctx.store.newest_first("invoiceitem")), p, "/v1/invoiceitems")
