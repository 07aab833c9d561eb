"""The asyncpg pool both processes use."""

from __future__ import annotations

import asyncpg

# Errors another attempt cannot fix: data the database refuses (a constraint, a bad
# value, or a trigger that raises). Activities turn them into non-retryable failures.
PERMANENT_DB_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.DataError,
    asyncpg.exceptions.RaiseError,
)

# Postgres away for a moment (restarting, refusing connections, the socket gone, a
# connection dropped mid-query, the pool's connect timeout): a later try can succeed.
# The API answers these 503 with Retry-After, never 500.
DATABASE_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # starting up, admin or crash shutdown
    asyncpg.TooManyConnectionsError,
    OSError,
    TimeoutError,
)


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections fail fast instead of hanging when Postgres is away."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        timeout=10,
        command_timeout=30,
    )
    if pool is None:  # pragma: no cover - asyncpg types the result as optional
        raise RuntimeError("asyncpg returned no pool")
    return pool
