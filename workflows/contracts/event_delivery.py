"""Outbound event delivery: `event-dispatch-<endpoint>` and `event-delivery-<endpoint>-<user>`.

The dispatcher (one per endpoint) reads `outbound_events` after its cursor and delivers
each batch directly, users side by side and each user's events in order. A user whose
delivery fails gets a lane: a workflow of its own that retries with backoff, delivering
that user's events one at a time, in order, until it has drained them. Messages here
carry ids and positions only: never an event body, a URL's secret or a signing secret
(the delivery activities read and sign).

One pydantic model per message, so fields can be added later without breaking running
workflows (add with defaults; never rename or remove a field a history may hold).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from workflows.contracts.common import STATUS_QUERY, QueryRef, SignalRef, WorkflowRef

EVENT_DISPATCH_WORKFLOW = "EventDispatchWorkflow"
EVENT_DELIVERY_WORKFLOW = "EventDeliveryWorkflow"
ENQUEUE_SIGNAL = "enqueue"
WAKE_SIGNAL = "wake"
REPLAY_SIGNAL = "replay"
DRAINED_SIGNAL = "lane_drained"


def event_dispatch_workflow_id(endpoint_id: str) -> str:
    return f"event-dispatch-{endpoint_id}"


def lane_key(user_id: str | None) -> str:
    """Events without a user share the `none` lane."""
    return user_id or "none"


def event_delivery_workflow_id(endpoint_id: str, user_id: str | None) -> str:
    """One lane per endpoint and user."""
    return f"event-delivery-{endpoint_id}-{lane_key(user_id)}"


class DeliveryPolicy(BaseModel):
    """Timeouts and the retry schedule; the worker decides them (the read step hands
    them to the dispatcher, which hands them to the lanes)."""

    attempt_timeout_seconds: float = 15.0
    initial_backoff_seconds: float = 5.0
    max_backoff_seconds: float = 6 * 3600.0
    # Like Stripe's: an event is retried for up to three days, then given up.
    give_up_after_seconds: float = 3 * 24 * 3600.0
    # An event still undelivered after this long marks its endpoint `failing`.
    failing_after_seconds: float = 3600.0
    poll_seconds: float = 1.0
    paused_poll_seconds: float = 10.0
    # A sequence number missing this long is a rolled-back insert, not a late commit.
    gap_grace_seconds: float = 10.0
    # A skipped number is still looked for this long: a commit that came later than the
    # grace is delivered late (after the user's later events), never lost.
    late_watch_seconds: float = 3600.0
    lane_idle_seconds: float = 60.0
    batch_size: int = Field(default=200, ge=1, le=1000)
    # Direct deliveries the dispatcher keeps in flight at once (each one activity
    # delivering a batch's users side by side). A user in one is in no other.
    direct_deliveries: int = Field(default=8, ge=1, le=64)

    def backoff_seconds(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (1, 2, ...)."""
        growth: float = 2.0 ** (attempt - 1)
        return min(self.initial_backoff_seconds * growth, self.max_backoff_seconds)


class EventRef(BaseModel):
    event_id: str
    sequence: int
    user_id: str | None


class ReplayRange(BaseModel):
    """Replay every event of the endpoint's types with a sequence in the range."""

    first_sequence: int
    last_sequence: int


class DispatchInput(BaseModel):
    endpoint_id: str
    # None: start at the endpoint's stored cursor and its stored lanes. Set on
    # continue-as-new, with the rest of the state.
    cursor: int | None = None
    gaps: dict[int, datetime] = Field(default_factory=dict)
    replays: list[ReplayRange] = Field(default_factory=list)
    # Numbers read past as rolled back, and when: still looked for (late commits).
    skipped: dict[int, datetime] = Field(default_factory=dict)
    # Users with an open lane (by `lane_key`) and the number of their last hand-over.
    lanes: dict[str, int] = Field(default_factory=dict)
    handovers: int = 0
    # Events read but not yet routed (their user's direct delivery was in flight).
    pending: list[EventRef] = Field(default_factory=list)


class ReadEventsInput(BaseModel):
    endpoint_id: str
    # None: from the stored cursor (a dispatcher starting from scratch).
    after_sequence: int | None
    # The cursor to store (None: unchanged): below every event still in a direct delivery.
    settled_through: int | None = None
    settled_gaps: list[int] = Field(default_factory=list)
    replay: ReplayRange | None = None
    skipped: list[int] = Field(default_factory=list)


