"""The onramp Stripe sandbox: an offline Stripe-compatible HTTP server (`python -m sandbox`).

It imports nothing from the rest of onramp, so it can run on its own in development,
in tests and in demos.
"""

API_VERSION = "2026-10-28.endive"
"""The Stripe API version whose object shapes the sandbox returns (that of `stripe` 16.1)."""
