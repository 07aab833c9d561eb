"""One deadline per request: every wait of the request is bounded by what is left of it.

A route that waits for a workflow makes one `Deadline` from its configured wait; the
wait for a first request with the same `Idempotency-Key`, connecting to Temporal, the
call itself and the wait for its result all spend the same budget, so the answer comes
within the configured time however the time is spent (a per-call timeout would bound
each poll of a result, not the wait: a 30 s checkout answered after 75 s that way).
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Deadline:
    """A point in (monotonic) time, and the budget it was made from, for messages."""

    at: float
    seconds: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(at=time.monotonic() + seconds, seconds=seconds)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0
