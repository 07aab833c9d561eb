"""The worker's metrics: every step timed and its failures counted (an activity
interceptor), served with prometheus_client at `WORKER_METRICS_ADDRESS`."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from prometheus_client import start_http_server
from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from activities.metrics import STEP_DURATION, STEP_FAILURES
from onramp.logging import log_event

logger = logging.getLogger(__name__)


class StepMetricsInterceptor(Interceptor):
    """Times each attempt of every activity (local ones included) by workflow and step."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _StepMetrics(next)


class _StepMetrics(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        labels = (info.workflow_type or "none", info.activity_type)
        started = time.perf_counter()
        try:
            return await super().execute_activity(input)
        except asyncio.CancelledError:
            # A worker stopping or a cancelled workflow: not the step's failure.
            raise
        except BaseException:
            STEP_FAILURES.labels(*labels).inc()
            raise
        finally:
            STEP_DURATION.labels(*labels).observe(time.perf_counter() - started)


class MetricsServer:
    """prometheus_client's HTTP server on `host:port`, stopped with the worker."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._server: Any = None

    def start(self) -> bool:
        """Serve `/metrics`; False (and a warning) when the address cannot be bound,
        e.g. a second worker on one host with the default address: the worker runs on."""
        host, _, port = self.address.rpartition(":")
        try:
            self._server, _ = start_http_server(int(port), addr=host.strip("[]"))
        except OSError as error:
            log_event(
                logger, "WORKER_METRICS_UNAVAILABLE", logging.WARNING,
                address=self.address, error=str(error),
            )  # fmt: skip
            return False
        log_event(logger, "WORKER_METRICS_SERVING", address=self.address)
        return True

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
