"""Payment methods: test tokens (`pm_card_visa`...), attach, detach, retrieve, list."""

from __future__ import annotations

from sandbox.domain.cards import (
    AUTHENTICATION_REQUIRED,
    CARDS,
    Decline,
    TestCard,
    payment_method_from_token,
)
from sandbox.domain.context import Ctx
from sandbox.domain.errors import invalid, no_such
from sandbox.domain.ids import new_id
from sandbox.domain.jsontypes import Obj
from sandbox.domain.listing import paginate
from sandbox.domain.params import Enum, Metadata, Str, apply_metadata, validate


def resolve(ctx: Ctx, value: str, param: str) -> Obj:
    """A stored payment method, or a new one made from a test token."""
    if value in CARDS:
        pm = payment_method_from_token(value, new_id("pm"), ctx.now)
        return ctx.store.add(pm, {"token": value})
    found = ctx.store.get(value, "payment_method")
    if found is None:
        raise no_such("PaymentMethod", value, param)
    return found


def test_card(ctx: Ctx, pm: Obj) -> TestCard:
    return CARDS[ctx.store.hidden_of(pm["id"]).get("token", "pm_card_visa")]


def charge_outcome(ctx: Ctx, pm_id: str | None, *, off_session: bool = False) -> Decline | None:
    """None if charging this payment method succeeds, else why it was declined.

    `off_session`: the customer is not at hand to authenticate, so a card that requires
    authentication answers `AUTHENTICATION_REQUIRED` (the payment waits for the customer).
    """
    if pm_id is None:
        return Decline(
            "resource_missing",
            None,
            "This customer has no attached payment source or default payment method.",
        )
    pm = ctx.store.get(pm_id, "payment_method")
    if pm is None:
        return Decline("resource_missing", None, f"No such PaymentMethod: '{pm_id}'")
    card = test_card(ctx, pm)
    if off_session and card.authentication:
        return AUTHENTICATION_REQUIRED
    return card.decline


def attach(ctx: Ctx, pm: Obj, customer_id: str) -> Obj:
    """Attach to a customer (emits `payment_method.attached`)."""
    if pm["customer"] == customer_id:
        return pm
    if pm["customer"] is not None:
        raise invalid(
            "The payment method you provided has already been attached to a customer.",
            "payment_method",
        )
    pm["customer"] = customer_id
    ctx.emit("payment_method.attached", pm)
    return pm


def require_attached(ctx: Ctx, value: str, customer_id: str, param: str) -> Obj:
    """A payment method that must already belong to the customer (Stripe's rule)."""
    pm = ctx.store.get(value, "payment_method")
    if pm is None:
        raise no_such("PaymentMethod", value, param)
    if pm["customer"] != customer_id:
        raise invalid(
            f"The customer does not have a payment method with the ID {value}. The payment "
            "method must be attached to the customer.",
            param,
        )
    return pm


def retrieve(ctx: Ctx) -> Obj:
    validate(ctx.params, {})
    return resolve(ctx, ctx.path["id"], "id")


def attach_handler(ctx: Ctx) -> Obj:
    p = validate(ctx.params, {"customer": Str()}, required=["customer"])
    customer = ctx.store.get(p["customer"], "customer")
    if customer is None:
        raise no_such("customer", p["customer"], "customer")
    pm = resolve(ctx, ctx.path["id"], "payment_method")
    return attach(ctx, pm, customer["id"])


def detach_handler(ctx: Ctx) -> Obj:
    validate(ctx.params, {})
    pm = ctx.store.get(ctx.path["id"], "payment_method")
    if pm is None:
        raise no_such("PaymentMethod", ctx.path["id"])
    customer_id = pm["customer"]
    if customer_id is None:
        raise invalid(
            "The payment method you provided is not attached to a customer so "
            "detachment is impossible.",
            "payment_method",
        )
    customer = ctx.store.get(customer_id, "customer")
    if customer and customer["invoice_settings"]["default_payment_method"] == pm["id"]:
        before = {"invoice_settings": dict(customer["invoice_settings"])}
        customer["invoice_settings"]["default_payment_method"] = None
        ctx.emit("customer.updated", customer, previous=before)
    pm["customer"] = None
    ctx.emit("payment_method.detached", pm, previous={"customer": customer_id})
    return pm


def update(ctx: Ctx) -> Obj:
    p = validate(
        ctx.params,
        {"metadata": Metadata(), "allow_redisplay": Enum("always", "limited", "unspecified")},
    )
    pm = ctx.store.get(ctx.path["id"], "payment_method")
    if pm is None:
        raise no_such("PaymentMethod", ctx.path["id"])
    before = {"metadata": pm["metadata"], "allow_redisplay": pm["allow_redisplay"]}
    pm["metadata"] = apply_metadata(pm["metadata"], p.get("metadata"))
    if p.get("allow_redisplay"):
        pm["allow_redisplay"] = p["allow_redisplay"]
    changed = {k: v for k, v in before.items() if pm[k] != v}
    if changed:
        ctx.emit("payment_method.updated", pm, previous=changed)
    return pm


LIST_FIELDS = {"customer": Str(), "type": Str()}


def list_for(ctx: Ctx, customer_id: str | None, kind: str | None, url: str) -> Obj:
    items = (
        pm
        for pm in ctx.store.newest_first("payment_method")
        if (customer_id is None or pm["customer"] == customer_id)
        and pm["customer"] is not None
        and (kind is None or pm["type"] == kind)
    )
    return paginate(items, ctx.params, url)


def list_handler(ctx: Ctx) -> Obj:
    p = validate(ctx.params, LIST_FIELDS, listing=True)
    ctx.params = p
    return list_for(ctx, p.get("customer"), p.get("type"), "/v1/payment_methods")


def list_for_customer(ctx: Ctx) -> Obj:
    p = validate(ctx.params, {"type": Str()}, listing=True)
    ctx.params = p
    customer_id = ctx.path["id"]
    if ctx.store.get(customer_id, "customer") is None:
        raise no_such("customer", customer_id)
    return list_for(ctx, customer_id, p.get("type"), f"/v1/customers/{customer_id}/payment_methods")
