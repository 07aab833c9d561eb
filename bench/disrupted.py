"""Journeys under disruption: the common part of the chaos and restart runs.

The journeys run at their concurrency while a disruptor coroutine does its damage.
The disruption ends when every journey is done or its window closes; it then undoes
itself (faults cleared, held webhooks let go, the worker running). Then every journey
must still complete — "time to drain" is how long the last one took after the
disruption ended — and the invariants are checked against Stripe, the mail sink and
Postgres.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable, Coroutine
from typing import Any

from bench.journeys import check_invariants, latency_line, run_journeys
from bench.stack import BenchStack

Disruptor = Callable[[BenchStack, asyncio.Event], Coroutine[Any, Any, dict[str, Any]]]


def add_arguments(parser: argparse.ArgumentParser, window: float) -> None:
    parser.add_argument("--journeys", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--window", type=float, default=window, help="longest disruption, seconds")
    parser.add_argument("--journey-timeout", type=float, default=900.0, help="seconds each")
    parser.add_argument("--keep", action="store_true", help="keep logs and data")


async def run_disrupted(name: str, args: argparse.Namespace, disrupt: Disruptor) -> int:
    async with BenchStack.running(keep=args.keep) as stack:
        await stack.wait_ready()
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
    print("PASS" if invariants.hold else "FAIL")
    return 0 if invariants.hold else 1
