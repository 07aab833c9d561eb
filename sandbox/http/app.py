"""The Starlette application: `/v1/` (Stripe's API), `/_sandbox/` (control and hosted
pages), and the background tasks (webhook delivery, clock ticks, state file)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from sandbox.domain.config import Config
from sandbox.domain.errors import StripeError
from sandbox.domain.persistence import Persister
from sandbox.domain.runtime import Sandbox
from sandbox.domain.scheduler import run_due
from sandbox.http import control, pages
from sandbox.http.api import Api
from sandbox.http.webhook_transport import HttpxTransport

log = logging.getLogger("sandbox")

METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH"]


async def _tick(sb: Sandbox, interval: float) -> None:
    """Run due work as real time passes (sessions and links expire without a clock jump)."""
    while True:
        await asyncio.sleep(interval)
        try:
            async with sb.lock:
                run_due(sb, sb.clock.now())
        except Exception:
            log.exception("scheduled work failed")


async def _not_found(request: Request) -> Response:
    exc = StripeError(
        404,
        "invalid_request_error",
        f"Unrecognized request URL ({request.method}: {request.url.path}).",
    )
    return Response(json.dumps(exc.body()), 404, media_type="application/json")


def create_app(config: Config) -> Starlette:
    """The sandbox as an ASGI app; `app.state.sandbox` holds its state."""
    sb = Sandbox(config, HttpxTransport())
    persister = (
        Persister(sb, config.state_file, config.save_interval) if config.state_file else None
    )
    if persister is not None and persister.load():
        log.info("state restored from %s", config.state_file)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await sb.dispatcher.start()
        tasks = [asyncio.create_task(_tick(sb, config.tick_interval))]
        if persister is not None:
            tasks.append(asyncio.create_task(persister.run()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await sb.dispatcher.stop()
            if persister is not None:
                persister.save_now()

    api = Api(sb)
    app = Starlette(
        routes=[
            Route("/v1/{rest:path}", api.handle, methods=METHODS),
            Mount("/_sandbox/pages", routes=pages.routes(sb)),
            Mount("/_sandbox", routes=control.routes(sb)),
            Route("/{rest:path}", _not_found, methods=METHODS),
        ],
        lifespan=lifespan,
    )
    app.state.sandbox = sb
    return app
