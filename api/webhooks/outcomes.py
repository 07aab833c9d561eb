"""What became of one inbox row, and its one log line and metric."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Literal

from api.webhooks import metrics
from api.webhooks.events import StripeEvent
from api.webhooks.routing import SignalTarget
from onramp.logging import log_event
from onramp.repositories.webhook_events import InboxRow, InboxStatus

logger = logging.getLogger(__name__)

Outcome = Literal[
    "dispatched", "duplicate", "ignored", "orphaned", "failed", "unavailable", "busy", "deferred"
]
Via = Literal["dispatcher", "replay"]


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


def event_result(
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


@dataclass
class Claim:
    """A row this process holds a lease on, and when the lease began (monotonic)."""

    row: InboxRow
    lease_id: uuid.UUID
    claimed_at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Planned:
    """A routed event waiting for its Temporal call."""

    claim: Claim
    event: StripeEvent
    target: SignalTarget


def report(result: DispatchResult, via: Via) -> DispatchResult:
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
        "via": via,
    }
    metrics.WEBHOOK_EVENTS.labels(result.event_type or "unknown", result.outcome).inc()
    if result.livemode_mismatch:
        metrics.WEBHOOK_REJECTIONS.labels("livemode_mismatch").inc()
        # Loud: a test/live mix-up once stranded paid customers.
        log_event(logger, "WEBHOOK_REJECTED", logging.ERROR, **fields)
    elif result.settled:
        level = logging.WARNING if result.outcome == "orphaned" else logging.INFO
        log_event(logger, "WEBHOOK_PROCESSED_OK", level, **fields)
    elif result.outcome == "deferred":
        log_event(logger, "WEBHOOK_DISPATCH_DEFERRED", logging.INFO, **fields)
    else:
        log_event(logger, "WEBHOOK_PROCESSING_FAILED", logging.ERROR, **fields)
    return result
