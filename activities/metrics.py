"""Prometheus metrics of the worker: its steps, its Stripe calls, its checkouts.

Served by the worker at `WORKER_METRICS_ADDRESS` (worker/metrics.py); each worker process
counts its own, and Prometheus sums them across processes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import Counter, Histogram

from onramp.repositories.checkout_runs import CheckoutRunChange, CheckoutRunRow

# Steps last from milliseconds (a Postgres write) to a minute (a Stripe write paced
# behind a burst); the default buckets stop at 10 s.
_STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

STEP_DURATION = Histogram(
    "onramp_step_duration_seconds",
    "Duration of one attempt of a workflow step (an activity), by workflow type and step",
    ["workflow", "step"],
    buckets=_STEP_BUCKETS,
)
STEP_FAILURES = Counter(
    "onramp_step_failures_total",
    "Failed attempts of a workflow step (retried or final), by workflow type and step",
    ["workflow", "step"],
)
STRIPE_REQUEST_SECONDS = Histogram(
    "onramp_stripe_request_seconds",
    "Duration of one Stripe call by operation (the pacer's wait and the library's own "
    "network retries included)",
    ["operation"],
    buckets=_STEP_BUCKETS,
)
STRIPE_ERRORS = Counter(
    "onramp_stripe_errors_total",
    "Stripe calls that failed, by operation and Stripe's error code (or the HTTP status, "
    "or `connection`)",
    ["operation", "code"],
)
CHECKOUT_PAY_TO_PROVISIONED = Histogram(
    "onramp_checkout_pay_to_provisioned_seconds",
    "From a checkout's payment recorded (paid) to its provisioning recorded (completed)",
    buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600),
)
PROVISIONING_FAILURES = Counter(
    "onramp_provisioning_failures_total",
    "Checkouts whose provisioning was recorded as failed (each transition counted once)",
)


def observe_checkout_change(before: CheckoutRunRow | None, change: CheckoutRunChange) -> None:
    """Count a provisioning outcome once, when it is first recorded: a retried write
    of the same state finds it already there and counts nothing."""
    if before is None:
        return
    if (
        change.provisioning_state == "completed"
        and before.provisioning_state != "completed"
        and before.paid_at is not None
    ):
        elapsed = (datetime.now(UTC) - before.paid_at).total_seconds()
        CHECKOUT_PAY_TO_PROVISIONED.observe(max(elapsed, 0.0))
    if change.provisioning_state == "failed" and before.provisioning_state != "failed":
        PROVISIONING_FAILURES.inc()
