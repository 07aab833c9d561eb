"""The bench's own machinery, small: the stack as separate processes, three journeys
through it, the invariants counted from outside, and one worker SIGKILL + restart.
Keeps `bench/` from rotting between benchmark runs (docs/BENCHMARKS.md)."""

from __future__ import annotations

import pytest

from bench.journeys import Hashing, check_invariants, run_journeys
from bench.stack import BenchStack

pytestmark = pytest.mark.kill


async def test_three_journeys_through_the_bench_stack_with_a_worker_kill() -> None:
    async with BenchStack.running() as stack:
        await stack.wait_ready()
        stack.kill_worker()
        stack.start_worker()
        hashing_before = await Hashing.before(stack)
        journeys, seconds, _ = await run_journeys(stack, 3, 3, deadline_seconds=180)
        # The webhooks the journeys caused are all handled, and the API counted the three
        # password hashes.
        assert await stack.webhooks_drained(seconds=60) >= 0
        hashing = await hashing_before.since(stack)
        assert hashing.hashes == 3 and hashing.seconds > 0 and hashing.cpu_per_hash > 0
        invariants = await check_invariants(stack, journeys)
        assert [journey.error for journey in journeys] == [None, None, None]
        assert invariants.hold, invariants.lines()
        assert invariants.stripe_objects["customer"] == 3
        assert invariants.stripe_objects["subscription"] == 3
        assert all(0 < journey.pay_to_provisioned < seconds for journey in journeys)
        assert stack.rss("worker") > 0 and stack.cpu()["temporal"] > 0
