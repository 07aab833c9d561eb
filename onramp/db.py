"""The asyncpg pool both processes use, with every wait on Postgres bounded.

A Postgres that hangs (stopped by SIGSTOP, a full disk, a network that drops packets)
accepts connections and queries and never answers. asyncpg bounds none of that by
default: taking a connection from the pool waits without limit, and giving one back
resets it with a round trip that waits without limit too (after a timed-out query it
first waits for the cancel request to reach the server). So the pool here bounds
connecting, taking a connection, each statement (on the server and on the client), and
giving a connection back; a connection that cannot be reset in time is closed instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# Errors another attempt cannot fix: data the database refuses (a constraint, a bad
# value, or a trigger that raises). Activities turn them into non-retryable failures.
PERMANENT_DB_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.DataError,
    asyncpg.exceptions.RaiseError,
)

# Postgres away for a moment (restarting, refusing connections, the socket gone, a
# connection dropped mid-query, the pool's connect timeout): a later try can succeed.
# A hung Postgres shows as a timeout: the client's (TimeoutError) or the server's
# `statement_timeout` (QueryCanceledError, an OperatorInterventionError).
# The API answers these 503 with Retry-After, never 500.
DATABASE_UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # starting up, shutdown, statement timeout
    asyncpg.TooManyConnectionsError,
    OSError,
    TimeoutError,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolLimits:
    """How long each wait on Postgres may last (seconds; None: no limit).

    - `connect`: opening a connection (TCP, TLS, authentication).
    - `acquire`: taking a connection from the pool, waiting for a free one or a new one.
    - `statement`: one statement, on the server (`statement_timeout`, so a statement
      stuck behind a lock is cancelled there and the connection stays usable); the
      client gives up a little later, for a server that does not answer at all.
    - `release`: giving a connection back (asyncpg resets it with a round trip); past
      it the connection is closed, and the request that used it is not failed for that.
    """

    connect: float = 10.0
    acquire: float | None = None
    statement: float | None = None
    command: float = 30.0
    release: float = 5.0

    @classmethod
    def for_requests(cls, statement: float, acquire: float) -> PoolLimits:
        """Limits of a pool that serves HTTP requests: every wait a few seconds at most."""
        return cls(
            connect=acquire,
            acquire=acquire,
            statement=statement,
            # The server's statement_timeout answers first when the server runs at all.
            command=statement + 0.5,
            release=min(1.0, acquire),
        )


# The worker's and the command line's pools: statements may be long (migrations,
# replays), a hung Postgres is bounded by the activity's own timeouts; but a connection
# that cannot be reset is still closed instead of hanging its caller.
DEFAULT_LIMITS = PoolLimits()


class BoundedPool(asyncpg.Pool):
    """An asyncpg pool whose acquire and release have default time limits.

    `Pool.fetchval` and friends call `acquire()` and `release()` without a timeout; the
    defaults set here make every use of the pool bounded, not only explicit acquires.
    """

    def __init__(self, *args: object, limits: PoolLimits, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._limits = limits

    def acquire(self, *, timeout: float | None = None) -> asyncpg.pool.PoolAcquireContext:
        return super().acquire(timeout=self._limits.acquire if timeout is None else timeout)

    async def release(
        self,
        connection: PoolConnectionProxy,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - asyncpg's signature, overridden
    ) -> None:
        try:
            await super().release(
                connection, timeout=self._limits.release if timeout is None else timeout
            )
        except DATABASE_UNAVAILABLE_ERRORS as error:
            # asyncpg has closed the connection (a new one replaces it); the statements
            # that ran on it have their outcome already, so the caller goes on.
            logger.warning("closed a pooled connection that could not be reset: %r", error)


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    limits: PoolLimits = DEFAULT_LIMITS,
) -> asyncpg.Pool:
    """A pool whose connections fail fast instead of hanging when Postgres is away."""
    server_settings: dict[str, str] = {}
    if limits.statement is not None:
        server_settings["statement_timeout"] = str(int(limits.statement * 1000))
    pool = BoundedPool(
        dsn,
        limits=limits,
        min_size=min_size,
        max_size=max_size,
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        timeout=limits.connect,
        command_timeout=limits.command,
        server_settings=server_settings,
    )
    await pool
    return pool
