"""Reaching Postgres and Temporal at start: retry for a while, then one clear line.

A process that starts before its database or Temporal (a container started in any
order, a database restarting) retries for `STARTUP_WAIT_SECONDS` (default 30), logging
`STARTUP_WAITING` with the setting and the address; if the service is still unreachable
then, it raises :class:`StartupFailed`, whose message is the one line the process prints
before it exits with status 1 (no traceback). The address never includes a password.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

import asyncpg

from onramp.logging import log_event

logger = logging.getLogger(__name__)

T = TypeVar("T")

ATTEMPT_TIMEOUT_SECONDS = 5.0
_FIRST_PAUSE_SECONDS = 0.5
_LONGEST_PAUSE_SECONDS = 5.0


class StartupFailed(Exception):
    """A service the process needs stayed unreachable for the whole start-up wait."""


def postgres_address(dsn: str) -> str:
    """`host:port` (or the socket directory) of a postgresql:// DSN, without credentials."""
    parts = urlsplit(dsn)
    query_host = parse_qs(parts.query).get("host", [None])[0]
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432
    host = parts.hostname or query_host or "localhost"
    return f"{host}:{port}"


def _reason(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def reach(
    what: str,
    variable: str,
    address: str,
    attempt: Callable[[], Awaitable[T]],
    wait_seconds: float,
) -> T:
    """`attempt()` (a connection, a pool, a Temporal client) retried within the wait."""
    deadline = time.monotonic() + wait_seconds
    pause = _FIRST_PAUSE_SECONDS
    attempts = 0
    while True:
        attempts += 1
        try:
            async with asyncio.timeout(ATTEMPT_TIMEOUT_SECONDS):
                return await attempt()
        except (OSError, TimeoutError, RuntimeError, asyncpg.PostgresError) as error:
            reason = _reason(error)
            if isinstance(error, asyncpg.InvalidPasswordError | asyncpg.InvalidCatalogNameError):
                # Wrong credentials or database name: waiting will not fix the setting.
                raise StartupFailed(
                    f"{what} at {address} ({variable}) refused the connection: {reason}"
                ) from None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StartupFailed(
                    f"cannot reach {what} at {address} ({variable}) after {wait_seconds:g} s "
                    f"({attempts} attempts): {reason}"
                ) from None
            log_event(
                logger,
                "STARTUP_WAITING",
                logging.WARNING,
                service=what,
                setting=variable,
                address=address,
                attempt=attempts,
                error=reason,
                retry_for_seconds=round(remaining, 1),
            )
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, _LONGEST_PAUSE_SECONDS)


async def check_postgres(dsn: str, wait_seconds: float) -> None:
    """Return once Postgres accepts a connection; :class:`StartupFailed` after the wait."""

    async def connect_once() -> None:
        connection = await asyncpg.connect(dsn, timeout=ATTEMPT_TIMEOUT_SECONDS)
        await connection.close()

    await reach("Postgres", "DATABASE_URL", postgres_address(dsn), connect_once, wait_seconds)
