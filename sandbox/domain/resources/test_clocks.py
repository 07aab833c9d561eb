"""Test clocks (`/v1/test_helpers/test_clocks`): create, retrieve, list, delete, advance.

A customer created with `test_clock` (or attached by the clock's `customer` parameter)
lives on that clock's time with everything it owns: subscriptions, invoices, dunning
retries, `incomplete` expiry and Checkout Sessions are created at the clock's
`frozen_time` and move only when the clock is advanced, while the global sandbox clock
runs everything else. Rules follow Stripe's test clock guide and the generated
`TestClock*Params` docstrings: a clock moves only forward, at most two intervals of its
shortest live subscription (two years without one), holds at most three customers,
deletes itself 30 days after creation, and deleting it deletes its customers.

Modelled cheaply: an advance runs synchronously, but its answer shows `status:
"advancing"` (as Stripe's does) and the stored clock is `ready` afterwards, with
`test_helpers.test_clock.advancing` and `.ready` events, so clients must poll as they
would at Stripe. Not modelled: `internal_failure`, refusing writes to a clock's objects
while it advances (nothing can interleave here), and the automatic deletion after
`deletes_after` (the field is shown only).
"""

from __future__ import annotations

import copy
from typing import Any

from sandbox.domain.clock import test_clock_of
from sandbox.domain.context import Ctx
from sandbox.domain.errors import invalid, no_such
from sandbox.domain.ids import new_id
from sandbox.domain.jsontypes import Obj
from sandbox.domain.listing import paginate
from sandbox.domain.params import Int, Str, validate
from sandbox.domain.periods import add_interval
from sandbox.domain.scheduler import run_test_clock_due
from sandbox.domain.store import Store

KIND = "test_helpers.test_clock"
LIFETIME_SECONDS = 30 * 86_400
"""Stripe deletes a test clock (and its objects) 30 days after it was created."""
MAX_CUSTOMERS = 3
"""Stripe's limit of customers per test clock."""
LIVE = ("active", "past_due", "trialing", "unpaid", "incomplete")


def get_clock(ctx: Ctx, clock_id: str, param: str = "id") -> Obj:
    clock = ctx.store.get(clock_id, KIND)
    if clock is None:
        raise no_such("test_helpers.test_clock", clock_id, param)
    return clock


def customers_on(store: Store, clock_id: str) -> list[Obj]:
    return [c for c in store.newest_first("customer") if c.get("test_clock") == clock_id]


def check_room(ctx: Ctx, clock_id: str, param: str) -> Obj:
    """The clock a new customer joins, refused when it already holds Stripe's maximum."""
    clock = get_clock(ctx, clock_id, param)
    if len(customers_on(ctx.store, clock_id)) >= MAX_CUSTOMERS:
        raise invalid(
            f"The test clock {clock_id} already has the maximum number of customers "
            f"({MAX_CUSTOMERS}) attached to it.",
            param,
        )
    return clock


def frozen_time_for(store: Store, params: dict[str, Any], path: dict[str, str]) -> int | None:
    """The time a request's work happens at: its customer's test clock, if it has one.

    Found from the object the path names (a customer, or anything with a `customer`),
    else from a `customer` or `test_clock` parameter.
    """
    clock_id: str | None = None
    target = store.get(path["id"]) if "id" in path else None
    if target is not None:
        clock_id = test_clock_of(store, target)
    if clock_id is None and isinstance(params.get("customer"), str):
        clock_id = test_clock_of(store, store.get(params["customer"], "customer"))
    if clock_id is None and isinstance(params.get("test_clock"), str):
        clock_id = params["test_clock"]
    clock = store.get(clock_id, KIND) if clock_id else None
    return None if clock is None else int(clock["frozen_time"])


def _advance_limit(store: Store, clock: Obj) -> int:
    frozen = int(clock["frozen_time"])
    customers = {c["id"] for c in customers_on(store, clock["id"])}
    limits = [
        add_interval(frozen, price["recurring"]["interval"], 2 * count, frozen)
        for sub in store.newest_first("subscription")
        if sub["customer"] in customers and sub["status"] in LIVE
        for item in sub["items"]["data"]
        for price in [item["price"]]
        for count in [int(price["recurring"].get("interval_count") or 1)]
    ]
    return min(limits) if limits else add_interval(frozen, "year", 2, frozen)


def create(ctx: Ctx) -> Obj:
    p = validate(
        ctx.params,
        {"frozen_time": Int(), "name": Str(300), "customer": Str()},
        required=["frozen_time"],
    )
    customer = None
    if p.get("customer"):
        customer = ctx.store.get(p["customer"], "customer")
        if customer is None:
            raise no_such("customer", p["customer"], "customer")
        if customer.get("test_clock"):
            raise invalid("Customers can't be moved from one test clock to another.", "customer")
    now = ctx.sb.clock.now()
    clock: Obj = {
        "id": new_id("clock"),
        "object": KIND,
        "created": now,
        "deletes_after": now + LIFETIME_SECONDS,
        "frozen_time": p["frozen_time"],
        "livemode": False,
        "name": p.get("name"),
        "status": "ready",
        "status_details": {},
    }
    ctx.store.add(clock)
    ctx.created_id = clock["id"]
    ctx.emit("test_helpers.test_clock.created", clock)
    if customer is not None:
        customer["test_clock"] = clock["id"]
    return clock


def retrieve(ctx: Ctx) -> Obj:
    validate(ctx.params, {})
    stub = ctx.store.deleted.get(ctx.path["id"])
    if stub is not None and stub["object"] == KIND:
        return stub
    return get_clock(ctx, ctx.path["id"])


def list_handler(ctx: Ctx) -> Obj:
    p = validate(ctx.params, {}, listing=True)
    return paginate(ctx.store.newest_first(KIND), p, "/v1/test_helpers/test_clocks")


def delete(ctx: Ctx) -> Obj:
    """Delete the clock and, as at Stripe, every customer on it (their subscriptions end)."""
    validate(ctx.params, {})
    clock = get_clock(ctx, ctx.path["id"])
    from sandbox.domain.resources.customers import delete_customer

    for customer in customers_on(ctx.store, clock["id"]):
        delete_customer(ctx, customer)
    stub = ctx.store.delete(clock["id"])
    ctx.emit("test_helpers.test_clock.deleted", clock)
    assert stub is not None
    return stub


def advance(ctx: Ctx) -> Obj:
    p = validate(ctx.params, {"frozen_time": Int()}, required=["frozen_time"])
    clock = get_clock(ctx, ctx.path["id"])
    target = int(p["frozen_time"])
    if target <= clock["frozen_time"]:
        raise invalid(
            "The frozen time must be after the test clock's current frozen time "
            f"({clock['frozen_time']}).",
            "frozen_time",
        )
    limit = _advance_limit(ctx.store, clock)
    if target > limit:
        raise invalid(
            "Cannot advance more than two intervals of the shortest subscription on this "
            f"test clock (or two years without one): at most {limit}.",
            "frozen_time",
        )
    clock["status"] = "advancing"
    clock["status_details"] = {"advancing": {"target_frozen_time": target}}
    ctx.emit("test_helpers.test_clock.advancing", clock)
    answer = copy.deepcopy(clock)
    ctx.frozen_time = clock["frozen_time"]
    run_test_clock_due(ctx, clock, target)
    clock["status"] = "ready"
    clock["status_details"] = {}
    ctx.emit("test_helpers.test_clock.ready", clock)
    return answer
