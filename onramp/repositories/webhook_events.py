"""The `webhook_events` table: the Stripe webhook inbox.

Every verified event is stored here before Stripe gets its 200; the
dispatchers hand it to its workflow afterwards. A dispatcher *claims* rows with a lease
in one short statement (`FOR UPDATE SKIP LOCKED`, committed at once), makes the Temporal
call without holding a lock or a connection, then writes the outcome only if the lease
is still its own (`lease_id`). So two dispatchers never dispatch one event twice while a
lease lasts, and a dispatcher that died mid-call leaves the row to another one once its
lease has run out.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from onramp.repositories import Db

InboxStatus = Literal["pending", "dispatched", "ignored", "failed", "orphaned"]

# A row in one of these states has had its effect (or never will): never dispatch again.
FINAL_STATUSES: frozenset[str] = frozenset({"dispatched", "ignored", "orphaned"})

_ROW_COLUMNS = """
    event_id, type, livemode, account, api_version, created, received_at, raw_body,
    status, status_reason, attempts, last_error, user_id::text AS user_id,
    target_workflow_id, dispatched_at
"""
_ROW_COLUMNS_OF_W = """
    w.event_id, w.type, w.livemode, w.account, w.api_version, w.created, w.received_at,
    w.raw_body, w.status, w.status_reason, w.attempts, w.last_error,
    w.user_id::text AS user_id, w.target_workflow_id, w.dispatched_at
