"""Hand stored events to their workflows, at most once in effect, and record what happened.

Stripe gets its 200 as soon as the event is stored (`ingress`); from then on the inbox
is the queue, drained by the :class:`InboxDispatcher` of every API process
(api/webhooks/inbox_dispatcher.py). For each claimed row, holding no lock and no pooled
connection, the :class:`Dispatcher` here checks livemode, routes it (short reads), makes
one Temporal call (api/webhooks/send.py) and writes the outcome if its lease still
holds. While Temporal is down a row is retried with capped backoff (`next_attempt_at`).

The Dispatcher is shared with `onramp webhooks replay`. Receivers also deduplicate by
event id, because a call that timed out may still have reached Temporal (the row then
stays `pending` and is sent again later).
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Literal

import asyncpg

from api.temporal_gateway import TemporalGateway
from api.webhooks.events import InvalidEvent, StripeEvent, decode_body, parse_event
from api.webhooks.outcomes import (
    Claim,
    DispatchResult,
    Planned,
    Via,
    event_result,
    report,
)
from api.webhooks.routing import Ignore, Orphan, SignalTarget, route_event
from api.webhooks.send import NotRunning, Permanent, Transient, send_event
from onramp.repositories import webhook_events as webhook_inbox

# Re-exported: the result type of every dispatch.
__all__ = ["Claim", "DispatchResult", "Dispatcher", "Planned"]


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
        planned = await self.prepare(Claim(row, lease_id))
        if isinstance(planned, DispatchResult):
            return planned
        return await self.deliver(planned)

    # --- the two halves of one dispatch -----------------------------------------------

    async def prepare(self, claim: Claim) -> DispatchResult | Planned:
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
                event_result(event, "ignored", "ignored", reason=reason, livemode_mismatch=True)
            )

        route = await route_event(event, self.pool)
        if isinstance(route, Ignore):
            await webhook_inbox.mark_settled(
                self.pool, event.id, "ignored", route.reason, lease_id=claim.lease_id
            )
            return self._report(event_result(event, "ignored", "ignored", reason=route.reason))
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
                event_result(
                    event, "orphaned", "orphaned", user_id=route.user_id, reason=route.reason
                )
            )
        return Planned(claim, event, route)

    async def deliver(self, planned: Planned, *, blocked_by: str | None = None) -> DispatchResult:
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
                event_result(
                    event,
                    "deferred",
                    "pending",
                    user_id=route.user_id,
                    workflow_id=route.workflow_id,
                    reason="the lease would end before Temporal answers",
                )
            )
        try:
            await send_event(
                self.gateway,
                route,
                event.to_signal(),
                task_queue=self.task_queue,
                budget=self.call_budget,
            )
        except NotRunning:
            return self._report(await self._orphan(claim, event, route))
        except Transient as error:
            return self._report(await self._fail(claim, event, route, str(error), permanent=False))
        except Permanent as error:
            return self._report(await self._fail(claim, event, route, str(error), permanent=True))
        await webhook_inbox.mark_dispatched(
            self.pool,
            event.id,
            lease_id=claim.lease_id,
            user_id=route.user_id,
            workflow_id=route.workflow_id,
        )
        return self._report(
            event_result(
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

    async def _fail(
        self,
        claim: Claim,
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
        return event_result(
            event,
            "failed" if permanent else "unavailable",
            status or claim.row.status,
            user_id=route.user_id,
            workflow_id=route.workflow_id,
            reason=error,
        )

    async def _orphan(
        self, claim: Claim, event: StripeEvent, route: SignalTarget
    ) -> DispatchResult:
        """The event's workflow has ended: nothing will take the event."""
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
        return event_result(
            event,
            "orphaned",
            "orphaned",
            user_id=route.user_id,
            workflow_id=route.workflow_id,
            reason=reason,
        )

    def _report(self, result: DispatchResult) -> DispatchResult:
        return report(result, self.via)
