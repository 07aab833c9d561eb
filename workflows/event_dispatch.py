"""`event-dispatch-<endpoint>`: reads new outbound events and hands them to the lanes.

A long-running workflow per endpoint polls `outbound_events` after its cursor (a
Schedule would start a run per tick and lose the in-memory gap timers; one workflow
keeps the cursor, the gaps and the replays in one place and polls with a timer). Each
user's events go to that user's lane (`event-delivery-<endpoint>-<user>`), so a slow
receiver for one user never holds another's. Sequence numbers are handed out before
commit, so a missing one may still arrive: the read stops before it until it has been
missing for `gap_grace_seconds`, then skips it (a rolled-back insert).
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from temporalio import workflow

from workflows import policies
from workflows.contracts.event_delivery import (
    EVENT_DISPATCH_WORKFLOW,
    REPLAY_SIGNAL,
    WAKE_SIGNAL,
    DispatchInput,
    DispatchStatus,
    EndpointEvents,
    EventRef,
    HandOverInput,
    ReadEventsInput,
    ReplayRange,
    Wake,
)
from workflows.local_steps import database_step

with workflow.unsafe.imports_passed_through():
    from activities.event_delivery import EventDeliveryActivities

# Polls before continue-as-new (the time-skipping server never suggests it).
_POLLS_PER_RUN = 500


@workflow.defn(name=EVENT_DISPATCH_WORKFLOW)
class EventDispatchWorkflow:
    @workflow.init
    def __init__(self, request: DispatchInput) -> None:
        self._endpoint_id = request.endpoint_id
        self._cursor = request.cursor
        self._gaps: dict[int, datetime] = dict(request.gaps)
        self._replays: list[ReplayRange] = list(request.replays)
        self._skipped: dict[int, datetime] = dict(request.skipped)
        self._woken = False
        self._paused = False
        # Learnt from the first read (the worker's policy); no gap settles before it.
        self._grace: timedelta | None = None

    @workflow.signal(name=WAKE_SIGNAL)
    def wake(self, _: Wake) -> None:
        self._woken = True

    @workflow.signal(name=REPLAY_SIGNAL)
    def replay(self, request: ReplayRange) -> None:
        self._replays.append(request)
        self._woken = True

    @workflow.query(name="status")
    def status(self) -> DispatchStatus:
        return DispatchStatus(
            endpoint_id=self._endpoint_id,
            cursor=self._cursor,
            paused=self._paused,
            pending_replays=len(self._replays),
        )

    @workflow.run
    async def run(self, _: DispatchInput) -> None:
        for _poll in range(_POLLS_PER_RUN):
            self._woken = False
            if self._replays:
                if not await self._replay_once():
                    return
                continue
            batch = await database_step(
                EventDeliveryActivities.read_endpoint_events,
                ReadEventsInput(
                    endpoint_id=self._endpoint_id,
                    after_sequence=self._cursor,
                    settled_gaps=self._settled_gaps(),
                    skipped=sorted(self._skipped),
                ),
            )
            if not batch.exists:
                workflow.logger.info("EVENT_DISPATCH_ENDED", extra={"endpoint": self._endpoint_id})
                return
            self._paused = batch.paused
            await self._hand_over(batch, replay=False)
            await self._hand_over_late(batch)
            self._cursor = batch.cursor
            self._track_gaps(batch)
            if batch.paused:
                await self._sleep(batch.policy.paused_poll_seconds)
            elif not batch.more:
                await self._sleep(batch.policy.poll_seconds)
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            DispatchInput(
                endpoint_id=self._endpoint_id,
                cursor=self._cursor,
                gaps=self._gaps,
                replays=self._replays,
                skipped=self._skipped,
            )
        )

    async def _replay_once(self) -> bool:
        """Hand over the next batch of the first replay; False when the endpoint is gone."""
        wanted = self._replays[0]
        batch = await database_step(
            EventDeliveryActivities.read_endpoint_events,
            ReadEventsInput(endpoint_id=self._endpoint_id, after_sequence=None, replay=wanted),
        )
        if not batch.exists:
            return False
        await self._hand_over(batch, replay=True)
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
            await self._hand_over(batch, replay=False, events=batch.late, late=True)

    async def _hand_over(
        self,
        batch: EndpointEvents,
        *,
        replay: bool,
        events: list[EventRef] | None = None,
        late: bool = False,
    ) -> None:
        events = batch.events if events is None else events
        if not events:
            return
        await workflow.execute_activity_method(
            EventDeliveryActivities.hand_over_events,
            HandOverInput(
                endpoint_id=self._endpoint_id,
                events=events,
                policy=batch.policy,
                replay=replay,
                late=late,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=timedelta(days=3),
            retry_policy=policies.RETRY,
        )

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
        # A wake that came while the last read ran ends the sleep at once.
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: self._woken, timeout=timedelta(seconds=seconds))
