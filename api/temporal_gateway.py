"""The API's lazy, time-bounded access to Temporal.

The API must start, and answer `/readyz` with 503, while Temporal is down: it connects
on first use, remembers a working client, and bounds every call with a timeout.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client

from onramp.temporal import connect_temporal


class TemporalUnavailable(Exception):
    """Temporal could not be reached in time; the caller answers 503."""


class TemporalGateway:
    """Hands out one shared Temporal client, connecting lazily."""

    def __init__(self, address: str, namespace: str, rpc_timeout: timedelta) -> None:
        self.address = address
        self.namespace = namespace
        self.rpc_timeout = rpc_timeout
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(
                        connect_temporal(self.address, self.namespace, fail_fast=True),
                        timeout=self.rpc_timeout.total_seconds(),
                    )
                except (TimeoutError, RuntimeError, OSError) as error:
                    raise TemporalUnavailable(
                        f"cannot reach Temporal at {self.address}: {error}"
                    ) from error
            return self._client
