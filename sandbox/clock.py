"""The sandbox clock: real time plus an offset that only moves forward.

Advancing it is how tests make a month pass: renewals, session expiry, account-link
expiry and idempotency-key ageing all read this clock, never the wall clock.
"""

from __future__ import annotations

import time


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
