"""The engine's limit on this machine: a workflow of N no-op activities, run in order.

The journey load run starts this worker as its own process (as the onramp worker is)
on the same Temporal server, then drives as many of these workflows as it drove
journeys, at the same concurrency, with as many activities each as a journey ran, of
the same kinds: regular activities (a task through the server each) and local ones
(run inside the workflow task, as onramp's Postgres-only steps are), the local ones
spread evenly between the regular ones.
Whatever onramp adds on top of Temporal — HTTP, Postgres, the Stripe sandbox, argon2,
email — is the difference between the two.

    python -m bench.baseline --address 127.0.0.1:7233 --task-queue bench-baseline
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

BASELINE_WORKFLOW = "BenchBaseline"


@activity.defn
async def no_op(step: int) -> int:
    return step


@dataclass
class BaselineInput:
    activities: int
    local_activities: int = 0


@workflow.defn(name=BASELINE_WORKFLOW)
class BenchBaseline:
    @workflow.run
    async def run(self, request: BaselineInput) -> int:
        remote, local = max(request.activities, 1), request.local_activities
        for step in range(remote):
            await workflow.execute_activity(
                no_op, step, start_to_close_timeout=timedelta(seconds=15)
            )
            # The local ones that fall after this regular one, spread evenly.
            for local_step in range(step * local // remote, (step + 1) * local // remote):
                await workflow.execute_local_activity(
                    no_op, local_step, start_to_close_timeout=timedelta(seconds=15)
                )
        return remote + local


async def serve(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with Worker(client, task_queue=task_queue, workflows=[BenchBaseline], activities=[no_op]):
        print("baseline worker polling", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="the no-op baseline worker")
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.address, args.task_queue))


if __name__ == "__main__":
    main()
