"""The FastAPI application factory: `uvicorn api.app:create_app --factory`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from api import metrics
from api.errors import install_error_handlers
from api.routes import (
    admin_system,
    admin_tier,
    admin_webhooks,
    admin_workflows,
    health,
    portal,
    subscriptions,
    users,
)
from api.routes import checkout as checkout_routes
from api.routes import onboarding as onboarding_routes
from api.system import SystemMonitor
from api.temporal_gateway import TemporalGateway
from api.webhooks import ingress as webhook_ingress
from api.webhooks.dispatch import Dispatcher, InboxDispatcher
from onramp.db import create_pool
from onramp.logging import configure_logging
from onramp.settings import ApiSettings, load_settings


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """Build the app; settings come from the environment unless given (tests).

    Built from the environment (uvicorn's factory call), it also configures JSON
    logging; a caller that passes settings keeps its own logging (e.g. pytest's).
    """
    if settings is None:
        settings = load_settings(ApiSettings)
        configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await create_pool(settings.database_url.get_secret_value())
        app.state.temporal = TemporalGateway(
            settings.temporal_address,
            settings.temporal_namespace,
            timedelta(seconds=settings.temporal_rpc_timeout_seconds),
        )
        # Stripe's events are acknowledged once stored; this process's dispatcher hands
        # them to Temporal afterwards (several API processes share the inbox safely).
        app.state.inbox_dispatcher = None
        if settings.webhook_dispatcher_enabled:
            app.state.inbox_dispatcher = InboxDispatcher(
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

    app = FastAPI(
        title="onramp",
        version="1",
        summary="Durable customer lifecycle for platforms that bill with Stripe",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(metrics.RequestMetricsMiddleware)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(admin_webhooks.router)
    app.include_router(users.router)
    app.include_router(onboarding_routes.router)
    app.include_router(subscriptions.router)
    app.include_router(admin_tier.router)
    app.include_router(checkout_routes.router)
    app.include_router(portal.router)
    app.include_router(admin_workflows.router)
    app.include_router(admin_system.router)
    app.include_router(webhook_ingress.router)
    return app
