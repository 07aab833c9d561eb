"""The running sandbox: every component wired together, plus snapshot/restore/reset."""

from __future__ import annotations

import asyncio

from sandbox.domain.clock import Clock
from sandbox.domain.config import Config
from sandbox.domain.context import Ctx
from sandbox.domain.events import EventBus
from sandbox.domain.faults import Faults
from sandbox.domain.idempotency import IdempotencyStore
from sandbox.domain.jsontypes import Obj
from sandbox.domain.rate_limits import RateLimits
from sandbox.domain.stats import Stats
from sandbox.domain.store import Store
from sandbox.domain.webhooks import Dispatcher, Transport

STATE_VERSION = 1


class Sandbox:
    """State and services of one sandbox process."""

    def __init__(self, config: Config, transport: Transport) -> None:
        self.config = config
        self.clock = Clock()
        self.store = Store()
        self.idempotency = IdempotencyStore()
        self.faults = Faults()
        self.rate_limits = RateLimits(config.rate_limit, config.endpoint_rate_limit)
        self.stats = Stats()
        self.dispatcher = Dispatcher(config.retry, self.clock.now, self._delivered, transport)
        self.bus = EventBus(self.store, self.dispatcher, self.clock)
        # Handlers are synchronous, so each runs atomically on the event loop; the lock
        # keeps API calls, control calls and clock steps from interleaving where one of
        # them awaits between steps.
        self.lock = asyncio.Lock()
        # URLs made outside a request (clock steps) use this; requests use their Host.
        wildcard = config.host in ("0.0.0.0", "::", "")  # noqa: S104 (a comparison, not a bind)
        host = "127.0.0.1" if wildcard else config.host
        self.public_url = f"http://{host}:{config.port}"
        for endpoint in config.endpoints:
            self.dispatcher.add_endpoint(
                endpoint.url, endpoint.secret, connect=endpoint.connect, source="cli"
            )

    def _delivered(self, event_id: str) -> None:
        self.bus.delivered(event_id)

    def ctx(self, base_url: str = "") -> Ctx:
        """A context for work not caused by an API request (control API, clock)."""
        return Ctx(self, base_url=base_url)

    def snapshot(self) -> Obj:
        return {
            "version": STATE_VERSION,
            "clock_offset": self.clock.offset,
            "store": self.store.snapshot(),
            "idempotency": self.idempotency.snapshot(),
        }

    def restore(self, data: Obj) -> None:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported state file version {data.get('version')!r}")
        self.clock.offset = int(data.get("clock_offset", 0))
        self.store.restore(data["store"])
        self.idempotency.restore(data.get("idempotency", []))

    def reset(self, *, keep_endpoints: bool = True, keep_clock: bool = False) -> None:
        """Back to an empty sandbox (webhook endpoints kept unless asked)."""
        self.store.clear()
        self.store.dirty = True
        self.idempotency.clear()
        self.faults.clear()
        self.rate_limits.configure(self.config.rate_limit, self.config.endpoint_rate_limit)
        self.rate_limits.reset()
        self.stats.clear()
        self.dispatcher.reset(keep_endpoints=keep_endpoints)
        if not keep_clock:
            self.clock.reset()
