"""Prometheus series of the webhook ingress (shown on the API's `/metrics`).

Label values are bounded: `type` only ever comes from a verified Stripe event, the
others from the fixed vocabularies below.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# outcome: dispatched | duplicate | ignored | orphaned | failed | unavailable | busy |
# deferred (handed back: its lease could have ended mid-call)
WEBHOOK_EVENTS = Counter(
    "onramp_webhook_events_total",
    "Verified Stripe events by type and what became of them",
    ["type", "outcome"],
)

# reason: invalid_signature | invalid_payload | too_large | livemode_mismatch
WEBHOOK_REJECTIONS = Counter(
    "onramp_webhook_rejections_total",
    "Webhooks refused or set aside without being applied, by reason",
    ["reason"],
)

# problem: missing_header | malformed_header | no_match | stale_timestamp |
# no_secrets_configured
SIGNATURE_FAILURES = Counter(
    "onramp_webhook_signature_failures_total",
    "Stripe-Signature verification failures, by what was wrong",
    ["problem"],
)

# method: signal | signal_with_start; result: ok | not_found | unavailable | error
DISPATCH_SECONDS = Histogram(
    "onramp_webhook_dispatch_seconds",
    "Time of the Temporal call that hands an event to its workflow",
    ["method", "result"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# Refreshed by the API's system monitor from Postgres (every API process reports the same
# inbox): 0 when nothing waits; it grows while Temporal is down or no dispatcher runs.
INBOX_LAG = Gauge(
    "onramp_webhook_inbox_lag_seconds",
    "Age of the oldest stored Stripe event not yet handed to its workflow",
)

# Observed by the inbox dispatcher once an event reached its workflow: Stripe's own delay
# before delivering, onramp's storing and its dispatching, together.
WEBHOOK_LAG = Histogram(
    "onramp_webhook_lag_seconds",
    "From a Stripe event's `created` to its dispatch to the workflow",
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
)
