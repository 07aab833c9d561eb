"""A test workflow that is a second caller of the shared ensure step.

Checkout and upgrade call `ensure_stripe_customer` in later issues; until then this
probe stands in for "another workflow ensures the same user's customer".
"""

from __future__ import annotations

from temporalio import workflow

from workflows.contracts.common import EnsuredStripeObject
from workflows.ensure import ensure_stripe_customer


@workflow.defn
class EnsureCustomerProbe:
    @workflow.run
    async def run(self, user_id: str) -> EnsuredStripeObject:
        return await ensure_stripe_customer(user_id)
