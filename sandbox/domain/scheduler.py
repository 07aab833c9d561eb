"""Time-driven work: renewals, period-end cancellations, payment retries, expiries.

When the clock jumps, due work runs in time order with the clock set to each due
moment, so a two-month jump renews twice and each event carries the time it happened.
The global clock runs the objects of customers without a test clock; advancing a test
clock runs only its own customers' objects, on that clock's time.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from sandbox.domain import billing
from sandbox.domain.clock import test_clock_of
from sandbox.domain.context import Ctx
from sandbox.domain.jsontypes import Obj
from sandbox.domain.resources.checkout import expire_session
from sandbox.domain.runtime import Sandbox

MAX_STEPS = 10_000
"""A bound on work per jump (a daily subscription over 27 years), against runaway loops."""


def _next_due(
    ctx: Ctx, until: int, clock_id: str | None = None
) -> tuple[int, Callable[[], object]] | None:
    best: tuple[int, Callable[[], object]] | None = None
    store = ctx.store

    def consider(when: int | None, action: Callable[[], object]) -> None:
        nonlocal best
        if when is not None and when <= until and (best is None or when < best[0]):
            best = (when, action)

    def mine(obj: Obj) -> bool:
        return test_clock_of(store, obj) == clock_id

    for sub in filter(mine, store.newest_first("subscription")):
        status = sub["status"]
        if status in ("active", "past_due", "trialing", "unpaid"):
            end = sub["items"]["data"][0]["current_period_end"]
            due = min(end, sub["cancel_at"]) if sub["cancel_at"] else end
            consider(due, partial(billing.renew, ctx, sub))
            if sub["pending_update"] is not None:
                consider(
                    sub["pending_update"]["expires_at"],
                    partial(billing.discard_pending_update, ctx, sub, expired=True),
                )
        elif status == "incomplete":
            consider(
                sub["created"] + billing.INCOMPLETE_SECONDS,
                partial(billing.expire_incomplete, ctx, sub),
            )
    for when, inv in billing.due_invoice_retries(ctx, until):
        if mine(inv):
            consider(when, partial(billing.retry_invoice, ctx, inv))
    for session in filter(mine, store.newest_first("checkout.session")):
        if session["status"] == "open":
            consider(session["expires_at"], partial(expire_session, ctx, session))
    return best


def run_due(sandbox: Sandbox, until: int, base_url: str = "") -> int:
    """Run everything due up to `until` (sandbox time); returns how many steps ran."""
    ctx = sandbox.ctx(base_url)
    steps = 0
    while steps < MAX_STEPS:
        found = _next_due(ctx, until)
        if found is None:
            break
        when, action = found
        sandbox.clock.set_now(when)
        action()
        steps += 1
    sandbox.clock.set_now(until)
    sandbox.idempotency.prune(sandbox.clock.now())
    if steps:
        sandbox.store.dirty = True
    return steps


def run_test_clock_due(ctx: Ctx, clock: Obj, until: int) -> int:
    """Run a test clock's due work up to `until`, moving its `frozen_time` step by step."""
    steps = 0
    while steps < MAX_STEPS:
        found = _next_due(ctx, until, clock["id"])
        if found is None:
            break
        when, action = found
        clock["frozen_time"] = ctx.frozen_time = max(when, clock["frozen_time"])
        action()
        steps += 1
    clock["frozen_time"] = ctx.frozen_time = until
    ctx.store.dirty = True
    return steps
