"""Timeouts and retry policies of activities, in one place.

Stripe idempotency keys live 24 h, so every Stripe-writing activity stops retrying
well before that (`schedule_to_close` 12 h); after it, the workflow compensates or
waits for an operator instead of writing again under an expired key.

A Stripe write has a heartbeat timeout: the worker heartbeats for it while it runs
(worker/heartbeats.py), so a write whose worker died is retried after
`HEARTBEAT_TIMEOUT` instead of its start-to-close timeout. Local activities (the
`DATABASE`, `STRIPE_READ` and welcome-email steps) take no heartbeat timeout.
"""

from __future__ import annotations

from datetime import timedelta
from typing import NotRequired, TypedDict

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
    heartbeat_timeout: NotRequired[timedelta]  # regular activities only


HEARTBEAT_TIMEOUT = timedelta(seconds=10)


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
    "heartbeat_timeout": HEARTBEAT_TIMEOUT,
}
