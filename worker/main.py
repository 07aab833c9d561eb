"""Run the onramp worker until SIGTERM/SIGINT, then shut down gracefully.

On a signal the worker stops polling, lets in-flight activities finish for up to
`WORKER_GRACEFUL_SHUTDOWN_SECONDS` (then cancels them, and Temporal retries them
elsewhere), and exits.

A local activity (the Postgres-only steps and the welcome email, workflows/local_steps.py)
cannot be abandoned by a graceful stop: the SDK keeps retrying it until it finishes, so
a stop while Postgres or SMTP is unreachable, or a row is locked, would wait for as long
as that lasts. The stop is therefore bounded: `LOCAL_STEP_MARGIN` after the grace
period, the process exits as if it had been killed (`WORKER_STOP_FORCED`). Nothing is
lost: the server hands the open workflow tasks to another worker once they time out,
and the unfinished steps run again there — every step is idempotent, which the chaos
run (SIGKILLs) shows.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from datetime import timedelta

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from onramp import startup, tracing
from onramp.db import create_pool
from onramp.logging import configure_logging, log_event
from onramp.settings import WorkerSettings, load_settings
from onramp.temporal import connect_temporal
from worker.build import WorkerDependencies, build_worker
from worker.metrics import MetricsServer
from worker.reconcile import install_reconcile_schedule

logger = logging.getLogger("worker")

# A database step's start-to-close timeout (policies.DATABASE): a step that was merely
# slow finishes within it; one still running after it is waiting on Postgres. An email
# send still running then is cut off and sent again by the next worker, which its outbox
# row and stable Message-ID make recognisable.
LOCAL_STEP_MARGIN = timedelta(seconds=15)
EXIT_STOP_FORCED = 3


def observability(settings: WorkerSettings) -> tuple[Runtime | None, MetricsServer | None]:
    """Tracing (when configured), onramp's metrics server, and the SDK runtime's own
    Prometheus endpoint when one is asked for (a separate address)."""
    tracing.configure("onramp-worker", settings.otel_exporter_otlp_endpoint)
    runtime = None
    if settings.worker_sdk_metrics_address:
        runtime = Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(bind_address=settings.worker_sdk_metrics_address)
            )
        )
    metrics_server = None
    if settings.worker_metrics_address:
        metrics_server = MetricsServer(settings.worker_metrics_address)
        metrics_server.start()
    return runtime, metrics_server


async def run(settings: WorkerSettings) -> None:
    runtime, metrics_server = observability(settings)
    # Unreachable at start: retried for STARTUP_WAIT_SECONDS, then one line (main()).
    client = await startup.reach(
        "Temporal",
        "TEMPORAL_ADDRESS",
        settings.temporal_address,
        lambda: connect_temporal(
            settings.temporal_address,
            settings.temporal_namespace,
            runtime=runtime,
            payload_keys=settings.onramp_payload_keys,
        ),
        settings.startup_wait_seconds,
    )
    dsn = settings.database_url.get_secret_value()
    pool = await startup.reach(
        "Postgres",
        "DATABASE_URL",
        startup.postgres_address(dsn),
        lambda: create_pool(dsn),
        settings.startup_wait_seconds,
    )
    dependencies = WorkerDependencies.build(settings, pool)
    await install_schedule(client, settings)
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
            grace = timedelta(seconds=settings.worker_graceful_shutdown_seconds)
            await stop_within(worker, grace + LOCAL_STEP_MARGIN)
    finally:
        await pool.close()
        if metrics_server is not None:
            metrics_server.stop()
        tracing.shutdown()
    log_event(logger, "WORKER_STOPPED", task_queue=settings.temporal_task_queue)


async def install_schedule(client: Client, settings: WorkerSettings) -> None:
    """The `reconcile` Schedule as the settings say; a failure is logged, not fatal (the
    next worker start tries again, and `onramp reconcile` runs it by hand meanwhile)."""
    try:
        state = await install_reconcile_schedule(
            client, settings.temporal_task_queue, settings.reconcile_interval_seconds
        )
    except Exception as error:  # the worker's own work matters more than the schedule
        log_event(
            logger, "RECONCILE_SCHEDULE_FAILED", logging.WARNING,
            error=f"{type(error).__name__}: {error}"[:300],
        )  # fmt: skip
        return
    log_event(
        logger, "RECONCILE_SCHEDULE", state=state,
        interval_seconds=settings.reconcile_interval_seconds,
    )  # fmt: skip


async def stop_within(worker: Worker, deadline: timedelta) -> None:
    """Shut the worker down; past `deadline`, exit the process at once (see above)."""
    try:
        await asyncio.wait_for(asyncio.shield(worker.shutdown()), deadline.total_seconds())
    except TimeoutError:
        log_event(
            logger,
            "WORKER_STOP_FORCED",
            logging.WARNING,
            seconds=deadline.total_seconds(),
            reason="a local step is still running: Postgres or SMTP unreachable, or a row locked",
        )
        logging.shutdown()
        os._exit(EXIT_STOP_FORCED)


def main() -> None:
    settings = load_settings(WorkerSettings)
    configure_logging(settings.log_level, log_format=settings.log_format)
    try:
        asyncio.run(run(settings))
    except startup.StartupFailed as failure:
        print(f"onramp worker: {failure}", file=sys.stderr, flush=True)  # noqa: T201
        logging.shutdown()
        # Not SystemExit: after a failed Temporal connect the SDK's Rust runtime threads
        # may still be alive, and interpreter finalization racing them aborts the process
        # ("PyGILState_Release ... must be current", SIGABRT) instead of exiting with 1.
        os._exit(1)
