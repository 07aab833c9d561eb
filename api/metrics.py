"""Prometheus metrics of the API: request latency by route template, the system gauges
operators alert on, and `/metrics`."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

REQUEST_SECONDS = Histogram(
    "onramp_api_request_seconds",
    "API request latency by method, route template and status",
    ["method", "route", "status"],
)

# Refreshed by `api.system.SystemMonitor`; 0 also while Temporal is unreachable. Alert on
# `max by (queue, type) (onramp_worker_pollers) == 0` (the poller that was never deployed).
WORKER_POLLERS = Gauge(
    "onramp_worker_pollers",
    "Worker pollers seen on a task queue in the last ~70 s, by task type",
    ["queue", "type"],
)

router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class RequestMetricsMiddleware:
    """Times every HTTP request; labels by route template so ids do not explode labels."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: dict[str, object]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])  # type: ignore[call-overload]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)  # type: ignore[arg-type]
        finally:
            # Routing stores the matched route in the scope; unknown paths have none.
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUEST_SECONDS.labels(scope["method"], str(route), str(status)).observe(
                time.perf_counter() - started
            )
