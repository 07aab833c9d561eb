"""The background loop of every API process that hands the inbox to Temporal.

Woken by the ingress (or by its poll), it claims due rows with a lease
(`webhook_inbox.claim_due`, one short statement) and hands each to the `Dispatcher`
(api/webhooks/dispatch.py), holding no lock and no pooled connection; the rows of one
workflow are sent in the order they arrived, one after the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime

from api.webhooks import metrics
from api.webhooks.dispatch import Dispatcher
from api.webhooks.outcomes import Claim, DispatchResult, Planned
from onramp.logging import log_event
from onramp.repositories import webhook_events as webhook_inbox

logger = logging.getLogger(__name__)


class InboxDispatcher:
    """The background loop of one API process: claim due rows, dispatch, repeat.

    Safe beside other API processes (leases with `SKIP LOCKED`). Woken at once by
    :meth:`wake` (the ingress calls it after storing an event) and otherwise every
    `poll_seconds`, which also picks up rows whose backoff ended, rows another
    process stored, and rows whose dispatcher died.
    """

    # While deliveries keep arriving (one within BUSY_WINDOW_SECONDS), the dispatcher
    # sends one event at a time, at most one every BUSY_CLAIM_INTERVAL_SECONDS:
    # answering Stripe comes first, the burst is dispatched at full concurrency as soon
    # as it ends. Once the oldest waiting event is BUSY_MAX_LAG_SECONDS old, it stops
    # yielding, so a long busy stretch can never starve dispatch.
    BUSY_WINDOW_SECONDS = 0.25
    BUSY_CLAIM_INTERVAL_SECONDS = 0.25
    BUSY_MAX_LAG_SECONDS = 20.0

    def __init__(
        self, dispatcher: Dispatcher, *, poll_seconds: float = 1.0, max_in_flight: int = 8
    ) -> None:
        self.dispatcher = dispatcher
        self.poll_seconds = poll_seconds
        self.max_in_flight = max_in_flight
        self._last_arrival = float("-inf")
        self._last_claim = float("-inf")
        self._oldest_claimed_age = 0.0
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[DispatchResult]] = set()
        # The last task of each workflow id: the next row of that workflow waits for it.
        self._chains: dict[str, asyncio.Task[DispatchResult]] = {}
        self._loop_task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """A new event was stored in this process: look for due rows now."""
        previous, self._last_arrival = self._last_arrival, time.monotonic()
        if self._last_arrival - previous >= self.BUSY_WINDOW_SECONDS:
            self._wake.set()
        # Else a burst is on: the loop looks again within BUSY_CLAIM_INTERVAL_SECONDS by
        # itself, and waking it for every delivery would only cost the answers time.

    def _busy(self) -> bool:
        arriving = time.monotonic() - self._last_arrival < self.BUSY_WINDOW_SECONDS
        return arriving and self._oldest_claimed_age < self.BUSY_MAX_LAG_SECONDS

    def _capacity(self) -> int:
        in_flight = len(self._tasks)
        if self._busy():
            recently = time.monotonic() - self._last_claim < self.BUSY_CLAIM_INTERVAL_SECONDS
            return 0 if in_flight or recently else 1
        return self.max_in_flight - in_flight

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run(), name="webhook-inbox-dispatcher")

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Stop claiming; let calls in flight finish for a moment, then cancel them (their
        leases run out and another dispatcher takes the rows)."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        if self._tasks:
            _, unfinished = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)

    async def run_once(self) -> int:
        """Claim what is due now and start dispatching it; the number of rows claimed."""
        capacity = self._capacity()
        if capacity <= 0:
            return 0
        lease_id = uuid.uuid4()
        self._last_claim = time.monotonic()
        rows = await webhook_inbox.claim_due(
            self.dispatcher.pool,
            lease_id=lease_id,
            lease_seconds=self.dispatcher.lease_seconds,
            limit=capacity,
        )
        now = datetime.now(UTC)
        self._oldest_claimed_age = max(
            ((now - row.received_at).total_seconds() for row in rows), default=0.0
        )
        for row in rows:
            # A database error here leaves the rest leased: claimed again once it ends.
            planned = await self.dispatcher.prepare(Claim(row, lease_id))
            if isinstance(planned, Planned):
                self._chain(planned)
        return len(rows)

    async def drain(self) -> None:
        """Wait for the calls in flight (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*set(self._tasks), return_exceptions=True)

    def _chain(self, planned: Planned) -> None:
        workflow_id = planned.target.workflow_id
        previous = self._chains.get(workflow_id)

        async def deliver_in_order() -> DispatchResult:
            blocked_by = None
            if previous is not None and not previous.done():
                with contextlib.suppress(Exception):
                    earlier = await asyncio.shield(previous)
                    if earlier.outcome in ("unavailable", "deferred"):
                        blocked_by = (
                            f"an earlier event of {workflow_id} is waiting for Temporal "
                            f"({earlier.reason})"
                        )
            return await self.dispatcher.deliver(planned, blocked_by=blocked_by)

        task = asyncio.create_task(deliver_in_order())
        self._tasks.add(task)
        self._chains[workflow_id] = task

        def finished(done: asyncio.Task[DispatchResult]) -> None:
            self._tasks.discard(done)
            if self._chains.get(workflow_id) is done:
                del self._chains[workflow_id]
            if not done.cancelled() and done.exception() is not None:
                log_event(
                    logger,
                    "WEBHOOK_DISPATCHER_ERROR",
                    logging.ERROR,
                    event_id=planned.event.id,
                    error=type(done.exception()).__name__,
                )
            elif not done.cancelled() and done.result().outcome == "dispatched":
                lag = datetime.now(UTC) - planned.claim.row.created
                metrics.WEBHOOK_LAG.observe(max(lag.total_seconds(), 0.0))
            self._wake.set()  # capacity freed: claim more

        task.add_done_callback(finished)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                claimed = await self.run_once()
            except Exception as error:  # Postgres away: keep the loop, try again later
                log_event(
                    logger,
                    "WEBHOOK_DISPATCHER_ERROR",
                    logging.WARNING,
                    error=f"{type(error).__name__}: {error}"[:300],
                )
                claimed = 0
                await asyncio.sleep(self.poll_seconds)
            if claimed and self._capacity() > 0:
                continue  # more may be due
            # Woken by a new event or a finished call; a burst that ends with calls still
            # in flight is picked up by the poll, at full concurrency again.
            timeout = self.poll_seconds
            if self._tasks or time.monotonic() - self._last_arrival < self.BUSY_WINDOW_SECONDS:
                timeout = min(timeout, self.BUSY_CLAIM_INTERVAL_SECONDS)
            # `asyncio.timeout`, not `wait_for`, which on Python 3.11 can swallow a stop
            # that arrives as the wake-up does.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
