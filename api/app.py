"""The FastAPI application factory: `uvicorn api.app:create_app --factory`."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from api import metrics
from api.deps import open_pool, temporal_gateway
from api.edge import RequestLimitsMiddleware, SecurityHeadersMiddleware
from api.errors import install_error_handlers
from api.pages.error_pages import error_page
from api.routes import (
    admin_event_endpoints,
    admin_reconciliation,
    admin_system,
    admin_tier,
    admin_webhooks,
    admin_workflows,
    billing,
    codec,
    health,
    onboarding_links,
    password_links,
    portal,
    static,
    status_page,
    subscriptions,
    users,
)
from api.routes import checkout as checkout_routes
from api.routes import onboarding as onboarding_routes
from api.system import SystemMonitor
from api.webhooks import ingress as webhook_ingress
from api.webhooks.dispatch import Dispatcher
from api.webhooks.inbox_dispatcher import InboxDispatcher
from onramp import startup, tracing
from onramp.logging import configure_logging
from onramp.settings import ApiSettings, load_settings


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """Build the app; settings come from the environment unless given (tests).

    Built from the environment (uvicorn's factory call), it also configures JSON
    logging; a caller that passes settings keeps its own logging (e.g. pytest's).
    """
    if settings is None:
        settings = load_settings(ApiSettings)
        configure_logging(settings.log_level, log_format=settings.log_format)
        _wait_for_postgres(settings)
    docs_url, redoc_url = ("/docs", "/redoc") if settings.api_docs_enabled else (None, None)
    app = FastAPI(
        title="onramp",
        version="1",
        summary="Durable customer lifecycle for platforms that bill with Stripe",
        lifespan=_lifespan(settings),
        # The schema is the clients' contract and always served; the interactive pages
        # only where configured (`onramp dev`).
        docs_url=docs_url,
        redoc_url=redoc_url,
        # Starlette's trailing-slash redirect builds its Location from the request's Host
        # header; a path with a stray slash is a 404 instead.
        redirect_slashes=False,
    )
    app.state.settings = settings
    install_error_handlers(app, error_page=error_page)
    _add_middleware(app, docs_paths={path for path in (docs_url, redoc_url) if path})
    _include_routers(app, settings)
    if tracing.configure("onramp-api", settings.otel_exporter_otlp_endpoint):
        _instrument(app)
    return app


def _instrument(app: FastAPI) -> None:
    """A server span per request, named by its route template (probes and metrics
    scrapes are not traced; the ASGI send/receive sub-spans are noise)."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, excluded_urls="/metrics,/healthz,/readyz", exclude_spans=["receive", "send"]
    )


def _lifespan(settings: ApiSettings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Clients, pool and background tasks: built at start, stopped at the end."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await open_pool(settings)
        app.state.temporal = temporal_gateway(settings)
        # Stripe's events are acknowledged once stored; this process's dispatcher hands
        # them to Temporal afterwards (several API processes share the inbox safely).
        app.state.inbox_dispatcher = None
        if settings.webhook_dispatcher_enabled:
            app.state.inbox_dispatcher = _inbox_dispatcher(settings, app)
            app.state.inbox_dispatcher.start()
        monitor = SystemMonitor(settings, app.state.pool, app.state.temporal)
        monitor.start()
        try:
            yield
        finally:
            await monitor.stop()
            if app.state.inbox_dispatcher is not None:
                await app.state.inbox_dispatcher.stop()
            await app.state.pool.close()

    return lifespan


def _inbox_dispatcher(settings: ApiSettings, app: FastAPI) -> InboxDispatcher:
    return InboxDispatcher(
        Dispatcher(
            app.state.pool,
            app.state.temporal,
            task_queue=settings.temporal_task_queue,
            livemode=settings.stripe_livemode,
            via="dispatcher",
            lease_seconds=settings.webhook_dispatch_lease_seconds,
            retry_max_seconds=settings.webhook_dispatch_retry_max_seconds,
        ),
        poll_seconds=settings.webhook_dispatch_poll_seconds,
        max_in_flight=settings.webhook_dispatch_concurrency,
    )


def _add_middleware(app: FastAPI, *, docs_paths: set[str]) -> None:
    # The last added runs first: security headers on every answer, then timing (refused
    # requests are counted too), then the limits, before any route work.
    app.add_middleware(
        RequestLimitsMiddleware,
        # The webhook counts its own 1 MiB while streaming (with its rejection metrics).
        own_limit_paths={
            route.path for route in webhook_ingress.router.routes if isinstance(route, APIRoute)
        },
    )
    app.add_middleware(metrics.RequestMetricsMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, docs_paths=docs_paths)


def _include_routers(app: FastAPI, settings: ApiSettings) -> None:
    app.include_router(health.router)
    if settings.api_metrics_enabled:
        app.include_router(metrics.router)
    for router in (
        admin_webhooks.router,
        users.router,
        onboarding_routes.router,
        onboarding_links.router,
        subscriptions.router,
        admin_tier.router,
        checkout_routes.router,
        status_page.router,
        portal.router,
        password_links.router,
        billing.router,
        static.router,
        admin_workflows.router,
        admin_system.router,
        admin_reconciliation.router,
        admin_event_endpoints.router,
        codec.router,
        webhook_ingress.router,
    ):
        app.include_router(router)


def _wait_for_postgres(settings: ApiSettings) -> None:
    """Before uvicorn starts the app: Postgres reachable, or one line and exit(1).

    Checked here rather than in the lifespan, where a failure ends in uvicorn's
    traceback. Temporal is not waited for: the API connects to it lazily and serves
    what needs only Postgres (status reads, the webhook inbox) while it is away.
    uvicorn calls the factory inside its event loop, hence the check's own thread.
    """
    check = startup.check_postgres(
        settings.database_url.get_secret_value(), settings.startup_wait_seconds
    )
    with ThreadPoolExecutor(max_workers=1) as executor:
        try:
            executor.submit(asyncio.run, check).result()
        except startup.StartupFailed as failure:
            print(f"onramp api: {failure}", file=sys.stderr, flush=True)  # noqa: T201
            raise SystemExit(1) from None
