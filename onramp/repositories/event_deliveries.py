"""The `event_deliveries` table: one row per attempt to deliver an event to an endpoint.

Written by the delivery activity after each attempt; read by operators (the admin API)
and by the delivery activities, which skip an event already delivered to the endpoint
(a batch or a hand-over repeated after a crash) unless it is a replay.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from onramp.repositories import Db

DeliveryStatus = Literal["delivered", "failed", "abandoned"]


class EventDeliveryRow(BaseModel):
    delivery_id: int
    event_id: str
    endpoint_id: str
    user_id: str | None
    attempt: int
    replay: bool
    status: DeliveryStatus
    response_code: int | None
    latency_ms: int | None
    error: str | None
    attempted_at: datetime
    next_attempt_at: datetime | None


class NewAttempt(BaseModel):
    event_id: str
    endpoint_id: str
    user_id: str | None
    attempt: int
    replay: bool
    status: DeliveryStatus
    response_code: int | None = None
    latency_ms: int | None = None
    error: str | None = None
    next_attempt_in_seconds: float | None = None


_COLUMNS = """
    id AS delivery_id, event_id, endpoint_id, user_id::text AS user_id, attempt, replay,
    status, response_code, latency_ms, error, attempted_at, next_attempt_at
"""


async def insert_attempt(db: Db, attempt: NewAttempt) -> EventDeliveryRow:
    row = await db.fetchrow(
        f"""
        INSERT INTO event_deliveries (event_id, endpoint_id, user_id, attempt, replay, status,
                                      response_code, latency_ms, error, next_attempt_at)
        VALUES ($1, $2, $3::uuid, $4, $5, $6, $7, $8, $9,
                now() + make_interval(secs => $10::float8))
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        attempt.event_id,
        attempt.endpoint_id,
        attempt.user_id,
        attempt.attempt,
        attempt.replay,
        attempt.status,
        attempt.response_code,
        attempt.latency_ms,
        attempt.error,
        attempt.next_attempt_in_seconds,
    )
    assert row is not None
    return EventDeliveryRow.model_validate(dict(row))


async def attempts_so_far(db: Db, *, endpoint_id: str, event_ids: list[str]) -> dict[str, int]:
    """Per event: the number of attempts made (not replays), or -1 once any attempt
    (a replay's too) delivered it: delivery skips those, unless it is a replay."""
    rows = await db.fetch(
        """
        SELECT event_id,
               CASE WHEN bool_or(status = 'delivered') THEN -1
                    ELSE count(*) FILTER (WHERE NOT replay) END AS attempts
        FROM event_deliveries
        WHERE endpoint_id = $1 AND event_id = ANY($2::text[])
        GROUP BY event_id
        """,
        endpoint_id,
        event_ids,
    )
    return {row["event_id"]: int(row["attempts"]) for row in rows}


async def list_for_endpoint(
    db: Db,
    endpoint_id: str,
    *,
    event_id: str | None = None,
    status: DeliveryStatus | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[EventDeliveryRow]:
    """Attempts to the endpoint, newest first (`before`: a `delivery_id` cursor)."""
    rows = await db.fetch(
        f"""
        SELECT {_COLUMNS} FROM event_deliveries
        WHERE endpoint_id = $1
          AND ($2::text IS NULL OR event_id = $2)
          AND ($3::text IS NULL OR status = $3)
          AND ($4::bigint IS NULL OR id < $4)
        ORDER BY id DESC
        LIMIT $5
        """,  # noqa: S608
        endpoint_id,
        event_id,
        status,
        before,
        limit,
    )
    return [EventDeliveryRow.model_validate(dict(row)) for row in rows]
