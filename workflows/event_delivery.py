"""`event-delivery-<endpoint>-<user>`: one user's events to one endpoint, retried in order.

A user gets a lane when the dispatcher's direct delivery of one of its events failed
(or an operator replays events): the dispatcher signals-with-start it with the failed
event, the attempts already made at it, and every later event of the user until the
lane reports it drained. It delivers one event at a time (one delivery in flight per
user per endpoint, so the receiver sees them in order), each attempt bounded by a
timeout, retried with exponential backoff for up to `give_up_after_seconds`; every
attempt is recorded by the activity. An event still failing after
`failing_after_seconds` marks the endpoint `failing`; a delivered one clears it. While
the endpoint is paused the lane waits and checks again. Each time its queue empties it
tells the dispatcher which hand-over it finished (the user goes back to direct delivery
if nothing came after it); with nothing queued for `lane_idle_seconds` it ends.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, FailureError

from workflows.contracts.event_delivery import (
    DRAINED_SIGNAL,
    ENQUEUE_SIGNAL,
    EVENT_DELIVERY_WORKFLOW,
    DeliverInput,
    DeliverResult,
    EnqueueEvents,
    LaneDrained,
    LaneInput,
    LaneStatus,
    QueuedEvent,
    event_dispatch_workflow_id,
)

with workflow.unsafe.imports_passed_through():
    from activities.event_delivery import EventDeliveryActivities

# Events delivered before continue-as-new (the time-skipping server never suggests it).
_EVENTS_PER_RUN = 200
# Room beyond the HTTP timeout for reading the endpoint and recording the attempt.
_ACTIVITY_MARGIN = timedelta(seconds=10)


@workflow.defn(name=EVENT_DELIVERY_WORKFLOW)
class EventDeliveryWorkflow:
    @workflow.init
    def __init__(self, request: LaneInput) -> None:
        self._input = request
        self._queue: list[QueuedEvent] = list(request.queue)
        self._last_sequence = request.last_sequence
        self._handover = request.handover
        self._current: str | None = None
        self._attempt = 0

    @workflow.signal(name=ENQUEUE_SIGNAL)
    def enqueue(self, request: EnqueueEvents) -> None:
        self._handover = max(self._handover, request.handover)
        for index, event in enumerate(request.events):
            # Attempts already made concern the first event only.
            first = index == 0
            queued = QueuedEvent(
                event=event,
                replay=request.replay,
                attempts=request.attempts if first else 0,
                first_attempt_at=request.first_attempt_at if first else None,
            )
            if request.replay or request.late:
                self._queue.append(queued)
            elif event.sequence > self._last_sequence:
                # A hand-over repeated by the dispatcher adds nothing twice.
                self._queue.append(queued)
                self._last_sequence = event.sequence

    @workflow.query(name="status")
    def status(self) -> LaneStatus:
        return LaneStatus(
            endpoint_id=self._input.endpoint_id,
            user_id=self._input.user_id,
            queued=len(self._queue),
            current_event_id=self._current,
            attempt=self._attempt,
        )

    @workflow.run
    async def run(self, _: LaneInput) -> None:
        policy = self._input.policy
        for _delivered in range(_EVENTS_PER_RUN):
            if not self._queue:
                try:
                    await workflow.wait_condition(
                        lambda: bool(self._queue),
                        timeout=timedelta(seconds=policy.lane_idle_seconds),
                    )
                except TimeoutError:
                    if not self._queue:
                        return
            item = self._queue.pop(0)
            self._current = item.event.event_id
            await self._deliver(item)
            self._current = None
            if not self._queue:
                await self._report_drained()
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            LaneInput(
                endpoint_id=self._input.endpoint_id,
                user_id=self._input.user_id,
                policy=policy,
                queue=self._queue,
                last_sequence=self._last_sequence,
                handover=self._handover,
            )
        )

    async def _report_drained(self) -> None:
        dispatcher = workflow.get_external_workflow_handle(
            event_dispatch_workflow_id(self._input.endpoint_id)
        )
        try:
            await dispatcher.signal(
                DRAINED_SIGNAL, LaneDrained(user_id=self._input.user_id, handover=self._handover)
            )
        except FailureError:
            # No dispatcher runs (the endpoint was deleted, or it is being started
            # again): a new one reads the open lanes from Postgres, and this lane's
            # next drain reports again.
            workflow.logger.info("EVENT_LANE_DRAINED_UNHEARD")

    async def _deliver(self, item: QueuedEvent) -> None:
        policy = self._input.policy
        first_try = item.first_attempt_at or workflow.now()
        self._attempt = item.attempts
        if self._attempt:
            # The dispatcher's direct delivery failed already: wait what it announced.
            due = first_try + timedelta(seconds=policy.backoff_seconds(self._attempt))
            if due > workflow.now():
                await workflow.sleep(due - workflow.now())
        while True:
            self._attempt += 1
            waited = (workflow.now() - first_try).total_seconds()
            backoff = policy.backoff_seconds(self._attempt)
            last = waited + backoff > policy.give_up_after_seconds
            result = await self._attempt_once(
                DeliverInput(
                    endpoint_id=self._input.endpoint_id,
                    event_id=item.event.event_id,
                    user_id=item.event.user_id,
                    attempt=self._attempt,
                    replay=item.replay,
                    timeout_seconds=policy.attempt_timeout_seconds,
                    retry_in_seconds=None if last else backoff,
                    mark_failing=waited >= policy.failing_after_seconds,
                )
            )
            if result.outcome in ("delivered", "already_delivered", "gone"):
                return
            if result.outcome == "paused":
                # Not an attempt: nothing was sent. Look again later.
                self._attempt -= 1
                await workflow.sleep(timedelta(seconds=policy.paused_poll_seconds))
                continue
            if last:
                workflow.logger.warning(
                    "EVENT_DELIVERY_ABANDONED",
                    extra={"endpoint": self._input.endpoint_id, "event": item.event.event_id},
                )
                return
            await workflow.sleep(timedelta(seconds=backoff))

    async def _attempt_once(self, request: DeliverInput) -> DeliverResult:
        # A local activity: an attempt costs the lane one workflow task instead of a
        # scheduled activity's three, and deliveries share the worker with the journeys.
        # A worker that dies mid-attempt leaves no record, and the next one sends again
        # (at least once, with the same webhook-id), as a regular activity would.
        try:
            return await workflow.execute_local_activity_method(
                EventDeliveryActivities.deliver_event,
                request,
                start_to_close_timeout=timedelta(seconds=request.timeout_seconds)
                + _ACTIVITY_MARGIN,
                # The lane is the retry loop: each attempt is recorded with its next time.
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError as failure:
            return DeliverResult(outcome="failed", error=str(failure.cause or failure))
