"""The billing page's tests run on the subscription tests' billing stack (API over real
HTTP as a Stripe webhook endpoint, an in-process worker with prices configured)."""

from tests.subscription.conftest import (  # noqa: F401 (fixtures)
    activity_overrides,
    billing_stack,
    catalog,
    smtp_sink,
    worker_overrides,
)
