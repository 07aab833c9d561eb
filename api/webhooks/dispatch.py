"""Hand one stored event to its workflow, at most once in effect, and record what happened.

:meth:`Dispatcher.process` claims the inbox row (`SELECT … FOR UPDATE` in a
transaction), returns at once if the row is already final, checks livemode, routes the
event, makes one Temporal call and writes the outcome, all before it releases the row.
A second delivery of the same event waits for the lock and then finds the row final.
Receivers also deduplicate by event id, because a call that timed out may still have
reached Temporal (the row then stays `pending` and is sent again later).

Used by the HTTP ingress and by the replay command alike.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import asyncpg
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from api.temporal_gateway import TemporalGateway, TemporalUnavailable
from api.webhooks import metrics
from api.webhooks.events import InvalidEvent, StripeEvent, decode_body, parse_event
from api.webhooks.routing import Ignore, Orphan, SignalTarget, route_event
from onramp import webhook_inbox
from onramp.logging import log_event
from onramp.webhook_inbox import Connection, InboxStatus
from workflows import search_attributes
from workflows.contracts import STRIPE_EVENT_SIGNAL, StripeEventSignal

logger = logging.getLogger(__name__)

Outcome = Literal["dispatched", "duplicate", "ignored", "orphaned", "failed", "unavailable", "busy"]

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


class Dispatcher:
    """Dispatches stored events through one Temporal gateway."""

    def __init__(
        self,
        gateway: TemporalGateway,
        *,
        task_queue: str,
        livemode: bool,
        via: Literal["ingress", "replay"],
    ) -> None:
        self.gateway = gateway
        self.task_queue = task_queue
        self.livemode = livemode
        self.via = via
        # One Temporal exchange (connect if needed, then one call with the client's own
        # bounded retries) may take this long before the event is left `pending`.
        self.call_budget = gateway.rpc_timeout + timedelta(seconds=2)
        # A second delivery waits this long for the first to finish with the row.
        self.lock_wait = self.call_budget + timedelta(seconds=2)

    async def process(self, connection: Connection, event_id: str) -> DispatchResult:
        """Claim the row, dispatch it unless it is final, record and return the outcome."""
        try:
            async with connection.transaction():
                lock_ms = int(self.lock_wait.total_seconds() * 1000)
                await connection.execute(f"SET LOCAL lock_timeout = {lock_ms}")
                row = await webhook_inbox.lock_event(connection, event_id)
                if row is None:
                    raise LookupError(f"event {event_id} is not in the inbox")
                if row.is_final:
                    result = DispatchResult(
                        event_id=event_id,
                        outcome="duplicate",
                        status=row.status,
                        event_type=row.type,
                        livemode=row.livemode,
                        user_id=row.user_id,
                        workflow_id=row.target_workflow_id,
                        reason=row.status_reason,
                    )
                else:
                    result = await self._dispatch_locked(connection, row)
        except asyncpg.LockNotAvailableError:
            result = DispatchResult(
                event_id=event_id,
                outcome="busy",
                status="pending",
                reason="another delivery of this event is being dispatched",
            )
        self._report(result)
        return result

    async def _dispatch_locked(
        self, connection: Connection, row: webhook_inbox.InboxRow
    ) -> DispatchResult:
        try:
            event = parse_event(decode_body(row.raw_body))
        except InvalidEvent as error:  # stored bodies were parsed once: never expected
            await webhook_inbox.record_failure(
                connection, row.event_id, str(error), permanent=True, user_id=None, workflow_id=None
            )
            return DispatchResult(
                event_id=row.event_id, outcome="failed", status="failed", reason=str(error)
            )

        if event.livemode != self.livemode:
            reason = (
                f"livemode mismatch: a {'live' if event.livemode else 'test'} event at a "
                f"{'live' if self.livemode else 'test'}-mode service"
            )
            await webhook_inbox.mark_settled(connection, event.id, "ignored", reason)
            return self._result(event, "ignored", "ignored", reason=reason, livemode_mismatch=True)

        route = await route_event(event, connection)
        if isinstance(route, Ignore):
            await webhook_inbox.mark_settled(connection, event.id, "ignored", route.reason)
            return self._result(event, "ignored", "ignored", reason=route.reason)
        if isinstance(route, Orphan):
            await webhook_inbox.mark_settled(
                connection, event.id, "orphaned", route.reason, user_id=route.user_id
            )
            return self._result(
                event, "orphaned", "orphaned", user_id=route.user_id, reason=route.reason
            )

        try:
            await self._send(route, event.to_signal())
        except _NotRunning:
            reason = f"workflow {route.workflow_id} is not running"
            await webhook_inbox.mark_settled(
                connection,
                event.id,
                "orphaned",
                reason,
                user_id=route.user_id,
                workflow_id=route.workflow_id,
                attempted=True,
            )
            return self._result(
                event,
                "orphaned",
                "orphaned",
                user_id=route.user_id,
                workflow_id=route.workflow_id,
                reason=reason,
            )
        except _Transient as error:
            return await self._fail(connection, event, route, str(error), permanent=False)
        except _Permanent as error:
            return await self._fail(connection, event, route, str(error), permanent=True)
        await webhook_inbox.mark_dispatched(
            connection, event.id, user_id=route.user_id, workflow_id=route.workflow_id
        )
        return self._result(
            event, "dispatched", "dispatched", user_id=route.user_id, workflow_id=route.workflow_id
        )

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
        connection: Connection,
        event: StripeEvent,
        route: SignalTarget,
        error: str,
        *,
        permanent: bool,
    ) -> DispatchResult:
        status = await webhook_inbox.record_failure(
            connection,
            event.id,
            error,
            permanent=permanent,
            user_id=route.user_id,
            workflow_id=route.workflow_id,
        )
        return self._result(
            event,
            "failed" if permanent else "unavailable",
            status,
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

    def _report(self, result: DispatchResult) -> None:
        """One log line and one metric per processed delivery."""
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
            return
        if result.settled:
            level = logging.WARNING if result.outcome == "orphaned" else logging.INFO
            log_event(logger, "WEBHOOK_PROCESSED_OK", level, **fields)
        else:
            log_event(logger, "WEBHOOK_PROCESSING_FAILED", logging.ERROR, **fields)
