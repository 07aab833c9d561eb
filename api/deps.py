"""Dependencies handed to routes: settings, the Postgres pool, Temporal.

All of them are built once in the app's lifespan (with `open_pool` and
`temporal_gateway` here) and stored on `app.state`. The
functions are `async` although they do not await: FastAPI runs a plain `def` dependency
in its thread pool, a thread hop per dependency per request for a dictionary lookup.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from api.temporal_gateway import TemporalGateway
from onramp.db import PoolLimits, create_pool
from onramp.settings import ApiSettings


async def open_pool(settings: ApiSettings) -> asyncpg.Pool:
    """The API's pool: every wait on Postgres bounded, so a hung database answers 503
    (`database_unavailable`, api/errors.py) within seconds instead of holding requests."""
    return await create_pool(
        settings.database_url.get_secret_value(),
        limits=PoolLimits.for_requests(
            statement=settings.database_statement_timeout_seconds,
            acquire=settings.database_acquire_timeout_seconds,
        ),
    )


def temporal_gateway(settings: ApiSettings) -> TemporalGateway:
    return TemporalGateway(
        settings.temporal_address,
        settings.temporal_namespace,
        timedelta(seconds=settings.temporal_rpc_timeout_seconds),
        settings.onramp_payload_keys,
    )


async def _settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


async def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


async def _temporal(request: Request) -> TemporalGateway:
    gateway: TemporalGateway = request.app.state.temporal
    return gateway


Settings = Annotated[ApiSettings, Depends(_settings)]
Pool = Annotated[asyncpg.Pool, Depends(_pool)]
Temporal = Annotated[TemporalGateway, Depends(_temporal)]
