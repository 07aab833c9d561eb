"""Chaos: the journey load while the worker is SIGKILLed every few seconds, the Stripe
sandbox fails 30 % of API requests (500 and 429) and delays others, and every webhook
is delivered three times, shuffled. A share of the 500s (--saved-share, half by
default) fail inside the endpoint as Stripe's own would: saved under the request's
idempotency key and replayed for it, half of them after the work was done (the
outcome onramp cannot know and must re-read).

Reports journeys completed / started (must be all), duplicate Stripe objects (from the
sandbox: must be 0), duplicate welcome emails and workspaces (0) and the time to drain
after the chaos ends. By default an event endpoint for every event type is configured
and its receiver fails 30 % of deliveries (half 500, half a reset connection) for the
whole run: after the journeys the run waits for the outbox to be delivered and checks
that no event was lost, that duplicates are only retries of one webhook-id, and the
order per user (bench/event_endpoint.py; `--no-event-endpoint` leaves it out). Exit 0
when all of that holds. Bounded: the chaos lasts at most --window seconds, each journey
at most --journey-timeout, the wait for the events at most --event-drain-timeout.

    .venv/bin/python bench/chaos.py [--journeys 200] [--concurrency 50] [--kill-every 5]
        [--receiver-failure-share 0.3] [--no-event-endpoint]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` and the app importable
    sys.path.insert(0, str(ROOT))

from bench.disrupted import add_arguments, run_disrupted, time_bound  # noqa: E402
from bench.stack import BenchStack  # noqa: E402


async def chaos(stack: BenchStack, stop: asyncio.Event, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    counts: dict[str, Any] = {"worker SIGKILLs": 0, "webhook batches released x3 shuffled": 0}
    half = args.error_rate / 2
    saved = half * args.saved_share
    # Rules fire in order, each on what the previous ones let through: saved 500s on
    # `saved` of the requests (of --saved-path), plain 500s on the rest of `half`, 429 on
    # `half` of all (so half / (1 - half) of the rest), then a delay.
    faults = [
        {
            "path": args.saved_path,
            "rate": saved,
            "status": 500,
            "saved": True,
            "applied": 0.5,
            "seed": rng.randrange(1 << 30),
        },
        {
            "path": "^/v1/",
            "rate": (half - saved) / (1 - saved),
            "status": 500,
            "seed": rng.randrange(1 << 30),
        },
        {"path": "^/v1/", "rate": half / (1 - half), "status": 429, "seed": rng.randrange(1 << 30)},
        {"path": "^/v1/", "rate": 0.3, "delay_ms": args.delay_ms, "seed": rng.randrange(1 << 30)},
    ]
    async with httpx.AsyncClient(base_url=f"{stack.sandbox_url}/_sandbox", timeout=30) as ctl:
        for fault in faults:
            (await ctl.post("/faults", json=fault)).raise_for_status()
        (await ctl.post("/webhooks/hold")).raise_for_status()
        loop = asyncio.get_running_loop()
        next_kill = loop.time() + rng.uniform(0.5, 1.5) * args.kill_every
        try:
            while not stop.is_set():
                released = await ctl.post(
                    "/webhooks/release",
                    json={"order": "shuffled", "duplicates": 3, "keep_holding": True},
                )
                released.raise_for_status()
                counts["webhook batches released x3 shuffled"] += 1
                if loop.time() >= next_kill:
                    stack.kill_worker()
                    counts["worker SIGKILLs"] += 1
                    await asyncio.sleep(0.5)
                    stack.start_worker()
                    next_kill = loop.time() + rng.uniform(0.5, 1.5) * args.kill_every
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
        finally:
            stats = (await ctl.get("/stats")).json()
            fired = (await ctl.get("/faults")).json()["data"]
            await ctl.delete("/faults")
            await ctl.post("/webhooks/release", json={"order": "shuffled", "duplicates": 3})
            if stack.children["worker"].exit_code() is not None:
                stack.start_worker()
    requests = sum(row["count"] for row in stats["requests"] if row["path"].startswith("/v1/"))
    errors = sum(fault["fired"] for fault in fired if fault["status"])
    delays = sum(fault["fired"] for fault in fired if not fault["status"])
    saved_fired = sum(fault["saved_fired"] for fault in fired)
    applied_fired = sum(fault["applied_fired"] for fault in fired)
    counts["Stripe API requests"] = requests
    counts["failed (500/429)"] = f"{errors} ({errors / requests:.0%})" if requests else "0"
    counts["500s inside the endpoint (saved when keyed) / of them applied"] = (
        f"{saved_fired} / {applied_fired}"
    )
    counts["idempotent replays"] = stats["idempotent_replays"]
    counts["refused by the rate limit"] = sum(stats.get("rate_limited", {}).values())
    counts["delayed"] = delays
    counts["webhook deliveries"] = sum(stats["webhook_deliveries"].values())
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_arguments(parser, window=600.0, event_endpoint=True, receiver_failure_share=0.3)
    parser.add_argument("--kill-every", type=float, default=5.0, help="seconds, ±50 %%")
    parser.add_argument("--error-rate", type=float, default=0.3)
    parser.add_argument("--delay-ms", type=int, default=300)
    parser.add_argument(
        "--saved-share", type=float, default=0.5, help="share of the 500s Stripe saves"
    )
    parser.add_argument(
        "--saved-path", default="^/v1/", help="requests whose 500s may be saved (regex)"
    )
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    async def disrupt(stack: BenchStack, stop: asyncio.Event) -> dict[str, Any]:
        return await chaos(stack, stop, args)

    run = run_disrupted("chaos", args, disrupt)
    raise SystemExit(asyncio.run(asyncio.wait_for(run, timeout=time_bound(args))))


if __name__ == "__main__":
    main()
