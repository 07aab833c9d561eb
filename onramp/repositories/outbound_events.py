"""The `outbound_events` table: the outbox of events the platform hears about.

Rows are inserted only by the unit of work that commits the change they report, on its
connection and inside its transaction (`insert_event` refuses anything else), so an
event exists if and only if its change does. Rows are never updated; delivery reads
them in `sequence` order.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from onramp.repositories import Connection, Db

_COLUMNS = "id, type, version, user_id::text AS user_id, occurred_at, data, sequence"


class OutboundEventRow(BaseModel):
    """One stored event."""

    id: str
    type: str
    version: int
    user_id: str
    occurred_at: datetime
    data: dict[str, Any]
    sequence: int


class OutboundEventRef(BaseModel):
    """An event as the dispatcher hands it over: ids and position only, no body."""

    event_id: str
    sequence: int
    type: str
    user_id: str | None


class NewOutboundEvent(BaseModel):
    """What a unit of work inserts (`onramp.events.emit` builds it from a catalogue model)."""

    id: str
    type: str
    version: int
    user_id: str
    data: dict[str, Any]


class NotInTransaction(RuntimeError):
    """`insert_event` was called outside a transaction: the event would not share the
    fate of its change."""


def _row(record: Any) -> OutboundEventRow:
    values = dict(record)
    values["data"] = json.loads(values["data"])
    return OutboundEventRow.model_validate(values)


async def insert_event(connection: Connection, event: NewOutboundEvent) -> bool:
    """Insert the event in the caller's transaction; False when its id is already there
    (a retried change)."""
    if not connection.is_in_transaction():
        raise NotInTransaction(f"event {event.type} must be inserted with its change")
    # The existence check first: ON CONFLICT alone would draw a sequence number for a
    # repeated event and leave a hole that holds delivery back until it settles.
    # ON CONFLICT stays for two writers racing on one id.
    inserted = await connection.fetchval(
        """
        INSERT INTO outbound_events (id, type, version, user_id, data)
        SELECT $1, $2, $3, $4, $5::jsonb
        WHERE NOT EXISTS (SELECT 1 FROM outbound_events WHERE id = $1)
        ON CONFLICT (id) DO NOTHING
        RETURNING sequence
        """,
        event.id,
        event.type,
        event.version,
        event.user_id,
        json.dumps(event.data, sort_keys=True),
    )
    return inserted is not None


async def last_sequence(connection: Connection, user_id: str, event_type: str) -> int:
    """The sequence of the user's latest event of this type, 0 if none (the generation a
    repeatable event's id derives from; the caller holds the user's row)."""
    found: int | None = await connection.fetchval(
        "SELECT max(sequence) FROM outbound_events WHERE user_id = $1 AND type = $2",
        user_id,
        event_type,
    )
    return found or 0


async def get_event(db: Db, event_id: str) -> OutboundEventRow | None:
    record = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM outbound_events WHERE id = $1",  # noqa: S608
        event_id,
    )
    return _row(record) if record else None


async def get_events(db: Db, event_ids: list[str]) -> dict[str, OutboundEventRow]:
    records = await db.fetch(
        f"SELECT {_COLUMNS} FROM outbound_events WHERE id = ANY($1::text[])",  # noqa: S608
        event_ids,
    )
    return {row.id: row for row in map(_row, records)}


async def list_after(db: Db, sequence: int, limit: int) -> list[OutboundEventRow]:
    """Every user's events past `sequence`, oldest first (what delivery reads next)."""
    records = await db.fetch(
        f"SELECT {_COLUMNS} FROM outbound_events WHERE sequence > $1 "  # noqa: S608
        "ORDER BY sequence LIMIT $2",
        sequence,
        limit,
    )
    return [_row(record) for record in records]


async def list_for_user(
    db: Db, user_id: str, *, after_sequence: int = 0, limit: int = 100
) -> list[OutboundEventRow]:
    """One user's events past `after_sequence`, in their order."""
    records = await db.fetch(
        f"SELECT {_COLUMNS} FROM outbound_events "  # noqa: S608
        "WHERE user_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
        user_id,
        after_sequence,
        limit,
    )
    return [_row(record) for record in records]


async def events_after(db: Db, after_sequence: int, limit: int) -> list[OutboundEventRef]:
    """Every user's events past `after_sequence`, oldest first: what the dispatcher reads."""
    rows = await db.fetch(
        "SELECT id AS event_id, sequence, type, user_id::text AS user_id "
        "FROM outbound_events WHERE sequence > $1 ORDER BY sequence LIMIT $2",
        after_sequence,
        limit,
    )
    return [OutboundEventRef.model_validate(dict(row)) for row in rows]


async def events_between(
    db: Db, first_sequence: int, last_sequence: int, limit: int
) -> list[OutboundEventRef]:
    """The events of a replayed range, oldest first."""
    rows = await db.fetch(
        "SELECT id AS event_id, sequence, type, user_id::text AS user_id "
        "FROM outbound_events WHERE sequence BETWEEN $1 AND $2 ORDER BY sequence LIMIT $3",
        first_sequence,
        last_sequence,
        limit,
    )
    return [OutboundEventRef.model_validate(dict(row)) for row in rows]


async def event_sequence(db: Db, event_id: str) -> int | None:
    value = await db.fetchval("SELECT sequence FROM outbound_events WHERE id = $1", event_id)
    return int(value) if value is not None else None


async def newest_sequence(db: Db) -> int:
    """The highest sequence number so far (0 without events): a new endpoint's start."""
    value = await db.fetchval("SELECT coalesce(max(sequence), 0) FROM outbound_events")
    return int(value)


async def events_numbered(db: Db, sequences: list[int]) -> list[OutboundEventRef]:
    """The events with these sequence numbers that exist (late commits), in order."""
    if not sequences:
        return []
    rows = await db.fetch(
        "SELECT id AS event_id, sequence, type, user_id::text AS user_id "
        "FROM outbound_events WHERE sequence = ANY($1::bigint[]) ORDER BY sequence",
        sequences,
    )
    return [OutboundEventRef.model_validate(dict(row)) for row in rows]
