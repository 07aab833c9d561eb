"""Webhook endpoints, Stripe-style signing and asynchronous delivery with retries.

The POST itself goes through a `Transport` the HTTP layer provides
(`sandbox.http.webhook_transport`), so this module decides what is sent, when, and
what an answer means, without doing network I/O itself.

Each endpoint has one worker that sends first attempts in event creation order; a failed
attempt (non-2xx or connection error) is retried on its own timer with a doubling
backoff, so one failing event does not hold back the others (as at Stripe).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sandbox.domain.jsontypes import Obj

log = logging.getLogger("sandbox.webhooks")


class Transport(Protocol):
    """Sends one webhook attempt."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str | None]:
        """The response's status, or None and why no response came."""
        ...


def sign(payload: str, secret: str, timestamp: int) -> str:
    """The `Stripe-Signature` header: `t=<unix>,v1=<hex hmac-sha256 of "t.payload">`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for failed deliveries: `initial` seconds doubling up to `maximum`."""

    initial: float = 0.5
    maximum: float = 30.0
    attempts: int = 8

    def delay(self, attempt: int) -> float:
        return float(min(self.initial * 2 ** (attempt - 1), self.maximum))


@dataclass
class Delivery:
    event_id: str
    event_type: str
    payload: str
    seq: int
    attempt: int = 1
    generation: int = 0
    released: bool = False  # let out of a hold: delivered even while holding goes on


@dataclass
class Endpoint:
    """A webhook endpoint; `connect` ones receive events about connected accounts only."""

    id: str
    url: str
    secret: str
    connect: bool
    enabled_events: list[str]
    source: str
    counts: Counter[str] = field(default_factory=Counter)
    queue: asyncio.Queue[Delivery] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None

    def wants(self, event_type: str, connect: bool) -> bool:
        if connect != self.connect:
            return False
        return "*" in self.enabled_events or event_type in self.enabled_events

    def describe(self) -> Obj:
        return {
            "id": self.id,
            "url": self.url,
            "connect": self.connect,
            "enabled_events": self.enabled_events,
            "source": self.source,
            "deliveries": {
                "succeeded": self.counts["succeeded"],
                "failed": self.counts["failed"],
                "queued": self.queue.qsize(),
            },
        }


