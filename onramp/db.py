"""The asyncpg pool both processes use."""

from __future__ import annotations

import asyncpg


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