"""


class NewInboxEvent(BaseModel):
    """A verified event as it is first stored."""

    event_id: str
    type: str
    livemode: bool
    account: str | None
    api_version: str | None
    created: datetime
    raw_body: bytes


class InboxRow(BaseModel):
    """A stored event with its dispatch state."""

    event_id: str
    type: str
    livemode: bool
    account: str | None
    api_version: str | None
    created: datetime
    received_at: datetime
    raw_body: bytes
    status: InboxStatus
    status_reason: str | None
    attempts: int
    last_error: str | None
    user_id: str | None
    target_workflow_id: str | None
    dispatched_at: datetime | None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


async def store_event(db: Db, event: NewInboxEvent) -> tuple[bool, InboxStatus]:
    """Store the event as `pending`, due at once.

    Returns (stored now, its status): (False, the stored status) when its id was already
    there (a duplicate delivery).
    """
    status: InboxStatus | None = await db.fetchval(
        """
        INSERT INTO webhook_events (event_id, type, livemode, account, api_version, created,
                                    raw_body)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (event_id) DO NOTHING
        RETURNING status
        """,
        event.event_id,
        event.type,
        event.livemode,
        event.account,
        event.api_version,
        event.created,
        event.raw_body,
    )
    if status is not None:
        return True, status
    stored: InboxStatus = await db.fetchval(
        "SELECT status FROM webhook_events WHERE event_id = $1", event.event_id
    )
    return False, stored


async def get_event(db: Db, event_id: str) -> InboxRow | None:
    row = await db.fetchrow(
        f"SELECT {_ROW_COLUMNS} FROM webhook_events WHERE event_id = $1",  # noqa: S608
        event_id,
    )
    return InboxRow.model_validate(dict(row)) if row else None


async def claim_due(
    db: Db, *, lease_id: uuid.UUID, lease_seconds: float, limit: int
) -> list[InboxRow]:
    """Lease up to `limit` pending rows that are due (oldest first) and count the attempt.

    One statement, so one short transaction: rows another dispatcher holds are skipped,
    not waited for, and nothing stays locked once it returns.
    """
    rows = await db.fetch(
        f"""
        WITH due AS (
            SELECT event_id FROM webhook_events
            WHERE status = 'pending' AND next_attempt_at <= now()
              AND (lease_until IS NULL OR lease_until < now())
            ORDER BY received_at
            LIMIT $3
            FOR UPDATE SKIP LOCKED
        )
        UPDATE webhook_events AS w
        SET lease_until = now() + make_interval(secs => $2), lease_id = $1,
            attempts = w.attempts + 1
        FROM due WHERE w.event_id = due.event_id
        RETURNING {_ROW_COLUMNS_OF_W}
        """,  # noqa: S608
        lease_id,
        lease_seconds,
        limit,
    )
    claimed = [InboxRow.model_validate(dict(row)) for row in rows]
    return sorted(claimed, key=lambda row: (row.received_at, row.event_id))


async def claim_event(
    db: Db,
    event_id: str,
    statuses: Sequence[Literal["pending", "failed"]],
    *,
    lease_id: uuid.UUID,
    lease_seconds: float,
) -> InboxRow | None:
    """Lease one row for an operator's replay, whatever its backoff says; None when it is
    final, unknown, not in `statuses`, or leased by a dispatcher right now."""
    row = await db.fetchrow(
        f"""
        WITH one AS (
            SELECT event_id FROM webhook_events
            WHERE event_id = $1 AND status = ANY($4::text[])
              AND (lease_until IS NULL OR lease_until < now())
            FOR UPDATE SKIP LOCKED
        )
        UPDATE webhook_events AS w
        SET lease_until = now() + make_interval(secs => $3), lease_id = $2,
            attempts = w.attempts + 1
        FROM one WHERE w.event_id = one.event_id
        RETURNING {_ROW_COLUMNS_OF_W}
        """,  # noqa: S608
        event_id,
        lease_id,
        lease_seconds,
        list(statuses),
    )
    return InboxRow.model_validate(dict(row)) if row else None


async def mark_dispatched(
    db: Db, event_id: str, *, lease_id: uuid.UUID, user_id: str | None, workflow_id: str
) -> bool:
    """Record the dispatch; False when the lease was lost meanwhile (nothing written)."""
    done = await db.fetchval(
        """
        UPDATE webhook_events
        SET status = 'dispatched', status_reason = NULL, user_id = $3,
            target_workflow_id = $4, dispatched_at = now(), lease_until = NULL, lease_id = NULL
        WHERE event_id = $1 AND lease_id = $2
        RETURNING true
        """,
        event_id,
        lease_id,
        user_id,
        workflow_id,
    )
    return bool(done)


async def mark_settled(
    db: Db,
    event_id: str,
    status: Literal["ignored", "orphaned"],
    reason: str,
    *,
    lease_id: uuid.UUID,
    user_id: str | None = None,
    workflow_id: str | None = None,
) -> bool:
    """Record that the event will never be dispatched, and why (False: lease lost)."""
    done = await db.fetchval(
        """
        UPDATE webhook_events
        SET status = $3, status_reason = $4, user_id = $5, target_workflow_id = $6,
            lease_until = NULL, lease_id = NULL
        WHERE event_id = $1 AND lease_id = $2
        RETURNING true
        """,
        event_id,
        lease_id,
        status,
        reason,
        user_id,
        workflow_id,
    )
    return bool(done)


async def record_failure(
    db: Db,
    event_id: str,
    error: str,
    *,
    lease_id: uuid.UUID,
    permanent: bool,
    retry_in_seconds: float,
    user_id: str | None,
    workflow_id: str | None,
) -> InboxStatus | None:
    """Record a failed attempt and return the status it leaves (None: lease lost).

    A transient failure (Temporal unreachable) keeps the status (`pending` stays
    `pending`) and makes the row due again in `retry_in_seconds`; a permanent one marks
    it `failed` (an operator replays it).
    """
    status: InboxStatus | None = await db.fetchval(
        """
        UPDATE webhook_events
        SET status = CASE WHEN $4 THEN 'failed' ELSE status END,
            last_error = $3, user_id = $6, target_workflow_id = $7,
            next_attempt_at = now() + make_interval(secs => $5),
            lease_until = NULL, lease_id = NULL
        WHERE event_id = $1 AND lease_id = $2
        RETURNING status
        """,
        event_id,
        lease_id,
        error[:2000],
        permanent,
        retry_in_seconds,
        user_id,
        workflow_id,
    )
    return status


async def release_lease(db: Db, event_id: str, *, lease_id: uuid.UUID) -> None:
    """Give a claimed row back untouched (due at once), e.g. when the dispatcher stops."""
    await db.execute(
        """
        UPDATE webhook_events SET lease_until = NULL, lease_id = NULL, attempts = attempts - 1
        WHERE event_id = $1 AND lease_id = $2
        """,
        event_id,
        lease_id,
    )


async def inbox_lag_seconds(db: Db) -> float:
    """Age of the oldest event not yet dispatched (`pending`), 0 when there is none."""
    lag: float = await db.fetchval(
        """
        SELECT coalesce(extract(epoch FROM now() - min(received_at)), 0)::float8
        FROM webhook_events WHERE status = 'pending'
        """
    )
    return max(lag, 0.0)


class InboxCounts(BaseModel):
    pending: int
    failed: int
    oldest_pending_seconds: float


async def inbox_counts(db: Db) -> InboxCounts:
    row = await db.fetchrow(
        """
        SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               coalesce(extract(epoch FROM now() - min(received_at)
                        FILTER (WHERE status = 'pending')), 0)::float8 AS oldest_pending_seconds
        FROM webhook_events WHERE status IN ('pending', 'failed')
        """
    )
    assert row is not None
    return InboxCounts.model_validate(dict(row))


async def list_replayable(
    db: Db,
    statuses: Sequence[Literal["pending", "failed"]],
    *,
    event_ids: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[str]:
    """Ids of stored events that may be dispatched again, oldest first."""
    rows = await db.fetch(
        """
        SELECT event_id FROM webhook_events
        WHERE status = ANY($1::text[])
          AND (cardinality($2::text[]) = 0 OR event_id = ANY($2::text[]))
          AND ($3::timestamptz IS NULL OR received_at >= $3)
          AND ($4::timestamptz IS NULL OR received_at < $4)
        ORDER BY received_at, event_id
        """,
        list(statuses),
        list(event_ids),
        since,
        until,
    )
    return [row["event_id"] for row in rows]


class InboxSummaryRow(BaseModel):
    """A stored event as operators list it (without its body)."""

    event_id: str
    type: str
    livemode: bool
    account: str | None
    status: InboxStatus
    status_reason: str | None
    attempts: int
    last_error: str | None
    target_workflow_id: str | None
    received_at: datetime
    dispatched_at: datetime | None


async def list_summaries(
    db: Db, *, status: InboxStatus | None, before: datetime | None, limit: int
) -> list[InboxSummaryRow]:
    """Stored events newest first, optionally of one status and received before `before`."""
    rows = await db.fetch(
        """
        SELECT event_id, type, livemode, account, status, status_reason, attempts,
               last_error, target_workflow_id, received_at, dispatched_at
        FROM webhook_events
        WHERE ($1::text IS NULL OR status = $1) AND ($2::timestamptz IS NULL OR received_at < $2)
        ORDER BY received_at DESC
        LIMIT $3
        """,
        status,
        before,
        limit,
    )
    return [InboxSummaryRow.model_validate(dict(row)) for row in rows]
