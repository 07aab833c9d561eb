"""Emitting events: stored as the exact JSON webhooks receive, then queued for delivery."""

from __future__ import annotations

import json
from typing import Any

from sandbox import API_VERSION
from sandbox.domain.clock import Clock
from sandbox.domain.ids import new_id
from sandbox.domain.jsontypes import Obj
from sandbox.domain.store import Store, StoredEvent
from sandbox.domain.webhooks import Dispatcher


def previous_attributes(before: Obj, after: Obj) -> Obj:
    """Top-level fields that changed, with their old values (Stripe's `previous_attributes`)."""
    return {k: v for k, v in before.items() if after.get(k) != v}


class EventBus:
    """Creates `evt_` objects for state changes and hands them to the dispatcher."""

    def __init__(self, store: Store, dispatcher: Dispatcher, clock: Clock) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.clock = clock

    def emit(
        self,
        event_type: str,
        obj: Obj,
        *,
        previous: Obj | None = None,
        account: str | None = None,
        request_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Record and deliver one event; `account` marks an event about a connected account."""
        event_id = new_id("evt")
        connect = account is not None
        pending = sum(1 for e in self.dispatcher.endpoints if e.wants(event_type, connect))
        data: dict[str, Any] = {"object": obj}
        if previous is not None:
            data["previous_attributes"] = previous
        event: Obj = {"id": event_id, "object": "event"}
        if account is not None:
            event["account"] = account
        event.update(
            {
                "api_version": API_VERSION,
                "created": self.clock.now(),
                "data": data,
                "livemode": False,
                "pending_webhooks": pending,
                "request": {"id": request_id, "idempotency_key": idempotency_key},
                "type": event_type,
            }
        )
        # Serialising now is what makes data.object a snapshot of this moment.
        payload = json.dumps(event)
        self.store.add_event(
            StoredEvent(event_id, event_type, event["created"], account, payload), pending
        )
        self.dispatcher.enqueue(event_id, event_type, payload, connect)
        return event_id

    def delivered(self, event_id: str) -> None:
        """One endpoint answered 2xx: one fewer pending webhook."""
        left = self.store.pending_webhooks.get(event_id)
        if left is not None:
            if left <= 1:
                del self.store.pending_webhooks[event_id]
            else:
                self.store.pending_webhooks[event_id] = left - 1

    def render(self, event_id: str) -> Obj | None:
        """The event as `GET /v1/events/{id}` returns it (with today's pending count)."""
        stored = self.store.events.get(event_id)
        if stored is None:
            return None
        event: Obj = json.loads(stored.payload)
        event["pending_webhooks"] = self.store.pending_webhooks.get(event_id, 0)
        return event
