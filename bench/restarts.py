"""Infrastructure restarts: the journey load while Postgres restarts (immediate mode:
every connection drops, crash recovery runs) and then the Temporal dev server restarts
on the same port and history file.

Reports the same invariants as the chaos run: every journey completed, no duplicate
Stripe object, welcome email or workspace, and the time to drain. Exit 0 when they
hold. Bounded: restarts at fixed times, each journey at most --journey-timeout.

    .venv/bin/python bench/restarts.py [--journeys 200] [--concurrency 50]
        [--postgres-at 15] [--temporal-at 40]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` and the app importable
    sys.path.insert(0, str(ROOT))

from bench.disrupted import add_arguments, run_disrupted, time_bound  # noqa: E402
from bench.stack import BenchStack  # noqa: E402


async def restarts(
    stack: BenchStack, stop: asyncio.Event, args: argparse.Namespace
) -> dict[str, Any]:
    began = time.monotonic()
    done: dict[str, Any] = {}
    for at, name in sorted([(args.postgres_at, "postgres"), (args.temporal_at, "temporal")]):
        await asyncio.sleep(max(0.0, began + at - time.monotonic()))
        if stop.is_set():
            done[f"{name} restart"] = "skipped: the journeys were already done"
            continue
        started = time.monotonic()
        if name == "postgres":
            await asyncio.to_thread(stack.restart_postgres)
        else:
            await stack.restart_temporal()
        done[f"{name} restarted at"] = f"{at:.0f} s (down {time.monotonic() - started:.1f} s)"
    await stop.wait()
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_arguments(parser, window=600.0)
    parser.add_argument("--postgres-at", type=float, default=15.0, help="seconds into the run")
    parser.add_argument("--temporal-at", type=float, default=40.0, help="seconds into the run")
    args = parser.parse_args()

    async def disrupt(stack: BenchStack, stop: asyncio.Event) -> dict[str, Any]:
        return await restarts(stack, stop, args)

    run = run_disrupted("restarts", args, disrupt)
    raise SystemExit(asyncio.run(asyncio.wait_for(run, timeout=time_bound(args))))


if __name__ == "__main__":
    main()