class Dispatcher:
    """Delivers events to endpoints; can hold them and release them reordered."""

    def __init__(
        self,
        policy: RetryPolicy,
        sandbox_now: Callable[[], int],
        on_delivered: Callable[[str], None],
        transport: Transport,
    ) -> None:
        self.policy = policy
        self.transport = transport
        self.sandbox_now = sandbox_now
        self.on_delivered = on_delivered
        self.endpoints: list[Endpoint] = []
        self.held = False
        self.held_items: list[tuple[Endpoint, Delivery]] = []
        self.log: deque[Obj] = deque(maxlen=50_000)
        self.outcomes: Counter[str] = Counter()
        self.generation = 0
        self._seq = 0
        self._next_endpoint = 0
        self._opened = False
        self._running = False
        self._retries: set[asyncio.Task[None]] = set()

    # lifecycle

    async def start(self) -> None:
        await self.transport.open()
        self._opened = True
        self._running = True
        for endpoint in self.endpoints:
            self._start_worker(endpoint)

    async def stop(self) -> None:
        self._running = False
        tasks = [e.task for e in self.endpoints if e.task] + list(self._retries)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._opened:
            await self.transport.close()

    def _start_worker(self, endpoint: Endpoint) -> None:
        if self._running and endpoint.task is None:
            endpoint.task = asyncio.create_task(self._worker(endpoint))

    # endpoints

    def add_endpoint(
        self,
        url: str,
        secret: str,
        *,
        connect: bool = False,
        enabled_events: list[str] | None = None,
        source: str = "api",
    ) -> Endpoint:
        self._next_endpoint += 1
        endpoint = Endpoint(
            id=f"we_sandbox_{self._next_endpoint}",
            url=url,
            secret=secret,
            connect=connect,
            enabled_events=list(enabled_events or ["*"]),
            source=source,
        )
        self.endpoints.append(endpoint)
        self._start_worker(endpoint)
        return endpoint

    def remove_endpoint(self, url: str, connect: bool | None = None) -> int:
        removed = [
            e for e in self.endpoints if e.url == url and (connect is None or e.connect == connect)
        ]
        for endpoint in removed:
            self.endpoints.remove(endpoint)
            if endpoint.task is not None:
                endpoint.task.cancel()
        self.held_items = [(e, d) for e, d in self.held_items if e not in removed]
        return len(removed)

    # delivery

    def enqueue(self, event_id: str, event_type: str, payload: str, connect: bool) -> int:
        """Queue an event for every endpoint that wants it; returns how many."""
        targets = [e for e in self.endpoints if e.wants(event_type, connect)]
        self._seq += 1
        for endpoint in targets:
            delivery = Delivery(event_id, event_type, payload, self._seq, 1, self.generation)
            if self.held:
                self.held_items.append((endpoint, delivery))
            else:
                endpoint.queue.put_nowait(delivery)
        return len(targets)

    def resend(self, event_id: str, event_type: str, payload: str, connect: bool) -> int:
        return self.enqueue(event_id, event_type, payload, connect)

    def hold(self) -> None:
        self.held = True

    def release(
        self, order: str = "created", duplicates: int = 1, *, keep_holding: bool = False
    ) -> int:
        """Deliver everything held, in creation order or shuffled, each `duplicates` times;
        with `keep_holding`, events created from now on are held again (batch by batch)."""
        self.held = keep_holding
        items = sorted(self.held_items, key=lambda item: item[1].seq)
        self.held_items = []
        items = [item for item in items for _ in range(max(1, duplicates))]
        if order == "shuffled":
            random.shuffle(items)
        for endpoint, delivery in items:
            endpoint.queue.put_nowait(
                Delivery(
                    delivery.event_id,
                    delivery.event_type,
                    delivery.payload,
                    delivery.seq,
                    1,
                    self.generation,
                    released=True,
                )
            )
        return len(items)

    def reset(self, *, keep_endpoints: bool = True) -> None:
        """Forget queued, held and logged deliveries (and endpoints unless kept)."""
        self.generation += 1
        self.held = False
        self.held_items = []
        self.log.clear()
        self.outcomes.clear()
        for task in self._retries:
            task.cancel()
        for endpoint in self.endpoints:
            endpoint.counts.clear()
            while not endpoint.queue.empty():
                endpoint.queue.get_nowait()
        if not keep_endpoints:
            for endpoint in list(self.endpoints):
                self.remove_endpoint(endpoint.url)

    async def _worker(self, endpoint: Endpoint) -> None:
        while True:
            delivery = await endpoint.queue.get()
            if delivery.generation != self.generation:
                continue
            if self.held and not delivery.released:
                self.held_items.append((endpoint, delivery))
                continue
            await self._attempt(endpoint, delivery)

    async def _attempt(self, endpoint: Endpoint, delivery: Delivery) -> None:
        assert self._opened
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign(delivery.payload, endpoint.secret, timestamp),
        }
        started = time.perf_counter()
        status, error = await self.transport.post(endpoint.url, delivery.payload.encode(), headers)
        ok = status is not None and 200 <= status < 300
        outcome = "succeeded" if ok else "failed"
        if delivery.generation != self.generation:
            return
        endpoint.counts[outcome] += 1
        self.outcomes[outcome] += 1
        self.log.append(
            {
                "event": delivery.event_id,
                "type": delivery.event_type,
                "endpoint": endpoint.url,
                "endpoint_id": endpoint.id,
                "connect": endpoint.connect,
                "attempt": delivery.attempt,
                "status": status,
                "error": error,
                "outcome": outcome,
                "at": time.time(),
                "sandbox_time": self.sandbox_now(),
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            }
        )
        if ok:
            self.on_delivered(delivery.event_id)
        elif delivery.attempt < self.policy.attempts:
            retry = Delivery(
                delivery.event_id,
                delivery.event_type,
                delivery.payload,
                delivery.seq,
                delivery.attempt + 1,
                delivery.generation,
            )
            task = asyncio.create_task(
                self._retry(endpoint, retry, self.policy.delay(delivery.attempt))
            )
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)

    async def _retry(self, endpoint: Endpoint, delivery: Delivery, delay: float) -> None:
        await asyncio.sleep(delay)
        if delivery.generation != self.generation or endpoint not in self.endpoints:
            return
        if self.held:
            self.held_items.append((endpoint, delivery))
            return
        await self._attempt(endpoint, delivery)
