"""The bench's event endpoint option, small: an endpoint through the admin API, three
journeys whose events reach a receiver failing 30 % of deliveries (each event failed at
most once, so the 5 s backoff keeps this short), and the delivery invariants the chaos
and journey load runs check (bench/event_endpoint.py)."""

from __future__ import annotations

import pytest

from bench.event_endpoint import create_endpoint, delivered_after
from bench.event_receiver import EventReceiver
from bench.journeys import run_journeys
from bench.stack import BenchStack

pytestmark = pytest.mark.slow


async def test_three_journeys_deliver_every_event_through_a_failing_receiver() -> None:
    async with (
        BenchStack.running() as stack,
        EventReceiver.running(0.3, seed=5, max_failures_per_event=1) as receiver,
    ):
        await stack.wait_ready()
        endpoint_id = await create_endpoint(stack, receiver, "bench smoke")
        journeys, _, _ = await run_journeys(stack, 3, 3, deadline_seconds=180)
        assert [journey.error for journey in journeys] == [None, None, None]
        check = await delivered_after(stack, receiver, endpoint_id, journeys, seconds=90)
    assert check.hold, check.lines()
    # Each journey's events, each accepted once at least, in the outbox's order.
    assert check.types["user.created"] == check.types["password.set"] == 3
    assert check.webhook_ids == check.distinct_events == check.events >= 15
    assert not check.lost and not check.out_of_order_users
    assert check.injected["accepted"] >= check.events
    assert check.recorded_failures <= check.injected_failures
    assert 0 <= check.lags[0] < 60 and len(check.lags) == check.events
