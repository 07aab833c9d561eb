"""Calls to Stripe, with Stripe's errors converted to onramp's at this boundary.

Permanent failures (a card error, an invalid request, bad credentials, the same
idempotency key sent with other parameters) become non-retryable `ApplicationError`s;
rate limits, connection errors, 5xx and a key still in flight (409
`idempotency_key_in_use`: Stripe saved nothing, the same key is retried) stay
retryable, so the activity's retry policy backs off and tries again. The `stripe`
library has already retried what Stripe marked `Stripe-Should-Retry`.

A 500 that Stripe *replays* for a key (`Idempotent-Replayed: true`) is different: once
an endpoint began executing, Stripe saves its result, 500s included, for 24 h, so the
same key can never succeed. The same holds for the first such 500 when Stripe marks it
`Stripe-Should-Retry: false` (stripe-python then does not retry it: a retry would only
be replayed). The outcome of the first attempt is unknown: `write_once` re-reads what
exists before it writes again under a new, still deterministic key.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

import stripe
from opentelemetry.trace import SpanKind
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics
from onramp import tracing
from onramp.logging import log_event
from workflows import errors

T = TypeVar("T")

logger = logging.getLogger(__name__)

# How many fresh keys one write may take after replayed 500s before it gives up
# (retryably: the activity's next attempt starts again from the first key).
OUTCOME_UNKNOWN_ROUNDS = 3

# Seconds: the longest wait before retrying a rate-limited attempt.
RATE_LIMITED_MAX_DELAY = 30.0


class StripeOutcomeUnknown(Exception):
    """Stripe replayed a saved 500 for this key: the first attempt may or may not have
    taken effect, and this key will never answer anything else."""

    def __init__(self, operation: str, key: str | None) -> None:
        super().__init__(f"{operation}: Stripe replayed a saved 500 for key {key}")
        self.operation = operation
        self.key = key


def idempotency_key(*parts: object) -> str:
    """Join the parts that name one operation: `<workflow id>/<operation id>/<step>`."""
    return "/".join(str(part) for part in parts)


def _header(error: stripe.StripeError, name: str) -> str | None:
    for key, value in (error.headers or {}).items():
        if key.lower() == name:
            return value
    return None


def is_replayed_server_error(error: stripe.StripeError) -> bool:
    """A 5xx that Stripe answered from its idempotency memory, or saved there and said
    so (`Stripe-Should-Retry: false`): the same key will only ever answer it again."""
    status = error.http_status or 0
    if status < 500:
        return False
    replayed = _header(error, "idempotent-replayed") == "true"
    return replayed or _header(error, "stripe-should-retry") == "false"


def _rate_limited_delay() -> timedelta | None:
    """Exponential backoff with jitter for a rate-limited attempt (Stripe's advice), so
    activities limited together do not all come back at the same instant."""
    if not activity.in_activity():
        return None
    ceiling = min(RATE_LIMITED_MAX_DELAY, 2.0 ** (activity.info().attempt - 1))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


def convert_stripe_error(error: stripe.StripeError, operation: str) -> ApplicationError:
    """Map a Stripe error to a typed ApplicationError (message without secrets)."""
    status = error.http_status
    detail = f"{operation}: Stripe answered {status}: {error.user_message or str(error)}"
    if isinstance(error, stripe.CardError):
        return ApplicationError(detail, type=errors.STRIPE_CARD_ERROR, non_retryable=True)
    if status == 409 or error.code == "idempotency_key_in_use":
        # Another request with this key is still running; Stripe saved nothing for
        # ours, so the same key is tried again.
        return ApplicationError(detail, type=errors.STRIPE_IDEMPOTENCY_IN_FLIGHT)
    if isinstance(error, stripe.IdempotencyError):
        return ApplicationError(detail, type=errors.STRIPE_IDEMPOTENCY_CONFLICT, non_retryable=True)
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        return ApplicationError(detail, type=errors.STRIPE_AUTHENTICATION, non_retryable=True)
    if isinstance(error, stripe.RateLimitError) or status == 429:
        return ApplicationError(
            detail, type=errors.STRIPE_RATE_LIMITED, next_retry_delay=_rate_limited_delay()
        )
    if isinstance(error, stripe.InvalidRequestError) and status is not None and status < 500:
        return ApplicationError(detail, type=errors.STRIPE_INVALID_REQUEST, non_retryable=True)
    # Connection errors, 5xx and anything unknown: retry with backoff.
    return ApplicationError(detail, type=errors.STRIPE_UNAVAILABLE)


async def call_stripe(operation: str, call: Awaitable[T]) -> T:
    """Await one Stripe call, converting its errors.

    A saved or replayed 500 outside `write_once` (a read, or a write whose outcome can
    be checked only by its caller) is a retryable `STRIPE_UNAVAILABLE`.
    """
    try:
        return await _call_reporting_unknown(operation, call)
    except StripeOutcomeUnknown as unknown:
        raise ApplicationError(str(unknown), type=errors.STRIPE_UNAVAILABLE) from None


async def _call_reporting_unknown(operation: str, call: Awaitable[T]) -> T:
    """Like `call_stripe`, but a saved or replayed 500 raises `StripeOutcomeUnknown`.

    Each call is one `stripe.<operation>` span and one observation of
    `onramp_stripe_request_seconds`; a failure counts in `onramp_stripe_errors_total`
    by Stripe's code."""
    started = time.perf_counter()
    with tracing.span(
        f"stripe.{operation}", SpanKind.CLIENT, **{"stripe.operation": operation}
    ) as span:
        try:
            return await call
        except stripe.StripeError as error:
            code = error_code(error)
            metrics.STRIPE_ERRORS.labels(operation, code).inc()
            span.set_attributes(
                {"stripe.error_code": code, "stripe.request_id": error.request_id or ""}
            )
            if error.http_status is not None:
                span.set_attribute("http.response.status_code", error.http_status)
            if is_replayed_server_error(error):
                raise StripeOutcomeUnknown(operation, None) from None
            raise convert_stripe_error(error, operation) from None
        finally:
            metrics.STRIPE_REQUEST_SECONDS.labels(operation).observe(time.perf_counter() - started)


def error_code(error: stripe.StripeError) -> str:
    """Stripe's error code, else the HTTP status, else `connection` (no answer)."""
    if error.code:
        return str(error.code)
    if error.http_status is not None:
        return str(error.http_status)
    return "connection"


async def write_once(
    operation: str,
    key: str,
    write: Callable[[str], Awaitable[T]],
    find_outcome: Callable[[], Awaitable[T | None]],
) -> T:
    """One Stripe write under `key` that survives a saved 500 without doing it twice.

    `write(k)` performs the write under the idempotency key `k`; `find_outcome()`
    re-reads Stripe (by the ids and metadata onramp controls) and returns the write's
    result if it already took effect, else None. On a replayed 500 the outcome is
    looked up first; only when nothing is found is the write made again, under
    `<key>/after-unknown-<n>`. The keys are deterministic, so a retry of the whole
    activity walks the same keys and is answered from Stripe's memory.
    """
    current = key
    for round_ in range(1, OUTCOME_UNKNOWN_ROUNDS + 1):
        try:
            return await _call_reporting_unknown(operation, write(current))
        except StripeOutcomeUnknown:
            log_event(
                logger, "STRIPE_OUTCOME_UNKNOWN", operation=operation, idempotency_key=current,
            )  # fmt: skip
            found = await find_outcome()
            if found is not None:
                return found
            current = f"{key}/after-unknown-{round_}"
    raise ApplicationError(
        f"{operation}: Stripe kept replaying saved 500s ({OUTCOME_UNKNOWN_ROUNDS} keys)",
        type=errors.STRIPE_UNAVAILABLE,
    )
