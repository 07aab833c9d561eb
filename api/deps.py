"""Dependencies handed to routes: settings, the Postgres pool, Temporal.

All of them are built once in the app's lifespan and stored on `app.state`. The
functions are `async` although they do not await: FastAPI runs a plain `def` dependency
in its thread pool, a thread hop per dependency per request for a dictionary lookup.
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from api.temporal_gateway import TemporalGateway
from onramp.settings import ApiSettings


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
