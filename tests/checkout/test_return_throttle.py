"""Bounded cost per token: Stripe's return to `success_url` re-reads the session at most
once per `CHECKOUT_RETURN_REREAD_SECONDS` (a reload storm adds no history and no Stripe
reads), and the route is rate-limited per session and per client address."""

from __future__ import annotations

import pytest

from tests.checkout.conftest import CheckoutStack, OpenStack
from workflows.contracts.checkout import CHECKOUT_RETURN_SIGNAL, checkout_workflow_id

pytestmark = pytest.mark.slow


async def _return_signals(stack: CheckoutStack, user_id: str) -> int:
    handle = stack.temporal.get_workflow_handle(checkout_workflow_id(user_id))
    count = 0
    async for event in handle.fetch_history_events():
        signaled = event.workflow_execution_signaled_event_attributes
        if event.HasField("workflow_execution_signaled_event_attributes") and (
            signaled.signal_name == CHECKOUT_RETURN_SIGNAL
        ):
            count += 1
    return count


async def test_returns_re_read_once_per_interval_and_are_rate_limited(
    checkout_stack: OpenStack,
) -> None:
    # An interval longer than the test, so "once" does not depend on the machine's speed.
    overrides = {"checkout_return_reread_seconds": 3600.0, "token_route_limit_per_minute": 12}
    async with checkout_stack(webhooks=False, api_overrides=overrides) as stack:
        user_id, _ = await stack.signup()
        started = await stack.checkout(user_id)
        session_id = started["checkout_session_id"]

        answers = [
            await stack.api.get("/v1/checkout/return", params={"session_id": session_id})
            for _ in range(14)
        ]

        assert [a.status_code for a in answers[:12]] == [303] * 12
        assert [a.status_code for a in answers[12:]] == [429, 429]
        assert answers[-1].json()["error"]["code"] == "rate_limited"
        assert "Retry-After" in answers[-1].headers
        assert await _return_signals(stack, user_id) == 1
