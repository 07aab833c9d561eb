"""The activities of event delivery: read what is new, hand it to the lanes, deliver.

- `read_endpoint_events` (a database step of the dispatcher): the endpoint's events
  after the cursor, stopping before a sequence number that is missing (a transaction
  may still commit it) unless the dispatcher says it has settled; it also stores the
  cursor the dispatcher reached, so a new dispatcher resumes there.
- `hand_over_events`: signal-with-start of each user's lane, in sequence order; a
  repeat is harmless (a lane ignores what it already queued; delivery skips what the
  endpoint already got).
- `deliver_event`: one signed POST and its attempt row. The secret is opened here and
  nowhere else; the workflow never sees it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import asyncpg
import httpx
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook
from temporalio import activity
from temporalio.common import WorkflowIDConflictPolicy

from onramp.event_secrets import open_secret
from onramp.events import payload
from onramp.logging import log_event
from onramp.repositories import event_deliveries, event_endpoints, outbound_events
from onramp.repositories.event_deliveries import NewAttempt
from onramp.repositories.outbound_events import OutboundEventRef
from workflows.contracts.event_delivery import (
    ENQUEUE_SIGNAL,
    EVENT_DELIVERY_WORKFLOW,
    DeliverInput,
    DeliverResult,
    DeliveryPolicy,
    EndpointEvents,
    EnqueueEvents,
    EventRef,
    HandOverInput,
    LaneInput,
    ReadEventsInput,
    event_delivery_workflow_id,
)

logger = logging.getLogger(__name__)

ALL_TYPES = "*"
# Lanes signalled at once by one hand-over.
_HAND_OVER_CONCURRENCY = 16
_ERROR_CHARS = 300


class EventDeliveryActivities:
    def __init__(
        self,
        pool: asyncpg.Pool,
        token_secret: SecretStr,
        policy: DeliveryPolicy | None = None,
    ) -> None:
        self.pool = pool
        self.token_secret = token_secret
        self.policy = policy or DeliveryPolicy()
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        # One connection pool per worker; redirects are not followed (a signed body
        # goes only to the URL the operator configured).
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False)
        return self._http

    @activity.defn
    async def read_endpoint_events(self, request: ReadEventsInput) -> EndpointEvents:
        endpoint = await event_endpoints.get_endpoint(self.pool, request.endpoint_id)
        if endpoint is None:
            return EndpointEvents(exists=False, policy=self.policy)
        if request.replay is not None:
            return await self._replay_batch(request, endpoint.event_types)
        after = request.after_sequence
        if after is None:
            after = endpoint.dispatch_cursor
        else:
            await event_endpoints.advance_cursor(self.pool, request.endpoint_id, after)
        if endpoint.status == "paused":
            return EndpointEvents(exists=True, paused=True, cursor=after, policy=self.policy)
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
        """Signal-with-start each user's lane; lanes are independent, so the calls run
        side by side (one after another, a batch of many users held the next events back
        for as many round trips). A retry repeats them all: a lane adds nothing twice."""
        client = activity.client()
        task_queue = activity.info().task_queue
        calls = asyncio.Semaphore(_HAND_OVER_CONCURRENCY)

        async def hand_over(user_id: str | None, events: list[EventRef]) -> None:
            async with calls:
                await client.start_workflow(
                    EVENT_DELIVERY_WORKFLOW,
                    LaneInput(
                        endpoint_id=request.endpoint_id, user_id=user_id, policy=request.policy
                    ),
                    id=event_delivery_workflow_id(request.endpoint_id, user_id),
                    task_queue=task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    start_signal=ENQUEUE_SIGNAL,
                    start_signal_args=[
                        EnqueueEvents(events=events, replay=request.replay, late=request.late)
                    ],
                )

        async with asyncio.TaskGroup() as group:
            for user_id, events in _by_user(request.events):
                group.create_task(hand_over(user_id, events))

    @activity.defn
    async def deliver_event(self, request: DeliverInput) -> DeliverResult:
        secrets = await event_endpoints.get_secrets(self.pool, request.endpoint_id)
        event = await outbound_events.get_event(self.pool, request.event_id)
        if secrets is None or event is None:
            return DeliverResult(outcome="gone")
        if secrets.status == "paused":
            return DeliverResult(outcome="paused")
        if not request.replay and await event_deliveries.was_delivered(
            self.pool, event_id=request.event_id, endpoint_id=request.endpoint_id
        ):
            return DeliverResult(outcome="already_delivered")
        body = _body(event)
        headers = self._signed_headers(secrets, request.event_id, body)
        started = time.monotonic()
        code: int | None = None
        error: str | None = None
        try:
            response = await self._client().post(
                secrets.url, content=body, headers=headers, timeout=request.timeout_seconds
            )
            code = response.status_code
            if not 200 <= code < 300:
                error = f"HTTP {code}"
        except httpx.HTTPError as failure:
            error = (f"{type(failure).__name__}: {failure}")[:_ERROR_CHARS]
        latency_ms = int((time.monotonic() - started) * 1000)
        delivered = error is None
        await self._record(request, delivered, code, latency_ms, error)
        return DeliverResult(
            outcome="delivered" if delivered else "failed", response_code=code, error=error
        )

    def _signed_headers(
        self, secrets: event_endpoints.EndpointSecrets, event_id: str, body: str
    ) -> dict[str, str]:
        now = datetime.now(UTC)
        signatures = []
        for sealed in (secrets.secret_sealed, secrets.previous_secret_sealed):
            secret = open_secret(self.token_secret, secrets.endpoint_id, sealed) if sealed else None
            if secret is not None:
                signatures.append(Webhook(secret).sign(event_id, now, body))
        if not signatures:
            # A token secret changed under the endpoint: nothing can sign. Retried like
            # a failed delivery, so the operator sees it in the attempts.
            raise RuntimeError("the endpoint's signing secret cannot be opened")
        return {
            "content-type": "application/json",
            "webhook-id": event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": " ".join(signatures),
        }

    async def _record(
        self,
        request: DeliverInput,
        delivered: bool,
        code: int | None,
        latency_ms: int,
        error: str | None,
    ) -> None:
        last = not delivered and request.retry_in_seconds is None
        status: event_deliveries.DeliveryStatus = (
            "delivered" if delivered else "abandoned" if last else "failed"
        )
        attempt = NewAttempt(
            event_id=request.event_id,
            endpoint_id=request.endpoint_id,
            user_id=request.user_id,
            attempt=request.attempt,
            replay=request.replay,
            status=status,
            response_code=code,
            latency_ms=latency_ms,
            error=error,
            next_attempt_in_seconds=None if delivered else request.retry_in_seconds,
        )
        async with self.pool.acquire() as connection, connection.transaction():
            await event_deliveries.insert_attempt(connection, attempt)
            if delivered:
                await event_endpoints.set_status(
                    connection, request.endpoint_id, "active", only_from="failing"
                )
            elif request.mark_failing:
                await event_endpoints.set_status(
                    connection, request.endpoint_id, "failing", only_from="active"
                )
        log_event(
            logger,
            "EVENT_DELIVERY_ATTEMPT",
            endpoint_id=request.endpoint_id,
            event_id=request.event_id,
            attempt=request.attempt,
            status=status,
            response_code=code,
            latency_ms=latency_ms,
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


def _by_user(events: list[EventRef]) -> list[tuple[str | None, list[EventRef]]]:
    """The events grouped per user, each group in sequence order."""
    groups: dict[str | None, list[EventRef]] = {}
    for event in sorted(events, key=lambda event: event.sequence):
        groups.setdefault(event.user_id, []).append(event)
    return list(groups.items())


def _body(event: outbound_events.OutboundEventRow) -> str:
    """The event as the receiver gets it (Standard Webhooks signs these exact bytes)."""
    return json.dumps(payload(event), separators=(",", ":"), sort_keys=True)
