"""Run the onramp worker until SIGTERM/SIGINT, then shut down gracefully.

On a signal the worker stops polling, lets in-flight activities finish for up to
`WORKER_GRACEFUL_SHUTDOWN_SECONDS` (then cancels them, and Temporal retries them
elsewhere), and exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from onramp.db import create_pool
from onramp.logging import configure_logging, log_event
from onramp.settings import WorkerSettings, load_settings
from onramp.temporal import connect_temporal
from worker.build import WorkerDependencies, build_worker

logger = logging.getLogger("worker")


async def run(settings: WorkerSettings) -> None:
    runtime = None
    if settings.worker_metrics_address:
        runtime = Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(bind_address=settings.worker_metrics_address)
            )
        )
    client = await connect_temporal(
        settings.temporal_address, settings.temporal_namespace, runtime=runtime
    )
    pool = await create_pool(settings.database_url.get_secret_value())
    dependencies = WorkerDependencies.build(settings, pool)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    worker = build_worker(
        client,
        settings.temporal_task_queue,
        dependencies,
        graceful_shutdown=timedelta(seconds=settings.worker_graceful_shutdown_seconds),
    )
    try:
        async with worker:
            log_event(logger, "WORKER_STARTED", task_queue=settings.temporal_task_queue)
            await stop.wait()
            log_event(logger, "WORKER_STOPPING", task_queue=settings.temporal_task_queue)
    finally:
        await pool.close()
    log_event(logger, "WORKER_STOPPED", task_queue=settings.temporal_task_queue)


def main() -> None:
    settings = load_settings(WorkerSettings)
    configure_logging(settings.log_level)
    asyncio.run(run(settings))
