"""The FastAPI application factory: `uvicorn api.app:create_app --factory`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import metrics
from api.deps import open_pool, temporal_gateway
from api.errors import install_error_handlers
from api.routes import (
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
from api.webhooks import ingress as webhook_ingress
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
        app.state.pool = await open_pool(settings)
        app.state.temporal = temporal_gateway(settings)
        try:
            yield
        finally:
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
    app.include_router(webhook_ingress.router)
    return app
