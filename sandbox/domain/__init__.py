"""Stripe's side of the sandbox: objects, billing, cards, clocks, events, idempotency,
faults, rate limits, parameter validation and the store.

Knows nothing of HTTP: handlers take a `Ctx` and return JSON-ready objects or raise
`StripeError`; `sandbox.http` turns requests into those calls and errors into answers.
"""