class EndpointEvents(BaseModel):
    """What the dispatcher's read step found."""

    exists: bool
    paused: bool = False
    events: list[EventRef] = Field(default_factory=list)
    # Everything up to `cursor` is in `events` or not for this endpoint.
    cursor: int = 0
    # Missing sequence numbers after the cursor (a commit still to come, or a rollback).
    gaps: list[int] = Field(default_factory=list)
    more: bool = False
    # Settled gaps this read went past (to look for later), and the skipped numbers that
    # turned out to be late commits: all of them, and those the endpoint wants.
    skipped: list[int] = Field(default_factory=list)
    late_found: list[int] = Field(default_factory=list)
    late: list[EventRef] = Field(default_factory=list)
    # Read from scratch only (`after_sequence` None): the stored open lanes.
    lanes: dict[str, int] = Field(default_factory=dict)
    policy: DeliveryPolicy = Field(default_factory=DeliveryPolicy)


class DirectInput(BaseModel):
    """One direct delivery: each list is one user's events, in order."""

    endpoint_id: str
    users: list[list[EventRef]]
    policy: DeliveryPolicy


class Backlog(BaseModel):
    """A user's events a direct delivery did not deliver, from the first that failed
    (or was not tried: paused endpoint, time budget spent), for a lane to retry."""

    events: list[EventRef]
    # Attempts already made at `events[0]`, the first at `first_attempt_at`.
    attempts: int = 0
    first_attempt_at: datetime | None = None


class DirectResult(BaseModel):
    backlogs: list[Backlog] = Field(default_factory=list)


class EnqueueEvents(BaseModel):
    events: list[EventRef]
    replay: bool = False
    # Late commits: queued although the lane has gone past their sequence number.
    late: bool = False
    # The dispatcher's number for this hand-over: the lane reports the last one it
    # drained, and the dispatcher closes the lane only if nothing came after it.
    handover: int = 0
    # Attempts a direct delivery already made at `events[0]` (the lane goes on from them).
    attempts: int = 0
    first_attempt_at: datetime | None = None


class LaneHandOver(EnqueueEvents):
    """What the dispatcher hands one user's lane (the hand-over activity signals it)."""

    user_id: str | None


class HandOverInput(BaseModel):
    endpoint_id: str
    lanes: list[LaneHandOver]
    policy: DeliveryPolicy


class QueuedEvent(BaseModel):
    event: EventRef
    replay: bool = False
    attempts: int = 0
    first_attempt_at: datetime | None = None


class LaneDrained(BaseModel):
    """A lane's queue is empty: everything up to hand-over `handover` is done."""

    user_id: str | None
    handover: int


class CloseLanesInput(BaseModel):
    endpoint_id: str
    # lane_key -> the hand-over the lane drained (a row with a later one stays).
    lanes: dict[str, int]


class LaneInput(BaseModel):
    endpoint_id: str
    user_id: str | None
    policy: DeliveryPolicy
    queue: list[QueuedEvent] = Field(default_factory=list)
    last_sequence: int = 0
    handover: int = 0


class DeliverInput(BaseModel):
    endpoint_id: str
    event_id: str
    user_id: str | None
    attempt: int
    replay: bool = False
    timeout_seconds: float
    # When this attempt fails: the wait before the next one, or None when it is the last.
    retry_in_seconds: float | None
    mark_failing: bool = False


DeliveryOutcome = Literal["delivered", "already_delivered", "failed", "paused", "gone"]


class DeliverResult(BaseModel):
    outcome: DeliveryOutcome
    response_code: int | None = None
    error: str | None = None


class EndpointRef(BaseModel):
    endpoint_id: str


class Wake(BaseModel):
    """Look for new events now (an endpoint resumed)."""


class DispatchStatus(BaseModel):
    endpoint_id: str
    cursor: int | None = None
    paused: bool = False
    pending_replays: int = 0
    # Users whose events go through a retry lane, and direct deliveries in flight.
    open_lanes: int = 0
    direct_deliveries: int = 0


class LaneStatus(BaseModel):
    endpoint_id: str
    user_id: str | None
    queued: int = 0
    current_event_id: str | None = None
    attempt: int = 0


EVENT_DISPATCH = WorkflowRef(EVENT_DISPATCH_WORKFLOW, DispatchInput, type(None))
EVENT_DELIVERY = WorkflowRef(EVENT_DELIVERY_WORKFLOW, LaneInput, type(None))
DISPATCH_WAKE = SignalRef(EVENT_DISPATCH, WAKE_SIGNAL, Wake)
DISPATCH_REPLAY = SignalRef(EVENT_DISPATCH, REPLAY_SIGNAL, ReplayRange)
DELIVERY_ENQUEUE = SignalRef(EVENT_DELIVERY, ENQUEUE_SIGNAL, EnqueueEvents)
DISPATCH_STATUS = QueryRef(EVENT_DISPATCH, STATUS_QUERY, DispatchStatus)
DELIVERY_STATUS = QueryRef(EVENT_DELIVERY, STATUS_QUERY, LaneStatus)
