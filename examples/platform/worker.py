"""The example platform's Temporal worker: `provision_customer` and
`deprovision_customer` as onramp's docs/PROVISIONING_HOOK.md describes them.

onramp calls them by name on the platform's task queue (onramp's
`PROVISIONING_TASK_QUEUE`): plain `temporalio`, the SDK's default JSON converter, a dict
in and a dict out. A tenant is made once per idempotency key (its primary key), so a
retry after a timeout, a lost answer or a killed worker answers the same tenant.

Configuration (environment):
- `TEMPORAL_ADDRESS` (127.0.0.1:7233), `TEMPORAL_NAMESPACE` (default),
- `PLATFORM_TASK_QUEUE` (platform-provisioning): the queue onramp is told about,
- `PLATFORM_DB` (example-platform.db): the SQLite file of the platform's tables,
- `PLATFORM_PUBLIC_URL` (http://127.0.0.1:8100): the receiver app, which serves each
  tenant's dashboard at `/t/<tenant_id>`,
- `PLATFORM_SETUP_SECONDS` (2): how long making a tenant's database takes here (it
  heartbeats meanwhile),
- `PLATFORM_SOLD_OUT_TIERS` (none): comma-separated plans with no seats left; a request
  for one fails for good, which onramp undoes and reports as `provisioning.failed`.
- `ONRAMP_PAYLOAD_KEYS` (none): the keys onramp encrypts its payloads with, when it does
  (`codec.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from examples.platform.codec import data_converter_from_env
from examples.platform.store import Store

log = logging.getLogger("example-platform.worker")

# onramp's heartbeat timeout is 10 s: beat well inside it.
HEARTBEAT_SECONDS = 2.0


@dataclass
class PlatformConfig:
    """What this platform decides about provisioning."""

    public_url: str = "http://127.0.0.1:8100"
    setup_seconds: float = 2.0
    sold_out_tiers: set[str] = field(default_factory=set)

    @classmethod
    def from_env(cls) -> PlatformConfig:
        sold_out = os.environ.get("PLATFORM_SOLD_OUT_TIERS", "")
        return cls(
            public_url=os.environ.get("PLATFORM_PUBLIC_URL", cls.public_url).rstrip("/"),
            setup_seconds=float(os.environ.get("PLATFORM_SETUP_SECONDS", cls.setup_seconds)),
            sold_out_tiers={tier.strip() for tier in sold_out.split(",") if tier.strip()},
        )


class Platform:
    """The platform's side of onramp's provisioning hook."""

    def __init__(self, store: Store, config: PlatformConfig | None = None) -> None:
        self.store = store
        self.config = config or PlatformConfig()

    @activity.defn(name="provision_customer")
    async def provision_customer(self, request: dict[str, Any]) -> dict[str, Any]:
        """Make (or find) the tenant of `request["idempotency_key"]`, answer its id."""
        tenant = await asyncio.to_thread(
            self.store.reserve_tenant, request, f"tn_{uuid.uuid4().hex[:12]}"
        )
        if tenant["state"] != "ready":
            if request["tier"] in self.config.sold_out_tiers:
                # Permanent: retrying cannot make seats. onramp calls
                # deprovision_customer for this key, which removes the reserved tenant.
                raise ApplicationError(
                    f"no seats left for the {request['tier']} plan",
                    type="SeatsExhausted",
                    non_retryable=True,
                )
            async with _heartbeating():
                await self._make_tenant_database(tenant["tenant_id"])
            await asyncio.to_thread(
                self.store.set_tenant_state, request["idempotency_key"], "ready"
            )
        log.info("tenant %s provisioned for user %s", tenant["tenant_id"], request["user_id"])
        return {
            "tenant_id": tenant["tenant_id"],
            "dashboard_url": f"{self.config.public_url}/t/{tenant['tenant_id']}",
        }

    @activity.defn(name="deprovision_customer")
    async def deprovision_customer(self, request: dict[str, Any]) -> None:
        """Delete if present: an unknown key, or a second call, is a success."""
        await asyncio.to_thread(
            self.store.set_tenant_state, request["idempotency_key"], "deprovisioned"
        )
        log.info("tenant of %s deprovisioned", request["idempotency_key"])

    async def _make_tenant_database(self, tenant_id: str) -> None:
        # Stands in for the platform's real work (a schema, seats, an account); it must
        # be idempotent too, as a retry runs it again for the same tenant.
        await asyncio.sleep(self.config.setup_seconds)

    def worker(self, client: Client, task_queue: str, *, graceful_shutdown: float = 5.0) -> Worker:
        return Worker(
            client,
            task_queue=task_queue,
            activities=[self.provision_customer, self.deprovision_customer],
            graceful_shutdown_timeout=timedelta(seconds=graceful_shutdown),
        )


@contextlib.asynccontextmanager
async def _heartbeating() -> AsyncIterator[None]:
    """Heartbeat in the background: a worker that dies is noticed within onramp's
    heartbeat timeout, and the attempt is retried elsewhere with the same key."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    beating = asyncio.create_task(beat())
    try:
        yield
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating


async def run_worker() -> None:
    """Run until SIGINT/SIGTERM, configured from the environment."""
    address = os.environ.get("TEMPORAL_ADDRESS", "127.0.0.1:7233")
    namespace = os.environ.get("TEMPORAL_NAMESPACE", "default")
    task_queue = os.environ.get("PLATFORM_TASK_QUEUE", "platform-provisioning")
    store = Store(os.environ.get("PLATFORM_DB", "example-platform.db"))
    client = await Client.connect(
        address, namespace=namespace, data_converter=data_converter_from_env()
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Platform(store, PlatformConfig.from_env()).worker(client, task_queue):
        log.info("example platform worker polling %s on %s", task_queue, address)
        await stop.wait()
