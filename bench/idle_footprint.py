"""Idle footprint: worker and API memory with 1,000 subscription workflows open.

Starts the embedded stack (bench/stack.py), measures the resident memory (RSS, process
and children) of the worker and the API at rest, signs up N users through the API and
gives each a tier by the admin override (which opens `subscription-<user>`, a workflow
that stays open for the user's lifetime), waits until everything is idle and measures
again; then restarts the worker and measures it once more (nothing in its workflow
cache yet). Exit 0 when all N subscription workflows are open and the worker stays
under --max-worker-mib.

    .venv/bin/python bench/idle_footprint.py [--users 1000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

import httpx
from temporalio.client import Client

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `bench` and the app importable
    sys.path.insert(0, str(ROOT))

from bench.stack import ADMIN_KEY, CLIENT_KEY, BenchStack  # noqa: E402
from workflows.contracts.subscription import SUBSCRIPTION_WORKFLOW  # noqa: E402

PROCESSES = ("worker", "api", "temporal", "sandbox")


async def open_subscriptions(stack: BenchStack, users: int, concurrency: int) -> int:
    """Sign up `users` users and set each one's tier; returns how many got through."""
    run = uuid.uuid4().hex[:6]
    gate = asyncio.Semaphore(concurrency)
    opened = 0
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=120, limits=limits) as api:

        async def one(index: int) -> None:
            nonlocal opened
            async with gate:
                headers = {
                    "Authorization": f"Bearer {CLIENT_KEY}",
                    "Idempotency-Key": f"{run}-{index}",
                }
                signup = await api.post(
                    "/v1/users",
                    json={"email": f"idle-{run}-{index}@example.com", "username": f"idle{index}"},
                    headers=headers,
                )
                user_id = signup.json()["id"]
                while signup.json().get("status") != "active":
                    await asyncio.sleep(1)
                    signup = await api.get(f"/v1/users/{user_id}", headers=headers)
                tier = await api.put(
                    f"/v1/admin/users/{user_id}/tier",
                    json={"tier": "pro", "reason": "idle footprint bench"},
                    headers={
                        "Authorization": f"Bearer {ADMIN_KEY}",
                        "Idempotency-Key": f"{run}-tier-{index}",
                    },
                )
                if tier.status_code == 200:
                    opened += 1

        await asyncio.gather(*(one(index) for index in range(users)))
    return opened


async def settled_rss(stack: BenchStack, seconds: float) -> dict[str, float]:
    """After `seconds` at rest, the mean of three samples a second apart."""
    await asyncio.sleep(seconds)
    samples = []
    for _ in range(3):
        samples.append({name: stack.rss(name) for name in PROCESSES})
        await asyncio.sleep(1)
    return {name: sum(sample[name] for sample in samples) / len(samples) for name in PROCESSES}


async def run(args: argparse.Namespace) -> int:
    async with BenchStack.running() as stack:
        await stack.wait_ready()
        before = await settled_rss(stack, 5)
        started = time.perf_counter()
        opened = await open_subscriptions(stack, args.users, args.concurrency)
        seconds = time.perf_counter() - started
        client = await Client.connect(stack.temporal_address)
        query = f'WorkflowType="{SUBSCRIPTION_WORKFLOW}" AND ExecutionStatus="Running"'
        deadline = time.monotonic() + 30
        while (running := (await client.count_workflows(query)).count) < opened:
            if time.monotonic() > deadline:  # visibility is eventually consistent
                break
            await asyncio.sleep(1)
        after = await settled_rss(stack, args.settle)
        stack.children["worker"].stop()
        stack.start_worker()
        await stack.wait_ready()
        restarted = await settled_rss(stack, args.settle)

    print(f"idle footprint: {args.users} users signed up and given a tier in {seconds:.0f} s")
    print(f"subscription workflows open (Temporal visibility): {running}")
    print(f"{'RSS MiB':24}" + "".join(f"{name:>10}" for name in PROCESSES))
    for label, figures in (
        ("at rest, none open", before),
        (f"{running} open, idle", after),
        ("worker restarted, idle", restarted),
    ):
        print(f"{label:24}" + "".join(f"{figures[name]:10.0f}" for name in PROCESSES))
    per_workflow = (after["worker"] - before["worker"]) * 1024 / max(running, 1)
    print(f"worker growth per open (cached) workflow: {per_workflow:.0f} KiB")
    ok = running >= args.users and after["worker"] < args.max_worker_mib
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds idle before sampling")
    parser.add_argument("--max-worker-mib", type=float, default=1024.0)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(asyncio.wait_for(run(args), timeout=1800)))


if __name__ == "__main__":
    main()
