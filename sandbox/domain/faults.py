"""Injected faults: a share of matching requests answered with an error and/or delayed.

By default a fault is decided before the request is processed, so a faulted request
changes nothing and is not saved under its idempotency key (a retry with the same key
runs for real). What the error says decides whether `stripe` retries it by itself:
500/503 yes; 429 only as a "lock timeout" (`Stripe-Should-Retry: true`), never a plain
rate limit.

A 500 fault may instead fail *inside* the endpoint (`saved`): Stripe saves the result of
a request once its endpoint began executing, 500s included, and replays it for 24 h to
the same idempotency key (Stripe's idempotency docs). Such a 500 carries
`Stripe-Should-Retry: false` — stripe-python's retry logic notes that Stripe marks most
500s so, since its idempotency layer would only replay them — and `applied` says whether
the endpoint's work (the object created, the events sent) was done before it failed:
the case where the caller cannot know the outcome.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from sandbox.domain.errors import StripeError, bad_param
from sandbox.domain.jsontypes import Obj

STATUSES = (400, 401, 402, 403, 429, 500, 503)


@dataclass
class Fault:
    id: str
    path: re.Pattern[str]
    method: str | None
    rate: float
    status: int | None
    lock_timeout: bool
    delay_ms: int
    times: int | None
    saved: float = 0.0
    """Share of fired 500s that fail inside the endpoint (saved under the key)."""
    applied: float = 0.0
    """Share of those whose work was done before the 500."""
    fired: int = 0
    saved_fired: int = 0
    applied_fired: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        return self.path.search(path) is not None

    def describe(self) -> Obj:
        return {
            "id": self.id,
            "path": self.path.pattern,
            "method": self.method,
            "rate": self.rate,
            "status": self.status,
            "lock_timeout": self.lock_timeout,
            "delay_ms": self.delay_ms,
            "times": self.times,
            "saved": self.saved,
            "applied": self.applied,
            "fired": self.fired,
            "saved_fired": self.saved_fired,
            "applied_fired": self.applied_fired,
        }

    def inside_endpoint(self) -> tuple[bool, bool]:
        """For a request this fault fired on: did it fail inside the endpoint (so the
        500 is saved), and was the endpoint's work done before it failed?"""
        if self.status != 500 or not self.saved:
            return False, False
        began = self.rng.random() < self.saved
        return began, began and self.rng.random() < self.applied

    def undo(self) -> None:
        """The request was answered before its endpoint ran (a replay or a validation
        error), so a fault meant to fail inside the endpoint did not fire."""
        self.fired -= 1

    def error(self, *, inside_endpoint: bool = False) -> StripeError | None:
        """The error this fault answers with (None for a delay-only fault)."""
        note = f" (sandbox fault {self.id})"
        if self.status is None:
            return None
        if inside_endpoint:
            return StripeError(
                500,
                "api_error",
                "An unknown error occurred, please try again later." + note,
                headers={"Stripe-Should-Retry": "false"},
            )
        if self.status == 429 and self.lock_timeout:
            return StripeError(
                429,
                "invalid_request_error",
                "This object cannot be accessed right now because another API request or "
                "Stripe process is currently accessing it. If you see this error "
                "intermittently, retry the request." + note,
                code="lock_timeout",
                headers={"Stripe-Should-Retry": "true"},
            )
        if self.status == 429:
            return StripeError(
                429,
                "invalid_request_error",
                "Request rate limit exceeded. Learn more about rate limits here "
                "https://stripe.com/docs/rate-limits." + note,
                code="rate_limit",
            )
        if self.status == 400:
            return StripeError(400, "invalid_request_error", "Injected bad request" + note)
        if self.status == 401:
            # What Stripe answers a revoked or rotated-away key (`stripe` raises
            # AuthenticationError).
            return StripeError(
                401, "invalid_request_error", "Invalid API Key provided: sk_test_****" + note
            )
        if self.status == 403:
            # A restricted key without the permission (`stripe` raises PermissionError).
            return StripeError(
                403,
                "invalid_request_error",
                "The provided key does not have the required permissions for this endpoint." + note,
            )
        if self.status == 402:
            return StripeError(
                402,
                "card_error",
                "Your card was declined." + note,
                code="card_declined",
                decline_code="generic_decline",
            )
        return StripeError(
            self.status,
            "api_error",
            "An unknown error occurred, please try again later." + note,
        )


def _share(value: object, name: str) -> float:
    """`true`/`false` or a share between 0.0 and 1.0."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise bad_param(f"{name} must be true, false or a share between 0.0 and 1.0", name)
    return float(value)


class Faults:
    """The active fault rules; the first one that fires decides a request's fate."""

    def __init__(self) -> None:
        self.rules: list[Fault] = []
        self._next = 0

    def add(self, spec: Obj) -> Fault:
        path = spec.get("path", ".*")
        try:
            pattern = re.compile(str(path))
        except re.error as exc:
            raise bad_param(f"Invalid path regex: {exc}", "path") from None
        rate = float(spec.get("rate", 1.0))
        if not 0.0 <= rate <= 1.0:
            raise bad_param("rate must be between 0.0 and 1.0", "rate")
        status = spec.get("status")
        if status is not None and int(status) not in STATUSES:
            raise bad_param(f"status must be one of {list(STATUSES)}", "status")
        status = int(status) if status is not None else None
        delay_ms = int(spec.get("delay_ms") or 0)
        if status is None and not delay_ms:
            status = 500
        saved = _share(spec.get("saved", False), "saved")
        applied = _share(spec.get("applied", False), "applied")
        if saved and status != 500:
            raise bad_param("only a 500 is saved under an idempotency key", "saved")
        if applied and not saved:
            raise bad_param(
                "applied needs saved: work is done only once the endpoint began", "applied"
            )
        method = spec.get("method")
        times = spec.get("times")
        seed = spec.get("seed")
        self._next += 1
        fault = Fault(
            id=f"fault_{self._next}",
            path=pattern,
            method=str(method).upper() if method else None,
            rate=rate,
            status=status,
            lock_timeout=bool(spec.get("lock_timeout", False)),
            delay_ms=delay_ms,
            times=int(times) if times is not None else None,
            saved=saved,
            applied=applied,
            rng=random.Random(seed),
        )
        self.rules.append(fault)
        return fault

    def decide(self, method: str, path: str) -> Fault | None:
        for fault in self.rules:
            if fault.matches(method, path) and fault.rng.random() < fault.rate:
                fault.fired += 1
                return fault
        return None

    def clear(self) -> None:
        self.rules = []

    def remove(self, fault_id: str) -> bool:
        before = len(self.rules)
        self.rules = [f for f in self.rules if f.id != fault_id]
        return len(self.rules) != before
