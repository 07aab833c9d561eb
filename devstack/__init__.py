"""Development tooling, outside the runtime kernel: the stack supervisor that `onramp dev`,
the benchmarks and the tests start their services with, the SMTP sink, the Stripe
catalog of the sandbox, and signed Stripe events for tests and benchmarks.

The service (`onramp`, `api`, `worker`, `workflows`, `activities`) never imports it.
"""
