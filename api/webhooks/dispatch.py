"""Hand stored events to their workflows, at most once in effect, and record what happened.

Stripe gets its 200 as soon as the event is stored (`ingress`); from then on the inbox
is the queue. :class:`InboxDispatcher` runs in every API process: woken by the ingress
(or by its poll), it claims due rows with a lease (`webhook_inbox.claim_due`, one short
statement), then for each row, holding no lock and no pooled connection: checks
livemode, routes it (short reads), makes one Temporal call and writes the outcome if its
lease still holds. While Temporal is down a row is retried with capped backoff
(`next_attempt_at`); the rows of one workflow are sent in the order they arrived, one
after the other, and the ones behind a row Temporal could not take wait for the next try.

:class:`Dispatcher` is the per-event part, shared with `onramp webhooks replay`.
Receivers also deduplicate by event id, because a call that timed out may still have
reached Temporal (the row then stays `pending` and is sent again later).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from api.temporal_gateway import TemporalGateway, TemporalUnavailable
from api.webhooks import metrics
from api.webhooks.events import InvalidEvent, StripeEvent, decode_body, parse_event
from api.webhooks.routing import Ignore, Orphan, SignalTarget, route_event
from onramp.logging import log_event
from onramp.repositories import webhook_events as webhook_inbox
from onramp.repositories.webhook_events import InboxRow, InboxStatus
from workflows import search_attributes
from workflows.contracts.common import STRIPE_EVENT_SIGNAL, StripeEventSignal

logger = logging.getLogger(__name__)

Outcome = Literal[
    "dispatched", "duplicate", "ignored", "orphaned", "failed", "unavailable", "busy", "deferred"
]

# Temporal did not answer (or not in time): the event stays `pending` and is retried.
_TRANSIENT = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.ABORTED,
        RPCStatusCode.CANCELLED,
    }
)


@dataclass(frozen=True)
class DispatchResult:
    event_id: str
    outcome: Outcome
    status: InboxStatus
    event_type: str | None = None
    livemode: bool | None = None
    user_id: str | None = None
    workflow_id: str | None = None
    reason: str | None = None
    livemode_mismatch: bool = False

    @property
    def settled(self) -> bool:
        """True when Stripe may stop retrying: the row is final."""
        return self.outcome in ("dispatched", "duplicate", "ignored", "orphaned")


class _Transient(Exception):
    pass


class _Permanent(Exception):
    pass


class _NotRunning(Exception):
    pass


@dataclass
class _Claim:
    """A row this process holds a lease on, and when the lease began (monotonic)."""

    row: InboxRow
    lease_id: uuid.UUID
    claimed_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class _Planned:
    """A routed event waiting for its Temporal call."""

    claim: _Claim
    event: StripeEvent
    target: SignalTarget


Via = Literal["dispatcher", "replay"]


class Dispatcher:
    """Dispatches claimed inbox rows through one Temporal gateway."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        gateway: TemporalGateway,
        *,
        task_queue: str,
        livemode: bool,
        via: Via,
        lease_seconds: float = 30.0,
        retry_initial_seconds: float = 1.0,
        retry_max_seconds: float = 10.0,
    ) -> None:
        self.pool = pool
        self.gateway = gateway
        self.task_queue = task_queue
        self.livemode = livemode
        self.via = via
        self.retry_initial_seconds = retry_initial_seconds
        self.retry_max_seconds = retry_max_seconds
        # One Temporal exchange (connect if needed, then one call with the client's own
        # bounded retries) may take this long before the event is left `pending`.
        self.call_budget = gateway.rpc_timeout + timedelta(seconds=2)
        # The lease outlasts a whole call, so no other dispatcher can take the row while
        # this one may still be talking to Temporal about it.
        self.lease_seconds = max(lease_seconds, 2 * self.call_budget.total_seconds() + 2)

    # --- replay (one row at a time, chosen by an operator) ----------------------------

    async def replay_one(
        self, event_id: str, statuses: list[Literal["pending", "failed"]]
    ) -> DispatchResult:
        """Claim one row whatever its backoff says and dispatch it."""
        lease_id = uuid.uuid4()
        row = await webhook_inbox.claim_event(
            self.pool, event_id, statuses, lease_id=lease_id, lease_seconds=self.lease_seconds
        )
        if row is None:
            stored = await webhook_inbox.get_event(self.pool, event_id)
            if stored is None:
                raise LookupError(f"event {event_id} is not in the inbox")
            if stored.is_final:
                result = DispatchResult(
                    event_id=event_id,
                    outcome="duplicate",
                    status=stored.status,
                    event_type=stored.type,
                    livemode=stored.livemode,
                    user_id=stored.user_id,
                    workflow_id=stored.target_workflow_id,
                    reason=stored.status_reason,
                )
            else:
                result = DispatchResult(
                    event_id=event_id,
                    outcome="busy",
                    status=stored.status,
                    event_type=stored.type,
                    reason="a dispatcher holds this event's lease right now",
                )
            self._report(result)
            return result
        planned = await self.prepare(_Claim(row, lease_id))
        if isinstance(planned, DispatchResult):
            return planned
        return await self.deliver(planned)

    # --- the two halves of one dispatch -----------------------------------------------

    async def prepare(self, claim: _Claim) -> DispatchResult | _Planned:
        """Parse, check livemode and route a claimed row. A row that will never reach a
        workflow is settled here (and reported); otherwise the plan of its call."""
        row = claim.row
        try:
            event = parse_event(decode_body(row.raw_body))
        except InvalidEvent as error:  # stored bodies were parsed once: never expected
            await webhook_inbox.record_failure(
                self.pool,
                row.event_id,
                str(error),
                lease_id=claim.lease_id,
                permanent=True,
                retry_in_seconds=0,
                user_id=None,
                workflow_id=None,
            )
            return self._report(
                DispatchResult(
                    event_id=row.event_id, outcome="failed", status="failed", reason=str(error)
                )
            )

        if event.livemode != self.livemode:
            reason = (
                f"livemode mismatch: a {'live' if event.livemode else 'test'} event at a "
                f"{'live' if self.livemode else 'test'}-mode service"
            )
            await webhook_inbox.mark_settled(
                self.pool, event.id, "ignored", reason, lease_id=claim.lease_id
            )
            return self._report(
                self._result(event, "ignored", "ignored", reason=reason, livemode_mismatch=True)
            )

        route = await route_event(event, self.pool)
        if isinstance(route, Ignore):
            await webhook_inbox.mark_settled(
                self.pool, event.id, "ignored", route.reason, lease_id=claim.lease_id
            )
            return self._report(self._result(event, "ignored", "ignored", reason=route.reason))
        if isinstance(route, Orphan):
            await webhook_inbox.mark_settled(
                self.pool,
                event.id,
                "orphaned",
                route.reason,
                lease_id=claim.lease_id,
                user_id=route.user_id,
            )
            return self._report(
                self._result(
                    event, "orphaned", "orphaned", user_id=route.user_id, reason=route.reason
                )
            )
        return _Planned(claim, event, route)

    async def deliver(self, planned: _Planned, *, blocked_by: str | None = None) -> DispatchResult:
        """Make the Temporal call of a planned row (unless `blocked_by` says an earlier
        event of the same workflow is still waiting) and record the outcome."""
        claim, event, route = planned.claim, planned.event, planned.target
        if blocked_by is not None:
            return self._report(await self._fail(claim, event, route, blocked_by, permanent=False))
        elapsed = time.monotonic() - claim.claimed_at
        if elapsed + self.call_budget.total_seconds() > self.lease_seconds - 1:
            # The lease could run out mid-call and another dispatcher take the row: hand
            # it back untouched instead (it is due again at once).
            await webhook_inbox.release_lease(self.pool, event.id, lease_id=claim.lease_id)
            return self._report(
                self._result(
                    event,
                    "deferred",
                    "pending",
                    user_id=route.user_id,
                    workflow_id=route.workflow_id,
                    reason="the lease would end before Temporal answers",
                )
            )
        try:
            await self._send(route, event.to_signal())
        except _NotRunning:
            reason = f"workflow {route.workflow_id} is not running"
            await webhook_inbox.mark_settled(
                self.pool,
                event.id,
                "orphaned",
                reason,
                lease_id=claim.lease_id,
                user_id=route.user_id,
                workflow_id=route.workflow_id,
            )
            return self._report(
                self._result(
                    event,
                    "orphaned",
                    "orphaned",
                    user_id=route.user_id,
                    workflow_id=route.workflow_id,
                    reason=reason,
                )
            )
        except _Transient as error:
            return self._report(await self._fail(claim, event, route, str(error), permanent=False))
        except _Permanent as error:
            return self._report(await self._fail(claim, event, route, str(error), permanent=True))
        await webhook_inbox.mark_dispatched(
            self.pool,
            event.id,
            lease_id=claim.lease_id,
            user_id=route.user_id,
            workflow_id=route.workflow_id,
        )
        return self._report(
            self._result(
                event,
                "dispatched",
                "dispatched",
                user_id=route.user_id,
                workflow_id=route.workflow_id,
            )
        )

    def retry_delay(self, attempts: int) -> float:
        """Doubling from the initial delay, capped: Temporal back means events flow
        again within the cap."""
        exponent = min(max(attempts - 1, 0), 16)
        return float(min(self.retry_max_seconds, self.retry_initial_seconds * 2**exponent))

    async def _send(self, target: SignalTarget, signal: StripeEventSignal) -> None:
        """One Temporal call; errors become _NotRunning, _Transient or _Permanent."""
        method = "signal" if target.start is None else "signal_with_start"
        started = time.perf_counter()
        result = "ok"
        try:
            async with asyncio.timeout(self.call_budget.total_seconds()):
                client = await self.gateway.client()
                await self._call(client, target, signal)
        except TemporalUnavailable as error:
            result = "unavailable"
            raise _Transient(str(error)) from error
        except TimeoutError as error:
            result = "unavailable"
            raise _Transient(
                f"Temporal did not answer within {self.call_budget.total_seconds():.1f} s"
            ) from error
        except RPCError as error:
            description = f"{error.status.name}: {error.message}"
            if error.status == RPCStatusCode.NOT_FOUND and target.start is None:
                result = "not_found"
                raise _NotRunning(description) from error
            if error.status in _TRANSIENT:
                result = "unavailable"
                raise _Transient(description) from error
            result = "error"
            raise _Permanent(description) from error
        finally:
            metrics.DISPATCH_SECONDS.labels(method, result).observe(time.perf_counter() - started)

    async def _call(self, client: Client, target: SignalTarget, signal: StripeEventSignal) -> None:
        timeout = self.gateway.rpc_timeout
        if target.start is None:
            handle = client.get_workflow_handle(target.workflow_id)
            await handle.signal(STRIPE_EVENT_SIGNAL, signal, rpc_timeout=timeout)
            return
        await client.start_workflow(
            target.start.workflow,
            target.start.input,
            id=target.workflow_id,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=STRIPE_EVENT_SIGNAL,
            start_signal_args=[signal],
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(search_attributes.USER_ID, target.user_id)]
            ),
            rpc_timeout=timeout,
        )

    async def _fail(
        self,
        claim: _Claim,
        event: StripeEvent,
        route: SignalTarget,
        error: str,
        *,
        permanent: bool,
    ) -> DispatchResult:
        status = await webhook_inbox.record_failure(
            self.pool,
            event.id,
            error,
            lease_id=claim.lease_id,
            permanent=permanent,
            retry_in_seconds=self.retry_delay(claim.row.attempts),
            user_id=route.user_id,
            workflow_id=route.workflow_id,
        )
        return self._result(
            event,
            "failed" if permanent else "unavailable",
            status or claim.row.status,
            user_id=route.user_id,
            workflow_id=route.workflow_id,
            reason=error,
        )

    def _result(
        self,
        event: StripeEvent,
        outcome: Outcome,
        status: InboxStatus,
        *,
        user_id: str | None = None,
        workflow_id: str | None = None,
        reason: str | None = None,
        livemode_mismatch: bool = False,
    ) -> DispatchResult:
        return DispatchResult(
            event_id=event.id,
            outcome=outcome,
            status=status,
            event_type=event.type,
            livemode=event.livemode,
            user_id=user_id,
            workflow_id=workflow_id,
            reason=reason,
            livemode_mismatch=livemode_mismatch,
        )

    def _report(self, result: DispatchResult) -> DispatchResult:
        """One log line and one metric per dispatched (or settled) row."""
        fields = {
            "event_id": result.event_id,
            "type": result.event_type,
            "livemode": result.livemode,
            "user_id": result.user_id,
            "workflow_id": result.workflow_id,
            "status": result.status,
            "outcome": result.outcome,
            "reason": result.reason,
            "via": self.via,
        }
        metrics.WEBHOOK_EVENTS.labels(result.event_type or "unknown", result.outcome).inc()
        if result.livemode_mismatch:
            metrics.WEBHOOK_REJECTIONS.labels("livemode_mismatch").inc()
            # Loud: a test/live mix-up once stranded paid customers (SPEC 4).
            log_event(logger, "WEBHOOK_REJECTED", logging.ERROR, **fields)
        elif result.settled:
            level = logging.WARNING if result.outcome == "orphaned" else logging.INFO
            log_event(logger, "WEBHOOK_PROCESSED_OK", level, **fields)
        elif result.outcome == "deferred":
            log_event(logger, "WEBHOOK_DISPATCH_DEFERRED", logging.INFO, **fields)
        else:
            log_event(logger, "WEBHOOK_PROCESSING_FAILED", logging.ERROR, **fields)
        return result


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
            planned = await self.dispatcher.prepare(_Claim(row, lease_id))
            if isinstance(planned, _Planned):
                self._chain(planned)
        return len(rows)

    async def drain(self) -> None:
        """Wait for the calls in flight (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*set(self._tasks), return_exceptions=True)

    def _chain(self, planned: _Planned) -> None:
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
