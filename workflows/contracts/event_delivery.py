"""Outbound event delivery: `event-dispatch-<endpoint>` and `event-delivery-<endpoint>-<user>`.

The dispatcher (one per endpoint) reads `outbound_events` after its cursor and hands
each user's events to that user's delivery lane; a lane delivers one event at a time,
in order, retrying with backoff. Messages here carry ids and positions only: never an
event body, a URL's secret or a signing secret (the delivery activity reads and signs).

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


def event_dispatch_workflow_id(endpoint_id: str) -> str:
    return f"event-dispatch-{endpoint_id}"


def event_delivery_workflow_id(endpoint_id: str, user_id: str | None) -> str:
    """One lane per endpoint and user: events without a user share the `none` lane."""
    return f"event-delivery-{endpoint_id}-{user_id or 'none'}"


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
    # None: start at the endpoint's stored cursor. Set on continue-as-new.
    cursor: int | None = None
    gaps: dict[int, datetime] = Field(default_factory=dict)
    replays: list[ReplayRange] = Field(default_factory=list)
    # Numbers read past as rolled back, and when: still looked for (late commits).
    skipped: dict[int, datetime] = Field(default_factory=dict)


class ReadEventsInput(BaseModel):
    endpoint_id: str
    after_sequence: int | None
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
    policy: DeliveryPolicy = Field(default_factory=DeliveryPolicy)


class HandOverInput(BaseModel):
    endpoint_id: str
    events: list[EventRef]
    policy: DeliveryPolicy
    replay: bool = False
    late: bool = False


class EnqueueEvents(BaseModel):
    events: list[EventRef]
    replay: bool = False
    # Late commits: queued although the lane has gone past their sequence number.
    late: bool = False


class QueuedEvent(BaseModel):
    event: EventRef
    replay: bool = False


class LaneInput(BaseModel):
    endpoint_id: str
    user_id: str | None
    policy: DeliveryPolicy
    queue: list[QueuedEvent] = Field(default_factory=list)
    last_sequence: int = 0


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
