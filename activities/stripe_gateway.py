"""Calls to Stripe, with Stripe's errors converted to onramp's at this boundary.

Permanent failures (a card error, an invalid request, bad credentials, an idempotency
conflict) become non-retryable `ApplicationError`s; rate limits, connection errors and
5xx stay retryable, so the activity's retry policy backs off and tries again. The
`stripe` library has already retried what Stripe marked `Stripe-Should-Retry`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import stripe
from temporalio.exceptions import ApplicationError

from workflows import errors

T = TypeVar("T")


def idempotency_key(*parts: object) -> str:
    """Join the parts that name one operation: `<workflow id>/<operation id>/<step>`."""
    return "/".join(str(part) for part in parts)


def convert_stripe_error(error: stripe.StripeError, operation: str) -> ApplicationError:
    """Map a Stripe error to a typed ApplicationError (message without secrets)."""
    status = error.http_status
    detail = f"{operation}: Stripe answered {status}: {error.user_message or str(error)}"
    if isinstance(error, stripe.CardError):
        return ApplicationError(detail, type=errors.STRIPE_CARD_ERROR, non_retryable=True)
    if isinstance(error, stripe.IdempotencyError) or status == 409:
        return ApplicationError(detail, type=errors.STRIPE_IDEMPOTENCY_CONFLICT, non_retryable=True)
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        return ApplicationError(detail, type=errors.STRIPE_AUTHENTICATION, non_retryable=True)
    if isinstance(error, stripe.RateLimitError) or status == 429:
        return ApplicationError(detail, type=errors.STRIPE_RATE_LIMITED)
    if isinstance(error, stripe.InvalidRequestError) and status is not None and status < 500:
        return ApplicationError(detail, type=errors.STRIPE_INVALID_REQUEST, non_retryable=True)
    # Connection errors, 5xx and anything unknown: retry with backoff.
    return ApplicationError(detail, type=errors.STRIPE_UNAVAILABLE)


async def call_stripe(operation: str, call: Awaitable[T]) -> T:
    """Await one Stripe call, converting its errors."""
    try:
        return await call
    except stripe.StripeError as error:
        raise convert_stripe_error(error, operation) from None
