"""Events: retrieve and list (`type`, `types[]`, `created[...]`)."""

from __future__ import annotations

from sandbox.domain.context import Ctx
from sandbox.domain.errors import no_such
from sandbox.domain.jsontypes import Obj
from sandbox.domain.listing import created_matches
from sandbox.domain.params import Bool, Created, ListOf, Str, validate


def _matches(pattern: str, event_type: str) -> bool:
    """Stripe accepts `*` wildcards in `type`, e.g. `invoice.*`."""
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def retrieve(ctx: Ctx) -> Obj:
    validate(ctx.params, {})
    event = ctx.sb.bus.render(ctx.path["id"])
    if event is None:
        raise no_such("event", ctx.path["id"])
    return event


def list_handler(ctx: Ctx) -> Obj:
    p = validate(
        ctx.params,
        {"type": Str(), "types": ListOf(Str()), "created": Created(), "delivery_success": Bool()},
        listing=True,
    )
    types = p.get("types") or ([p["type"]] if p.get("type") else [])
    # Events about connected accounts are listed with the `Stripe-Account` header, as at Stripe.
    account = ctx.stripe_account
    limit = p.get("limit") or 10
    after, before = p.get("starting_after"), p.get("ending_before")
    stored = list(ctx.store.events.values())
    selected = [
        e
        for e in reversed(stored)
        if e.account == account
        and (not types or any(_matches(t, e.type) for t in types))
        and created_matches(e.created, p.get("created"))
    ]
    ids = [e.id for e in selected]
    if before and before in ids:
        newer = selected[: ids.index(before)]
        page, has_more = newer[-limit:], len(newer) > limit
    else:
        start = ids.index(after) + 1 if after and after in ids else (len(ids) if after else 0)
        page, has_more = selected[start : start + limit], len(selected) > start + limit
    data = [ctx.sb.bus.render(e.id) for e in page]
    return {"object": "list", "data": data, "has_more": has_more, "url": "/v1/events"}
