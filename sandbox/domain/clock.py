"""The sandbox clock: real time plus an offset that only moves forward.

Advancing it is how tests make a month pass: renewals, session expiry, account-link
expiry and idempotency-key ageing all read this clock, never the wall clock.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sandbox.domain.jsontypes import Obj

if TYPE_CHECKING:
    from sandbox.domain.store import Store


class Clock:
    """Sandbox time in whole Unix seconds (like every Stripe timestamp)."""

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset

    def now(self) -> int:
        return int(time.time()) + self.offset

    def set_now(self, when: int) -> None:
        """Move to `when` (never backwards)."""
        if when > self.now():
            self.offset = when - int(time.time())

    def reset(self) -> None:
        self.offset = 0


def test_clock_of(store: Store, obj: Obj | None) -> str | None:
    """The test clock an object lives on: its customer's (`None`: the global clock).

    Stripe puts every object of a customer created on a test clock (subscriptions,
    invoices, Checkout Sessions) on that clock; everything else follows real time.
    """
    if obj is None:
        return None
    if obj.get("object") == "customer":
        clock = obj.get("test_clock")
        return clock if isinstance(clock, str) else None
    customer_id = obj.get("customer")
    if not isinstance(customer_id, str):
        return None
    return test_clock_of(store, store.get(customer_id, "customer"))
