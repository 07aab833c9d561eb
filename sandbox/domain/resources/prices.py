"""Prices (one-time and recurring): create, retrieve, update, list (`lookup_keys[]`)."""

from __future__ import annotations

import copy
import re
from typing import Any

from sandbox.domain.context import Ctx
from sandbox.domain.errors import bad_param, invalid, no_such
from sandbox.domain.events import previous_attributes
from sandbox.domain.ids import new_id
from sandbox.domain.jsontypes import Obj
from sandbox.domain.listing import created_matches, paginate
from sandbox.domain.params import (
    Bool,
    Created,
    Enum,
    Hash,
    Int,
    ListOf,
    Metadata,
    Spec,
    Str,
    apply_metadata,
    validate,
)
from sandbox.domain.resources.products import get_product, new_product

RECURRING = Hash(
    {
        "interval": Enum("day", "month", "week", "year"),
        "interval_count": Int(minimum=1),
        "usage_type": Enum("licensed", "metered"),
        "trial_period_days": Int(minimum=0),
        "meter": Str(),
    },
    required=["interval"],
)

CREATE_FIELDS: dict[str, Spec] = {
    "currency": Str(3),
    "unit_amount": Int(minimum=0),
    "unit_amount_decimal": Str(),
    "product": Str(),
    "product_data": Hash(
        {
            "name": Str(),
            "metadata": Metadata(),
            "active": Bool(),
            "id": Str(),
            "statement_descriptor": Str(),
            "tax_code": Str(),
            "unit_label": Str(),
        },
        required=["name"],
    ),
    "recurring": RECURRING,
    "lookup_key": Str(200),
    "transfer_lookup_key": Bool(),
    "nickname": Str(),
    "active": Bool(),
    "metadata": Metadata(),
    "tax_behavior": Enum("exclusive", "inclusive", "unspecified"),
    "billing_scheme": Enum("per_unit"),
}

UPDATE_FIELDS: dict[str, Spec] = {
    "active": Bool(),
    "metadata": Metadata(),
    "nickname": Str(),
    "lookup_key": Str(200),
    "transfer_lookup_key": Bool(),
    "tax_behavior": Enum("exclusive", "inclusive", "unspecified"),
}


def get_price(ctx: Ctx, price_id: str, param: str = "id") -> Obj:
    price = ctx.store.get(price_id, "price")
    if price is None:
        raise no_such("price", price_id, param)
    return price


def _claim_lookup_key(ctx: Ctx, price: Obj, key: str | None, transfer: bool) -> None:
    if key is None:
        return
    for other in ctx.store.newest_first("price"):
        if other["id"] != price["id"] and other["lookup_key"] == key:
            if not transfer:
                raise invalid(
                    f"A price (`{other['id']}`) already uses that lookup key.", "lookup_key"
                )
            before = copy.deepcopy(other)
            other["lookup_key"] = None
            ctx.emit("price.updated", other, previous=previous_attributes(before, other))


def create_price(ctx: Ctx, p: dict[str, Any]) -> Obj:
    """Create a price from validated params (also used by `default_price_data`)."""
    currency = (p.get("currency") or "").lower()
    if not re.fullmatch(r"[a-z]{3}", currency):
        raise bad_param(f"Invalid currency: {currency}.", "currency")
    amount = p.get("unit_amount")
    if amount is None and p.get("unit_amount_decimal") is not None:
        try:
            amount = round(float(p["unit_amount_decimal"]))
        except ValueError:
            raise bad_param("Invalid decimal: unit_amount_decimal", "unit_amount_decimal") from None
    if amount is None:
        raise bad_param("Missing required param: unit_amount.", "unit_amount")
    if p.get("product") is not None:
        product_id = get_product(ctx, p["product"], "product")["id"]
    elif p.get("product_data") is not None:
        data = p["product_data"]
        product = new_product(ctx, data["name"], data.get("id"))
        product["metadata"] = apply_metadata({}, data.get("metadata"))
        ctx.store.add(product)
        ctx.emit("product.created", product)
        product_id = product["id"]
    else:
        raise bad_param("Missing required param: product.", "product")
    recurring = p.get("recurring")
    price: Obj = {
        "id": new_id("price"),
        "object": "price",
        "active": True if p.get("active") is None else p["active"],
        "billing_scheme": "per_unit",
        "created": ctx.now,
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": p.get("lookup_key"),
        "metadata": apply_metadata({}, p.get("metadata")),
        "nickname": p.get("nickname"),
        "product": product_id,
        "recurring": None
        if recurring is None
        else {
            "interval": recurring["interval"],
            "interval_count": recurring.get("interval_count") or 1,
            "meter": recurring.get("meter"),
            "trial_period_days": recurring.get("trial_period_days"),
            "usage_type": recurring.get("usage_type") or "licensed",
        },
        "tax_behavior": p.get("tax_behavior") or "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "one_time" if recurring is None else "recurring",
        "unit_amount": amount,
        "unit_amount_decimal": str(amount),
    }
    _claim_lookup_key(ctx, price, price["lookup_key"], bool(p.get("transfer_lookup_key")))
    ctx.store.add(price)
    ctx.emit("price.created", price)
    return price


def create(ctx: Ctx) -> Obj:
    p = validate(ctx.params, CREATE_FIELDS, required=["currency"])
    price = create_price(ctx, p)
    ctx.created_id = price["id"]
    return price


def retrieve(ctx: Ctx) -> Obj:
    validate(ctx.params, {})
    return get_price(ctx, ctx.path["id"])


def update(ctx: Ctx) -> Obj:
    p = validate(ctx.params, UPDATE_FIELDS)
    price = get_price(ctx, ctx.path["id"])
    before = copy.deepcopy(price)
    if "lookup_key" in p:
        _claim_lookup_key(ctx, price, p["lookup_key"], bool(p.get("transfer_lookup_key")))
        price["lookup_key"] = p["lookup_key"]
    for key in ("nickname", "tax_behavior"):
        if key in p:
            price[key] = p[key]
    if p.get("active") is not None:
        price["active"] = p["active"]
    price["metadata"] = apply_metadata(price["metadata"], p.get("metadata"))
    changed = previous_attributes(before, price)
    if changed:
        ctx.emit("price.updated", price, previous=changed)
    return price


def list_handler(ctx: Ctx) -> Obj:
    p = validate(
        ctx.params,
        {
            "active": Bool(),
            "currency": Str(),
            "product": Str(),
            "type": Enum("one_time", "recurring"),
            "lookup_keys": ListOf(Str()),
            "recurring": Hash(
                {
                    "interval": Enum("day", "month", "week", "year"),
                    "usage_type": Enum("licensed", "metered"),
                    "meter": Str(),
                }
            ),
            "created": Created(),
        },
        listing=True,
    )
    keys = p.get("lookup_keys")
    interval = (p.get("recurring") or {}).get("interval")

    def wanted(price: Obj) -> bool:
        return (
            (p.get("active") is None or price["active"] == p["active"])
            and (p.get("currency") is None or price["currency"] == p["currency"])
            and (p.get("product") is None or price["product"] == p["product"])
            and (p.get("type") is None or price["type"] == p["type"])
            and (not keys or price["lookup_key"] in keys)
            and (interval is None or (price["recurring"] or {}).get("interval") == interval)
            and created_matches(price["created"], p.get("created"))
        )

    return paginate(filter(wanted, ctx.store.newest_first("price")), p, "/v1/prices")
