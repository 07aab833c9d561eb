"""The `outbound_events` table (the outbox): the reads event delivery makes.

The outbox's own branch owns this module (its inserts, its row model); these reads join
it when both are merged.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from onramp.repositories import Db


class OutboundEventRef(BaseModel):
    """An event as the dispatcher hands it over: ids and position only, no body."""

    event_id: str
    sequence: int
    type: str
    user_id: str | None


class OutboundEventRow(BaseModel):
    event_id: str
    type: str
    version: int
    user_id: str | None
    occurred_at: datetime
    data: str  # the JSON text as Postgres returns it
    sequence: int


async def events_after(db: Db, after_sequence: int, limit: int) -> list[OutboundEventRef]:
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


async def get_event(db: Db, event_id: str) -> OutboundEventRow | None:
    row = await db.fetchrow(
        "SELECT id AS event_id, type, version, user_id::text AS user_id, occurred_at, "
        "data::text AS data, sequence FROM outbound_events WHERE id = $1",
        event_id,
    )
    return OutboundEventRow.model_validate(dict(row)) if row else None


async def newest_sequence(db: Db) -> int:
    """The highest sequence number so far (0 without events): a new endpoint's start."""
    value = await db.fetchval("SELECT coalesce(max(sequence), 0) FROM outbound_events")
    return int(value)
