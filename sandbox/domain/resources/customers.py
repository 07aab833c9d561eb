"""Customers: create, retrieve, update, delete (deleted stub afterwards), list."""

from __future__ import annotations

import copy
from typing import Any

from sandbox.domain.context import Ctx
from sandbox.domain.errors import StripeError, no_such
from sandbox.domain.events import previous_attributes
from sandbox.domain.ids import invoice_prefix, new_id
from sandbox.domain.jsontypes import Obj
from sandbox.domain.listing import created_matches, paginate
from sandbox.domain.params import (
    Created,
    Enum,
    Free,
    Hash,
    Int,
    ListOf,
    Metadata,
    Spec,
    Str,
    apply_metadata,
    validate,
)
from sandbox.domain.resources import payment_methods

ADDRESS = Hash(
    {
        "city": Str(),
        "country": Str(),
        "line1": Str(),
        "line2": Str(),
        "postal_code": Str(),
        "state": Str(),
    }
)

FIELDS: dict[str, Spec] = {
    "email": Str(512),
    "name": Str(256),
    "description": Str(),
    "phone": Str(20),
    "metadata": Metadata(),
    "address": ADDRESS,
    "shipping": Hash({"address": ADDRESS, "name": Str(), "phone": Str()}),
    "preferred_locales": ListOf(Str()),
    "tax_exempt": Enum("exempt", "none", "reverse"),
    "balance": Int(),
    "invoice_prefix": Str(12),
    "next_invoice_sequence": Int(minimum=1),
    "invoice_settings": Hash(
        {
            "default_payment_method": Str(),
            "custom_fields": Free(),
            "footer": Str(),
            "rendering_options": Free(),
        }
    ),
    "tax": Free(),
    "source": Str(),
    "coupon": Str(),
    "promotion_code": Str(),
}

CREATE_FIELDS = {
    **FIELDS,
    "payment_method": Str(),
    "tax_id_data": Free(),
    "cash_balance": Free(),
    # Create only: a customer can never move to or from a test clock afterwards.
    "test_clock": Str(),
}


def _check_email(email: str | None) -> None:
    if email is not None and ("@" not in email or email.startswith("@") or " " in email):
        raise StripeError(
            400,
            "invalid_request_error",
            f"Invalid email address: {email}",
            code="email_invalid",
            param="email",
            validation=True,
        )


def _address(value: Obj | None) -> Obj | None:
    if value is None:
        return None
    keys = ("city", "country", "line1", "line2", "postal_code", "state")
    return {k: value.get(k) for k in keys}


def get_customer(ctx: Ctx, customer_id: str, param: str = "id") -> Obj:
    customer = ctx.store.get(customer_id, "customer")
    if customer is None:
        raise no_such("customer", customer_id, param)
    return customer


def new_customer(ctx: Ctx, *, email: str | None = None, name: str | None = None) -> Obj:
    """A bare customer (also what Checkout creates for a session without one)."""
    customer: Obj = {
        "id": new_id("cus"),
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": ctx.now,
        "currency": None,
        "customer_account": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": email,
        "invoice_prefix": invoice_prefix(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": name,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }
    return customer


def _apply(ctx: Ctx, customer: Obj, p: dict[str, Any], attached: Obj | None) -> None:
    for key in ("email", "name", "description", "phone"):
        if key in p:
            customer[key] = p[key]
    if "tax_exempt" in p:
        customer["tax_exempt"] = p["tax_exempt"] or "none"
    if "balance" in p:
        customer["balance"] = p["balance"] or 0
    if "preferred_locales" in p:
        customer["preferred_locales"] = p["preferred_locales"] or []
    if p.get("invoice_prefix"):
        customer["invoice_prefix"] = p["invoice_prefix"]
    if p.get("next_invoice_sequence"):
        customer["next_invoice_sequence"] = p["next_invoice_sequence"]
    if "address" in p:
        customer["address"] = _address(p["address"])
    if "shipping" in p:
        shipping = p["shipping"]
        customer["shipping"] = (
            None
            if shipping is None
            else {
                "address": _address(shipping.get("address")),
                "name": shipping.get("name"),
                "phone": shipping.get("phone"),
            }
        )
    customer["metadata"] = apply_metadata(customer["metadata"], p.get("metadata"))
    settings = p.get("invoice_settings")
    if settings is not None:
        target = customer["invoice_settings"]
        for key in ("custom_fields", "footer", "rendering_options"):
            if key in settings:
                target[key] = settings[key]
        if "default_payment_method" in settings:
            value = settings["default_payment_method"]
            if value is not None and attached is not None and value == p.get("payment_method"):
                value = attached["id"]
            elif value is not None:
                value = payment_methods.require_attached(
                    ctx, value, customer["id"], "invoice_settings[default_payment_method]"
                )["id"]
            target["default_payment_method"] = value


def create(ctx: Ctx) -> Obj:
    p = validate(ctx.params, CREATE_FIELDS)
    _check_email(p.get("email"))
    customer = new_customer(ctx)
    if p.get("test_clock"):
        from sandbox.domain.resources.test_clocks import check_room

        customer["test_clock"] = check_room(ctx, p["test_clock"], "test_clock")["id"]
    pm = None
    if p.get("payment_method"):
        pm = payment_methods.resolve(ctx, p["payment_method"], "payment_method")
    _apply(ctx, customer, p, pm)
    ctx.store.add(customer)
    ctx.created_id = customer["id"]
    ctx.emit("customer.created", customer)
    if pm is not None:
        payment_methods.attach(ctx, pm, customer["id"])
    return customer


def retrieve(ctx: Ctx) -> Obj:
    validate(ctx.params, {})
    customer_id = ctx.path["id"]
    stub = ctx.store.deleted.get(customer_id)
    if stub is not None and stub["object"] == "customer":
        return stub
    return get_customer(ctx, customer_id)


def update(ctx: Ctx) -> Obj:
    p = validate(ctx.params, FIELDS)
    _check_email(p.get("email"))
    customer = get_customer(ctx, ctx.path["id"])
    before = copy.deepcopy(customer)
    _apply(ctx, customer, p, None)
    changed = previous_attributes(before, customer)
    if changed:
        ctx.emit("customer.updated", customer, previous=changed)
    return customer


def delete(ctx: Ctx) -> Obj:
    validate(ctx.params, {})
    return delete_customer(ctx, get_customer(ctx, ctx.path["id"]))


def delete_customer(ctx: Ctx, customer: Obj) -> Obj:
    """Delete a customer (also what deleting its test clock does)."""
    # Deleting a customer ends its subscriptions at once, as at Stripe.
    from sandbox.domain import billing

    for sub in list(ctx.store.newest_first("subscription")):
        if sub["customer"] == customer["id"] and sub["status"] not in billing.ENDED:
            billing.cancel_now(ctx, sub)
    stub = ctx.store.delete(customer["id"])
    ctx.emit("customer.deleted", customer)
    assert stub is not None
    return stub


def list_handler(ctx: Ctx) -> Obj:
    p = validate(
        ctx.params, {"email": Str(512), "created": Created(), "test_clock": Str()}, listing=True
    )
    email = p.get("email")
    items = (
        c
        for c in ctx.store.newest_first("customer")
        if (email is None or c["email"] == email)
        # Stripe: "The response will not include customers with test clocks if this
        # parameter is not set."
        and c["test_clock"] == p.get("test_clock")
        and created_matches(c["created"], p.get("created"))
    )
    return paginate(items, p, "/v1/customers")
