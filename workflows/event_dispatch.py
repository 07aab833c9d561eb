"""`event-dispatch-<endpoint>`: reads new outbound events and delivers them.

A long-running workflow per endpoint polls `outbound_events` after its cursor (a
Schedule would start a run per tick and lose the in-memory state; one workflow keeps
the cursor, the gaps, the lanes and the replays in one place and polls with a timer).
Sequence numbers are handed out before commit, so a missing one may still arrive: the
read stops before it until it has been missing for `gap_grace_seconds`, then skips it
(a rolled-back insert) and keeps looking for it a while (a late commit).

Delivery has two paths, so that a healthy endpoint costs one activity per batch rather
than a workflow per user:
- **Direct**: a batch's events go out in one activity (`deliver_directly`), users side
  by side and each user's events in order. Up to `direct_deliveries` run at once; a
  user in one is in no other (its newer events wait for it), so a slow receiver for one
  user holds only the delivery it is in, never the next batches.
- **Lanes**: a user whose direct delivery failed is handed, from the failed event on,
  to a lane of its own (`event-delivery-<endpoint>-<user>`) that retries with backoff;
  every later event of that user goes to the lane too, until the lane reports it
  drained the last hand-over. Replays and late commits always go through lanes.

Every user has at most one delivery in flight, so the receiver sees each user's events
in order. The stored cursor stays below every event still in a direct delivery, so a
dispatcher started again from scratch re-reads them (the delivery skips what arrived).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows import policies
from workflows.contracts.event_delivery import (
    DRAINED_SIGNAL,
    EVENT_DISPATCH_WORKFLOW,
    REPLAY_SIGNAL,
    WAKE_SIGNAL,
    Backlog,
    CloseLanesInput,
    DeliveryPolicy,
    DirectInput,
    DispatchInput,
    DispatchStatus,
    EndpointEvents,
    EventRef,
    HandOverInput,
    LaneDrained,
    LaneHandOver,
    ReadEventsInput,
    ReplayRange,
    Wake,
    lane_key,
)
from workflows.local_steps import database_step

with workflow.unsafe.imports_passed_through():
    from activities.event_delivery import EventDeliveryActivities

# Polls before continue-as-new (the time-skipping server never suggests it).
_POLLS_PER_RUN = 500
# Room beyond the attempts for the activity's reads and records.
_ACTIVITY_MARGIN = timedelta(seconds=30)


@workflow.defn(name=EVENT_DISPATCH_WORKFLOW)
class EventDispatchWorkflow:
    @workflow.init
    def __init__(self, request: DispatchInput) -> None:
        self._endpoint_id = request.endpoint_id
        self._cursor = request.cursor
        self._gaps: dict[int, datetime] = dict(request.gaps)
        self._replays: list[ReplayRange] = list(request.replays)
        self._skipped: dict[int, datetime] = dict(request.skipped)
        self._lanes: dict[str, int] = dict(request.lanes)
        self._handovers = request.handovers
        self._pending: list[EventRef] = list(request.pending)
        # Users in a direct delivery or a hand-over now, by the first sequence in it,
        # and their newer events read meanwhile.
        self._busy: dict[str, int] = {}
        self._held: dict[str, list[EventRef]] = {}
        self._deliveries: list[asyncio.Task[None]] = []
        self._drained: dict[str, int] = {}
        # The cursor last stored (in this run): an unchanged one is not written again.
        self._stored: int | None = None
        self._woken = False
        self._paused = False
        self._policy = DeliveryPolicy()
        # Learnt from the first read (the worker's policy); no gap settles before it.
        self._grace: timedelta | None = None

    @workflow.signal(name=WAKE_SIGNAL)
    def wake(self, _: Wake) -> None:
        self._woken = True

    @workflow.signal(name=REPLAY_SIGNAL)
    def replay(self, request: ReplayRange) -> None:
        self._replays.append(request)
        self._woken = True

    @workflow.signal(name=DRAINED_SIGNAL)
    def lane_drained(self, report: LaneDrained) -> None:
        key = lane_key(report.user_id)
        self._drained[key] = max(self._drained.get(key, 0), report.handover)

    @workflow.query(name="status")
    def status(self) -> DispatchStatus:
        return DispatchStatus(
            endpoint_id=self._endpoint_id,
            cursor=self._cursor,
            paused=self._paused,
            pending_replays=len(self._replays),
            open_lanes=len(self._lanes),
            direct_deliveries=self._running(),
        )

    @workflow.run
    async def run(self, _: DispatchInput) -> None:
        for _poll in range(_POLLS_PER_RUN):
            self._woken = False
            await self._collect_deliveries()
            await self._close_drained_lanes()
            if self._replays:
                await self._quiesce()
                if not await self._replay_once():
                    return
                continue
            batch = await database_step(
                EventDeliveryActivities.read_endpoint_events,
                ReadEventsInput(
                    endpoint_id=self._endpoint_id,
                    after_sequence=self._cursor,
                    settled_through=self._settled_to_store(),
                    settled_gaps=self._settled_gaps(),
                    skipped=sorted(self._skipped),
                ),
            )
            if not batch.exists:
                await self._quiesce()
                workflow.logger.info("EVENT_DISPATCH_ENDED", extra={"endpoint": self._endpoint_id})
                return
            if self._cursor is None:
                # Started from scratch: lanes a previous dispatcher left open still hold
                # their users' older events.
                self._lanes = dict(batch.lanes)
                self._handovers = max(batch.lanes.values(), default=0)
            self._paused = batch.paused
            self._policy = batch.policy
            if batch.late or batch.late_found:
                await self._quiesce()
                await self._hand_over_late(batch)
            self._cursor = batch.cursor
            self._track_gaps(batch)
            if not batch.paused:
                await self._route([*self._pending, *batch.events])
            if batch.paused:
                await self._sleep(batch.policy.paused_poll_seconds)
            elif not batch.more:
                await self._sleep(batch.policy.poll_seconds)
            await workflow.wait_condition(lambda: self._running() < self._policy.direct_deliveries)
        await self._quiesce()
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            DispatchInput(
                endpoint_id=self._endpoint_id,
                cursor=self._cursor,
                gaps=self._gaps,
                replays=self._replays,
                skipped=self._skipped,
                lanes=self._lanes,
                handovers=self._handovers,
                pending=self._pending,
            )
        )

    async def _route(self, events: list[EventRef]) -> None:
        """Each user's events to its lane, to a new direct delivery, or held behind the
        delivery the user is in."""
        self._pending = []
        direct: dict[str, list[EventRef]] = {}
        to_lanes: dict[str, list[EventRef]] = {}
        for event in sorted(events, key=lambda event: event.sequence):
            key = lane_key(event.user_id)
            if key in self._busy:
                self._held.setdefault(key, []).append(event)
            elif key in self._lanes:
                to_lanes.setdefault(key, []).append(event)
            else:
                direct.setdefault(key, []).append(event)
        if direct:
            self._start_direct(direct)
        if to_lanes:
            await self._hand_over_busy(
                {
                    key: LaneHandOver(user_id=events[0].user_id, events=events, handover=0)
                    for key, events in to_lanes.items()
                }
            )

    def _start_direct(self, users: dict[str, list[EventRef]]) -> None:
        for key, events in users.items():
            self._busy[key] = events[0].sequence
        self._deliveries.append(asyncio.create_task(self._deliver_directly(users)))

    async def _deliver_directly(self, users: dict[str, list[EventRef]]) -> None:
        policy = self._policy
        try:
            result = await workflow.execute_activity_method(
                EventDeliveryActivities.deliver_directly,
                DirectInput(
                    endpoint_id=self._endpoint_id, users=list(users.values()), policy=policy
                ),
                start_to_close_timeout=timedelta(seconds=2 * policy.attempt_timeout_seconds)
                + _ACTIVITY_MARGIN,
                schedule_to_close_timeout=timedelta(days=3),
                retry_policy=policies.RETRY,
            )
            backlogs = result.backlogs
        except ActivityError:
            # Not delivered for a reason the retries did not cure: the lanes retry.
            backlogs = [Backlog(events=events) for events in users.values()]
        failed = {
            lane_key(backlog.events[0].user_id): LaneHandOver(
                user_id=backlog.events[0].user_id,
                events=backlog.events,
                handover=0,
                attempts=backlog.attempts,
                first_attempt_at=backlog.first_attempt_at,
            )
            for backlog in backlogs
            if backlog.events
        }
        for key in users:
            if key not in failed:
                self._release(key)
        await self._hand_over_busy(failed)

    async def _hand_over_busy(self, lanes: dict[str, LaneHandOver]) -> None:
        """Hand each user's events to its lane, with what was held behind them; the
        user stays busy until the lane has them, so nothing of it overtakes them."""
        if not lanes:
            return
        for key, lane in lanes.items():
            self._busy.setdefault(key, lane.events[0].sequence)
            lane.events = [*lane.events, *self._held.pop(key, [])]
        await self._hand_over(list(lanes.values()))
        for key in lanes:
            self._release(key)

    def _release(self, key: str) -> None:
        """The user's delivery is done: what was held goes out with the next round."""
        self._busy.pop(key, None)
        held = self._held.pop(key, [])
        if held:
            self._pending.extend(held)
            self._woken = True

    def _running(self) -> int:
        return sum(1 for task in self._deliveries if not task.done())

    async def _collect_deliveries(self) -> None:
        # Awaiting a finished delivery raises what it raised (a bug fails the task).
        for task in [task for task in self._deliveries if task.done()]:
            self._deliveries.remove(task)
            await task

    async def _quiesce(self) -> None:
        """Wait for every direct delivery (before replays, late commits and the end)."""
        await workflow.wait_condition(lambda: self._running() == 0)
        await self._collect_deliveries()

    async def _close_drained_lanes(self) -> None:
        done = {
            key: handover
            for key, handover in self._drained.items()
            if self._lanes.get(key) == handover and key not in self._busy
        }
        # A lane that drained an older hand-over reports again when it drains the newer.
        self._drained = {}
        if not done:
            return
        await database_step(
            EventDeliveryActivities.close_lanes,
            CloseLanesInput(endpoint_id=self._endpoint_id, lanes=done),
        )
        for key, handover in done.items():
            if self._lanes.get(key) == handover:
                del self._lanes[key]

    async def _replay_once(self) -> bool:
        """Hand over the next batch of the first replay; False when the endpoint is gone."""
        wanted = self._replays[0]
        batch = await database_step(
            EventDeliveryActivities.read_endpoint_events,
            ReadEventsInput(endpoint_id=self._endpoint_id, after_sequence=None, replay=wanted),
        )
        if not batch.exists:
            return False
        await self._hand_over(_per_user(batch.events, replay=True))
        self._replays.pop(0)
        if batch.more and batch.cursor < wanted.last_sequence:
            rest = ReplayRange(first_sequence=batch.cursor + 1, last_sequence=wanted.last_sequence)
            self._replays.insert(0, rest)
        return True

    async def _hand_over_late(self, batch: EndpointEvents) -> None:
        """Events whose number was read past as a rollback but that committed after all:
        delivered now, after their user's later events, rather than never."""
        for number in batch.late_found:
            self._skipped.pop(number, None)
        if batch.late:
            workflow.logger.warning(
                "EVENT_LATE_COMMIT",
                extra={"endpoint": self._endpoint_id, "events": len(batch.late)},
            )
            await self._hand_over(_per_user(batch.late, late=True))

    async def _hand_over(self, lanes: list[LaneHandOver]) -> None:
        if not lanes:
            return
        for lane in lanes:
            self._handovers += 1
            lane.handover = self._handovers
            self._lanes[lane_key(lane.user_id)] = self._handovers
        await workflow.execute_activity_method(
            EventDeliveryActivities.hand_over_events,
            HandOverInput(endpoint_id=self._endpoint_id, lanes=lanes, policy=self._policy),
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=timedelta(days=3),
            retry_policy=policies.RETRY,
        )

    def _settled_to_store(self) -> int | None:
        """The cursor to store, when it moved: below every event read but not yet
        delivered or handed to a lane (None: nothing to write)."""
        if self._cursor is None:
            return None
        waiting = [
            *self._busy.values(),
            *(event.sequence for event in self._pending),
            *(events[0].sequence for events in self._held.values() if events),
        ]
        settled = min(self._cursor, min(waiting) - 1) if waiting else self._cursor
        if settled == self._stored:
            return None
        self._stored = settled
        return settled

    def _track_gaps(self, batch: EndpointEvents) -> None:
        now = workflow.now()
        for missing in batch.gaps:
            self._gaps.setdefault(missing, now)
        for number in batch.skipped:
            self._skipped[number] = now
        watch = timedelta(seconds=batch.policy.late_watch_seconds)
        self._skipped = {
            number: since for number, since in self._skipped.items() if now - since < watch
        }
        self._gaps = {seq: seen for seq, seen in self._gaps.items() if seq > batch.cursor}
        self._grace = timedelta(seconds=batch.policy.gap_grace_seconds)

    def _settled_gaps(self) -> list[int]:
        grace = self._grace
        if grace is None:
            return []
        now = workflow.now()
        return sorted(seq for seq, seen in self._gaps.items() if now - seen >= grace)

    async def _sleep(self, seconds: float) -> None:
        # A wake (a signal, or a delivery that finished) ends the sleep at once.
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: self._woken, timeout=timedelta(seconds=seconds))


def _per_user(
    events: list[EventRef], *, replay: bool = False, late: bool = False
) -> list[LaneHandOver]:
    """One hand-over per user, each with that user's events in sequence order."""
    users: dict[str, list[EventRef]] = {}
    for event in sorted(events, key=lambda event: event.sequence):
        users.setdefault(lane_key(event.user_id), []).append(event)
    return [
        LaneHandOver(user_id=events[0].user_id, events=events, handover=0, replay=replay, late=late)
        for events in users.values()
    ]
