"""All sandbox state in memory: objects by id and type, events, hidden per-object data.

Objects are stored in the exact shape the API returns, so a create answers without
building anything twice. Everything here is plain JSON data, so the whole store can be
written to and read from a state file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sandbox.domain.jsontypes import Obj


@dataclass(slots=True)
class StoredEvent:
    """An event kept as the exact JSON sent to webhooks (a snapshot at emission time)."""

    id: str
    type: str
    created: int
    account: str | None
    payload: str


class Store:
    """Objects, events and the hidden data the API never shows."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget everything."""
        self.objects: dict[str, Obj] = {}
        self.by_type: dict[str, dict[str, Obj]] = {}
        self.deleted: dict[str, Obj] = {}
        self.deleted_counts: dict[str, int] = {}
        self.hidden: dict[str, Obj] = {}
        self.events: dict[str, StoredEvent] = {}
        self.pending_webhooks: dict[str, int] = {}
        self.links: dict[str, Obj] = {}
        self.dirty = False

    # objects

    def add(self, obj: Obj, hidden: Obj | None = None) -> Obj:
        self.objects[obj["id"]] = obj
        self.by_type.setdefault(obj["object"], {})[obj["id"]] = obj
        if hidden is not None:
            self.hidden[obj["id"]] = hidden
        self.dirty = True
        return obj

    def get(self, object_id: str, kind: str | None = None) -> Obj | None:
        obj = self.objects.get(object_id)
        if obj is not None and kind is not None and obj["object"] != kind:
            return None
        return obj

    def hidden_of(self, object_id: str) -> Obj:
        return self.hidden.setdefault(object_id, {})

    def newest_first(self, kind: str) -> Iterator[Obj]:
        return reversed(self.by_type.get(kind, {}).values())

    def count(self, kind: str) -> int:
        return len(self.by_type.get(kind, {}))

    def delete(self, object_id: str) -> Obj | None:
        """Remove an object, remembering the deleted stub Stripe answers afterwards."""
        obj = self.objects.pop(object_id, None)
        if obj is None:
            return None
        kind = obj["object"]
        self.by_type.get(kind, {}).pop(object_id, None)
        stub = {"id": object_id, "object": kind, "deleted": True}
        self.deleted[object_id] = stub
        self.deleted_counts[kind] = self.deleted_counts.get(kind, 0) + 1
        self.dirty = True
        return stub

    # events

    def add_event(self, event: StoredEvent, pending: int) -> None:
        self.events[event.id] = event
        if pending:
            self.pending_webhooks[event.id] = pending
        self.dirty = True

    # persistence

    def snapshot(self) -> Obj:
        return {
            "objects": list(self.objects.values()),
            "deleted": list(self.deleted.values()),
            "deleted_counts": self.deleted_counts,
            "hidden": self.hidden,
            "events": [
                [e.id, e.type, e.created, e.account, e.payload] for e in self.events.values()
            ],
            "links": self.links,
        }

    def restore(self, data: Obj) -> None:
        self.clear()
        for obj in data.get("objects", []):
            self.add(obj)
        self.deleted = {stub["id"]: stub for stub in data.get("deleted", [])}
        self.deleted_counts = dict(data.get("deleted_counts", {}))
        self.hidden = dict(data.get("hidden", {}))
        for row in data.get("events", []):
            event = StoredEvent(*row)
            self.events[event.id] = event
        self.links = dict(data.get("links", {}))
        self.dirty = False
