"""Products: create, retrieve, update, delete, list."""

from __future__ import annotations

import copy

from sandbox.domain.context import Ctx
from sandbox.domain.errors import invalid, no_such
from sandbox.domain.events import previous_attributes
from sandbox.domain.ids import new_id
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
    Spec,
    Str,
    apply_metadata,
    validate,
)

FIELDS: dict[str, Spec] = {
    "name": Str(250),
    "active": Bool(),
    "description": Str(40000),
    "metadata": Metadata(),
    "images": ListOf(Str()),
    "marketing_features": Free(),
    "package_dimensions": Free(),
    "shippable": Bool(),
    "statement_descriptor": Str(22),
    "tax_code": Str(),
    "unit_label": Str(12),
    "url": Str(),
}

CREATE_FIELDS: dict[str, Spec] = {
    **FIELDS,
    "id": Str(),
    "type": Enum("good", "service"),
    "default_price_data": Hash(
        {
            "currency": Str(),
            "unit_amount": Int(minimum=0),
            "unit_amount_decimal": Str(),
            "recurring": Hash(
                {
                    "interval": Enum("day", "week", "month", "year"),
                    "interval_count": Int(minimum=1),
                },
                required=["interval"],
            ),
            "tax_behavior": Enum("exclusive", "inclusive", "unspecified"),
            "metadata": Metadata(),
        },
        required=["currency"],
    ),
}


def get_product(ctx: Ctx, product_id: str, param: str = "id") -> Obj:
    product = ctx.store.get(product_id, "product")
    if product is None:
        raise no_such("product", product_id, param)
    return product


def new_product(ctx: Ctx, name: str, product_id: str | None = None) -> Obj:
    return {
        "id": product_id or new_id("prod"),
        "object": "product",
        "active": True,
        "created": ctx.now,
        "default_price": None,
        "description": None,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": {},
        "name": name,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": None,
        "updated": ctx.now,
        "url": None,
    }


def _apply(product: Obj, p: dict[str, object]) -> None:
    for key, value in p.items():
        if key in ("metadata", "expand", "id", "default_price_data"):
            continue
        if key == "images" or key == "marketing_features":
            product[key] = value or []
        elif key == "active":
            product[key] = True if value is None else value
        else:
            product[key] = value
    product["metadata"] = apply_metadata(product["metadata"], p.get("metadata"))  # type: ignore[arg-type]


def create(ctx: Ctx) -> Obj:
    p = validate(ctx.params, CREATE_FIELDS, required=["name"])
    if p.get("id") and (ctx.store.get(p["id"]) or p["id"] in ctx.store.deleted):
        raise invalid("Product already exists.", "id", code="resource_already_exists")
    product = new_product(ctx, p["name"], p.get("id"))
    _apply(product, p)
    ctx.store.add(product)
    ctx.created_id = product["id"]
    ctx.emit("product.created", product)
    data = p.get("default_price_data")
    if data is not None:
        from sandbox.domain.resources.prices import create_price

        price = create_price(ctx, {**data, "product": product["id"]})
        before = copy.deepcopy(product)
        product["default_price"] = price["id"]
        ctx.emit("product.updated", product, previous=previous_attributes(before, product))
    return product


def retrieve(ctx: Ctx) -> Obj:
    validate(ctx.params, {})
    return get_product(ctx, ctx.path["id"])


def update(ctx: Ctx) -> Obj:
    p = validate(ctx.params, {**FIELDS, "default_price": Str()})
    product = get_product(ctx, ctx.path["id"])
    before = copy.deepcopy(product)
    if p.get("default_price") is not None:
        price = ctx.store.get(p["default_price"], "price")
        if price is None or price["product"] != product["id"]:
            raise no_such("price", p["default_price"], "default_price")
    _apply(product, p)
    changed = previous_attributes(before, product)
    if changed:
        product["updated"] = ctx.now
        ctx.emit("product.updated", product, previous=changed)
    return product


def delete(ctx: Ctx) -> Obj:
    validate(ctx.params, {})
    product = get_product(ctx, ctx.path["id"])
    if any(price["product"] == product["id"] for price in ctx.store.newest_first("price")):
        raise invalid(
            "This product cannot be deleted because it has one or more user-created prices."
        )
    stub = ctx.store.delete(product["id"])
    ctx.emit("product.deleted", product)
    assert stub is not None
    return stub


def list_handler(ctx: Ctx) -> Obj:
    p = validate(
        ctx.params,
        {
            "active": Bool(),
            "ids": ListOf(Str()),
            "created": Created(),
            "shippable": Bool(),
            "url": Str(),
        },
        listing=True,
    )
    items = (
        product
        for product in ctx.store.newest_first("product")
        if (p.get("active") is None or product["active"] == p["active"])
        and (not p.get("ids") or product["id"] in p["ids"])
        and created_matches(product["created"], p.get("created"))
    )
    return paginate(items, p, "/v1/products")
