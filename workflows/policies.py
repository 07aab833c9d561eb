"""Timeouts and retry policies of activities, in one place.

Stripe idempotency keys live 24 h, so every Stripe-writing activity stops retrying
well before that (`schedule_to_close` 12 h); after it, the workflow compensates or
waits for an operator instead of writing again under an expired key.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TypedDict

from temporalio.common import RetryPolicy

from workflows.errors import NON_RETRYABLE

RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=NON_RETRYABLE,
)


class ActivityOptions(TypedDict):
    """Keyword arguments of `workflow.execute_activity_method` that every call sets."""

    start_to_close_timeout: timedelta
    schedule_to_close_timeout: timedelta
    retry_policy: RetryPolicy


DATABASE: ActivityOptions = {
    "start_to_close_timeout": timedelta(seconds=15),
    "schedule_to_close_timeout": timedelta(hours=1),
    "retry_policy": RETRY,
}

STRIPE_READ: ActivityOptions = {
    "start_to_close_timeout": timedelta(seconds=30),
    "schedule_to_close_timeout": timedelta(hours=1),
    "retry_policy": RETRY,
}

# An email send is retried for as long as a Stripe write: the outbox row and the stable
# Message-ID make a repeated attempt recognisable.
EMAIL: ActivityOptions = {
    "start_to_close_timeout": timedelta(seconds=60),
    "schedule_to_close_timeout": timedelta(hours=12),
    "retry_policy": RETRY,
}

STRIPE_WRITE: ActivityOptions = {
    "start_to_close_timeout": timedelta(seconds=60),
    "schedule_to_close_timeout": timedelta(hours=12),
    "retry_policy": RETRY,
}
