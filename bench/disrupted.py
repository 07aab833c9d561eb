"""Journeys under disruption: the common part of the chaos and restart runs.

The journeys run at their concurrency while a disruptor coroutine does its damage.
The disruption ends when every journey is done or its window closes; it then undoes
itself (faults cleared, held webhooks let go, the worker running). Then every journey
must still complete — "time to drain" is how long the last one took after the
disruption ended — and the invariants are checked against Stripe, the mail sink and
Postgres.

With `--event-endpoint`, an endpoint for every event type points at the bench's
receiver (bench/event_receiver.py) before the journeys, the receiver failing
`--receiver-failure-share` of the deliveries for the whole run (not only during the
disruption); after the journeys the run waits, at most `--event-drain-timeout`, until
the outbox of the run's users is delivered, and checks bench/event_endpoint.py's
invariants (none lost, duplicates only as retries of one webhook-id, per-user order).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from bench.event_endpoint import DeliveryCheck, create_endpoint, delivered_after
from bench.event_receiver import EventReceiver
from bench.journeys import check_invariants, latency_line, run_journeys
from bench.stack import BenchStack

Disruptor = Callable[[BenchStack, asyncio.Event], Coroutine[Any, Any, dict[str, Any]]]


def add_arguments(
    parser: argparse.ArgumentParser,
    window: float,
    *,
    event_endpoint: bool = False,
    receiver_failure_share: float = 0.0,
) -> None:
    parser.add_argument("--journeys", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--window", type=float, default=window, help="longest disruption, seconds")
    parser.add_argument("--journey-timeout", type=float, default=900.0, help="seconds each")
    parser.add_argument("--keep", action="store_true", help="keep logs and data")
    parser.add_argument(
        "--event-endpoint",
        action=argparse.BooleanOptionalAction,
        default=event_endpoint,
        help="deliver the run's events to a verifying receiver and check them",
    )
    parser.add_argument(
        "--receiver-failure-share",
        type=float,
        default=receiver_failure_share,
        help="deliveries the receiver fails: half answered 500, half reset",
    )
    parser.add_argument("--receiver-seed", type=int, default=2026)
    parser.add_argument(
        "--event-drain-timeout",
        type=float,
        default=1800.0,
        help="longest wait for the events after the journeys, seconds (retries back off "
        "from 5 s, doubling)",
    )


def time_bound(args: argparse.Namespace) -> float:
    """The whole run's bound: the disruption, the journeys' drain, the events' drain."""
    events = args.event_drain_timeout if args.event_endpoint else 0.0
    return float(args.window + 1500 + events)


@contextlib.asynccontextmanager
async def _receiver(args: argparse.Namespace) -> AsyncIterator[EventReceiver | None]:
    if not args.event_endpoint:
        yield None
        return
    async with EventReceiver.running(args.receiver_failure_share, args.receiver_seed) as receiver:
        yield receiver


async def run_disrupted(name: str, args: argparse.Namespace, disrupt: Disruptor) -> int:
    events: DeliveryCheck | None = None
    async with BenchStack.running(keep=args.keep) as stack, _receiver(args) as receiver:
        await stack.wait_ready()
        endpoint_id = ""
        if receiver is not None:
            endpoint_id = await create_endpoint(stack, receiver, f"bench {name}")
        stop = asyncio.Event()
        started = time.monotonic()
        journeys_task = asyncio.create_task(
            run_journeys(stack, args.journeys, args.concurrency, args.journey_timeout)
        )
        disruptor = asyncio.create_task(disrupt(stack, stop))
        await asyncio.wait(
            {journeys_task, disruptor}, timeout=args.window, return_when=asyncio.FIRST_COMPLETED
        )
        stop.set()
        done_disrupting = disruptor.done()
        disruption = await disruptor
        ended = time.monotonic()
        if done_disrupting and not journeys_task.done():
            print(f"{name}: the disruptor stopped early: {disruption}")
        journeys, seconds, retries = await journeys_task
        invariants = await check_invariants(stack, journeys)
        if receiver is not None:
            events = await delivered_after(
                stack, receiver, endpoint_id, journeys, args.event_drain_timeout
            )

    finished = [journey.finished for journey in journeys if journey.done]
    drain = max(0.0, max(finished, default=ended) - ended)
    done = [journey for journey in journeys if journey.done]
    print(
        f"{name}: {args.journeys} journeys at concurrency {args.concurrency}, "
        f"{os.cpu_count()} CPUs, every process on this machine"
    )
    print(
        "disruption: "
        + ", ".join(f"{key} {value}" for key, value in disruption.items())
        + f"; lasted {ended - started:.1f} s"
    )
    last_start = max((journey.started for journey in journeys), default=ended)
    print(
        f"all journeys: {seconds:.1f} s; time to drain after the last journey started: "
        f"{max(0.0, max(finished, default=last_start) - last_start):.1f} s, "
        f"after the disruption ended: {drain:.1f} s"
    )
    print(latency_line("pay → provisioned", [j.pay_to_provisioned for j in done]))
    print(latency_line("whole journey", [j.finished - j.started for j in done]))
    print(
        f"client retries: {sum(retries.values())}; most common: "
        + "; ".join(f"{reason} x{count}" for reason, count in retries.most_common(6))
    )
    for line in invariants.lines():
        print(line)
    for journey in journeys:
        if journey.error:
            print(f"  journey {journey.index} failed: {journey.error}")
    hold = invariants.hold
    if events is not None:
        print(
            f"event endpoint (every type; the receiver fails "
            f"{args.receiver_failure_share:.0%} of deliveries, seed {args.receiver_seed}):"
        )
        for line in events.lines():
            print(f"  {line}")
        hold = hold and events.hold
    print("PASS" if hold else "FAIL")
    return 0 if hold else 1
