"""The activities of event delivery: read what is new, deliver it, hand failures to lanes.

- `read_endpoint_events` (a database step of the dispatcher): the endpoint's events
  after the cursor, stopping before a sequence number that is missing (a transaction
  may still commit it) unless the dispatcher says it has settled; it also stores how
  far everything is settled, so a new dispatcher resumes there.
- `deliver_directly`: a batch of users' events, users side by side, each user's in
  order; what fails goes back to the dispatcher for a lane.
- `hand_over_events`: records the lanes as open and signals-with-start each; a repeat
  is harmless (a lane ignores what it already queued; delivery skips what the endpoint
  already got). `close_lanes` forgets the lanes that drained.
- `deliver_event`: one attempt of a lane.

Signing, sending and recording the attempt are `activities.event_sending`'s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import asyncpg
from pydantic import SecretStr
from temporalio import activity
from temporalio.common import WorkflowIDConflictPolicy

from activities.event_sending import Attempt, EventSender
from onramp.repositories import event_deliveries, event_endpoints, event_lanes, outbound_events
from onramp.repositories.outbound_events import OutboundEventRef
from workflows.contracts.event_delivery import (
    ENQUEUE_SIGNAL,
    EVENT_DELIVERY_WORKFLOW,
    Backlog,
    CloseLanesInput,
    DeliverInput,
    DeliverResult,
    DeliveryPolicy,
    DirectInput,
    DirectResult,
    EndpointEvents,
    EnqueueEvents,
    EventRef,
    HandOverInput,
    LaneHandOver,
    LaneInput,
    ReadEventsInput,
    event_delivery_workflow_id,
    lane_key,
)

ALL_TYPES = "*"
# Lanes signalled at once by one hand-over.
_HAND_OVER_CONCURRENCY = 16
# Users delivered at once by one direct delivery.
_DIRECT_CONCURRENCY = 16


class EventDeliveryActivities:
    def __init__(
        self,
        pool: asyncpg.Pool,
        token_secret: SecretStr,
        policy: DeliveryPolicy | None = None,
    ) -> None:
        self.pool = pool
        self.policy = policy or DeliveryPolicy()
        self.sender = EventSender(pool, token_secret)

    @activity.defn
    async def read_endpoint_events(self, request: ReadEventsInput) -> EndpointEvents:
        endpoint = await event_endpoints.get_endpoint(self.pool, request.endpoint_id)
        if endpoint is None:
            return EndpointEvents(exists=False, policy=self.policy)
        if request.replay is not None:
            return await self._replay_batch(request, endpoint.event_types)
        after = request.after_sequence
        lanes: dict[str, int] = {}
        if after is None:
            after = endpoint.dispatch_cursor
            lanes = await event_lanes.lanes_of(self.pool, request.endpoint_id)
        elif request.settled_through is not None:
            await event_endpoints.advance_cursor(
                self.pool, request.endpoint_id, request.settled_through
            )
        if endpoint.status == "paused":
            return EndpointEvents(
                exists=True, paused=True, cursor=after, lanes=lanes, policy=self.policy
            )
        limit = self.policy.batch_size
        rows = await outbound_events.events_after(self.pool, after, limit)
        settled = set(request.settled_gaps)
        missing = list(_missing(after, rows))
        gaps = [number for number in missing if number not in settled]
        blocked_at = gaps[0] if gaps else None
        taken = [row for row in rows if blocked_at is None or row.sequence < blocked_at]
        cursor = taken[-1].sequence if taken else after
        if blocked_at is not None:
            cursor = max(cursor, blocked_at - 1)
        late = await outbound_events.events_numbered(self.pool, request.skipped)
        return EndpointEvents(
            exists=True,
            events=[_ref(row) for row in taken if _wanted(row, endpoint.event_types)],
            cursor=cursor,
            gaps=gaps,
            more=blocked_at is None and len(rows) == limit,
            skipped=[number for number in missing if number in settled and number <= cursor],
            late_found=[row.sequence for row in late],
            late=[_ref(row) for row in late if _wanted(row, endpoint.event_types)],
            lanes=lanes,
            policy=self.policy,
        )

    async def _replay_batch(self, request: ReadEventsInput, types: list[str]) -> EndpointEvents:
        assert request.replay is not None
        limit = self.policy.batch_size
        rows = await outbound_events.events_between(
            self.pool, request.replay.first_sequence, request.replay.last_sequence, limit
        )
        return EndpointEvents(
            exists=True,
            events=[_ref(row) for row in rows if _wanted(row, types)],
            cursor=rows[-1].sequence if rows else request.replay.last_sequence,
            more=len(rows) == limit,
            policy=self.policy,
        )

    @activity.defn
    async def hand_over_events(self, request: HandOverInput) -> None:
        """Record the lanes as open, then signal-with-start each one. Lanes are
        independent, so the calls run side by side; one user's hand-overs go one after
        another, in order. A retry repeats them all: a lane adds nothing twice."""
        client = activity.client()
        task_queue = activity.info().task_queue
        await event_lanes.open_lanes(
            self.pool,
            request.endpoint_id,
            {lane_key(lane.user_id): lane.handover for lane in request.lanes},
        )
        calls = asyncio.Semaphore(_HAND_OVER_CONCURRENCY)

        async def hand_over(lanes: list[LaneHandOver]) -> None:
            async with calls:
                for lane in lanes:
                    await client.start_workflow(
                        EVENT_DELIVERY_WORKFLOW,
                        LaneInput(
                            endpoint_id=request.endpoint_id,
                            user_id=lane.user_id,
                            policy=request.policy,
                        ),
                        id=event_delivery_workflow_id(request.endpoint_id, lane.user_id),
                        task_queue=task_queue,
                        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                        start_signal=ENQUEUE_SIGNAL,
                        # The lane's message is the hand-over without the user (its id names it).
                        start_signal_args=[EnqueueEvents(**lane.model_dump(exclude={"user_id"}))],
                    )

        per_user: dict[str, list[LaneHandOver]] = {}
        for lane in request.lanes:
            per_user.setdefault(lane_key(lane.user_id), []).append(lane)
        async with asyncio.TaskGroup() as group:
            for lanes in per_user.values():
                group.create_task(hand_over(lanes))

    @activity.defn
    async def close_lanes(self, request: CloseLanesInput) -> None:
        await event_lanes.close_lanes(self.pool, request.endpoint_id, request.lanes)

    @activity.defn
    async def deliver_directly(self, request: DirectInput) -> DirectResult:
        """Deliver each user's events in order, users side by side; hand back, per user,
        what was not delivered from its first failure on (for a lane to retry). Starts no
        attempt once `attempt_timeout_seconds` have passed, so one slow receiver holds
        this batch for at most two timeouts. A retry skips what was delivered."""
        secrets = await event_endpoints.get_secrets(self.pool, request.endpoint_id)
        if secrets is None:
            return DirectResult()  # deleted: the dispatcher ends at its next read
        if secrets.status == "paused":
            return DirectResult(backlogs=[Backlog(events=events) for events in request.users])
        ids = [event.event_id for events in request.users for event in events]
        rows = await outbound_events.get_events(self.pool, ids)
        made = await event_deliveries.attempts_so_far(
            self.pool, endpoint_id=request.endpoint_id, event_ids=ids
        )
        policy = request.policy
        stop_starting = time.monotonic() + policy.attempt_timeout_seconds
        calls = asyncio.Semaphore(_DIRECT_CONCURRENCY)

        async def deliver(events: list[EventRef]) -> Backlog | None:
            async with calls:
                for index, ref in enumerate(events):
                    tried = made.get(ref.event_id, 0)
                    row = rows.get(ref.event_id)
                    if tried < 0 or row is None:
                        continue  # delivered before a retry of this batch; or gone
                    if time.monotonic() > stop_starting:
                        return Backlog(events=events[index:], attempts=tried)
                    first_try = datetime.now(UTC)
                    attempt = Attempt(
                        attempt=tried + 1,
                        replay=False,
                        timeout_seconds=policy.attempt_timeout_seconds,
                        retry_in_seconds=policy.backoff_seconds(tried + 1),
                    )
                    if not (await self.sender.send(secrets, row, attempt)).delivered:
                        return Backlog(
                            events=events[index:], attempts=tried + 1, first_attempt_at=first_try
                        )
                return None

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(deliver(events)) for events in request.users if events]
        return DirectResult(backlogs=[backlog for task in tasks if (backlog := task.result())])

    @activity.defn
    async def deliver_event(self, request: DeliverInput) -> DeliverResult:
        """One attempt of a lane."""
        secrets = await event_endpoints.get_secrets(self.pool, request.endpoint_id)
        event = await outbound_events.get_event(self.pool, request.event_id)
        if secrets is None or event is None:
            return DeliverResult(outcome="gone")
        if secrets.status == "paused":
            return DeliverResult(outcome="paused")
        made = await event_deliveries.attempts_so_far(
            self.pool, endpoint_id=request.endpoint_id, event_ids=[request.event_id]
        )
        if not request.replay and made.get(request.event_id, 0) < 0:
            return DeliverResult(outcome="already_delivered")
        sent = await self.sender.send(
            secrets,
            event,
            Attempt(
                attempt=request.attempt,
                replay=request.replay,
                timeout_seconds=request.timeout_seconds,
                retry_in_seconds=request.retry_in_seconds,
                mark_failing=request.mark_failing,
            ),
        )
        return DeliverResult(
            outcome="delivered" if sent.delivered else "failed",
            response_code=sent.response_code,
            error=sent.error,
        )


def _missing(after: int, rows: list[OutboundEventRef]) -> Iterator[int]:
    expected = after + 1
    for row in rows:
        yield from range(expected, row.sequence)
        expected = row.sequence + 1


def _wanted(row: OutboundEventRef, types: list[str]) -> bool:
    return ALL_TYPES in types or row.type in types


def _ref(row: OutboundEventRef) -> EventRef:
    return EventRef(event_id=row.event_id, sequence=row.sequence, user_id=row.user_id)
