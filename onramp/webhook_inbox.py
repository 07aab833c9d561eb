"""The Stripe webhook inbox: plain SQL over `webhook_events`, and the user lookups the
webhook router needs.

Every verified event is stored here before it is dispatched (SPEC 2, 4). A dispatch
holds the row's lock (`SELECT … FOR UPDATE` in a transaction) from the moment it claims
the row until its outcome is written, so two deliveries of one event never both
dispatch it: the second waits, then finds the row final.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic import BaseModel

InboxStatus = Literal["pending", "dispatched", "ignored", "failed", "orphaned"]

# A row in one of these states has had its effect (or never will): never dispatch again.
FINAL_STATUSES: frozenset[str] = frozenset({"dispatched", "ignored", "orphaned"})

_ROW_COLUMNS = """
    event_id, type, livemode, account, api_version, created, received_at, raw_body,
    status, status_reason, attempts, last_error, user_id::text AS user_id,
    target_workflow_id, dispatched_at
"""

# A connection taken from the pool (`pool.acquire()`) or a plain one.
Connection = asyncpg.Connection | PoolConnectionProxy
Db = asyncpg.Pool | Connection


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


async def store_event(db: Db, event: NewInboxEvent) -> bool:
    """Store the event as `pending`; False when its id was already stored (a duplicate)."""
    inserted = await db.fetchval(
        """
        INSERT INTO webhook_events (event_id, type, livemode, account, api_version, created,
                                    raw_body)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (event_id) DO NOTHING
        RETURNING true
        """,
        event.event_id,
        event.type,
        event.livemode,
        event.account,
        event.api_version,
        event.created,
        event.raw_body,
    )
    return bool(inserted)


async def get_event(db: Db, event_id: str) -> InboxRow | None:
    row = await db.fetchrow(
        f"SELECT {_ROW_COLUMNS} FROM webhook_events WHERE event_id = $1",  # noqa: S608
        event_id,
    )
    return InboxRow.model_validate(dict(row)) if row else None


async def lock_event(connection: Connection, event_id: str) -> InboxRow | None:
    """Lock the row until the caller's transaction ends (call inside a transaction)."""
    row = await connection.fetchrow(
        f"SELECT {_ROW_COLUMNS} FROM webhook_events WHERE event_id = $1 FOR UPDATE",  # noqa: S608
        event_id,
    )
    return InboxRow.model_validate(dict(row)) if row else None


async def mark_dispatched(db: Db, event_id: str, *, user_id: str | None, workflow_id: str) -> None:
    await db.execute(
        """
        UPDATE webhook_events
        SET status = 'dispatched', status_reason = NULL, attempts = attempts + 1,
            user_id = $2, target_workflow_id = $3, dispatched_at = now()
        WHERE event_id = $1
        """,
        event_id,
        user_id,
        workflow_id,
    )


async def mark_settled(
    db: Db,
    event_id: str,
    status: Literal["ignored", "orphaned"],
    reason: str,
    *,
    user_id: str | None = None,
    workflow_id: str | None = None,
    attempted: bool = False,
) -> None:
    """Record that the event will never be dispatched, and why."""
    await db.execute(
        """
        UPDATE webhook_events
        SET status = $2, status_reason = $3, user_id = $4, target_workflow_id = $5,
            attempts = attempts + $6::int
        WHERE event_id = $1
        """,
        event_id,
        status,
        reason,
        user_id,
        workflow_id,
        1 if attempted else 0,
    )


async def record_failure(
    db: Db,
    event_id: str,
    error: str,
    *,
    permanent: bool,
    user_id: str | None,
    workflow_id: str | None,
) -> InboxStatus:
    """Count a failed attempt and return the status it leaves. A transient failure
    (Temporal unreachable) keeps the status (`pending` stays `pending`); a permanent one
    marks the row `failed`."""
    status: InboxStatus = await db.fetchval(
        """
        UPDATE webhook_events
        SET status = CASE WHEN $3 THEN 'failed' ELSE status END,
            attempts = attempts + 1, last_error = $2, user_id = $4, target_workflow_id = $5
        WHERE event_id = $1
        RETURNING status
        """,
        event_id,
        error[:2000],
        permanent,
        user_id,
        workflow_id,
    )
    return status


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


# --- Who an event belongs to ---------------------------------------------------------
# Each Stripe id has one home, the user row (SPEC 2); NULL never matches a comparison.


async def user_exists(db: Db, user_id: str) -> bool:
    found = await db.fetchval("SELECT 1 FROM users WHERE id = $1", user_id)
    return found is not None


async def user_by_stripe_customer(db: Db, customer_id: str) -> str | None:
    found: str | None = await db.fetchval(
        "SELECT id::text FROM users WHERE stripe_customer_id = $1", customer_id
    )
    return found


async def user_by_connect_account(db: Db, account_id: str) -> str | None:
    found: str | None = await db.fetchval(
        "SELECT id::text FROM users WHERE connect_account_id = $1", account_id
    )
    return found


async def connect_account_of(db: Db, user_id: str) -> tuple[bool, str | None]:
    """(user exists, the user's saved Connect account id or None)."""
    row = await db.fetchrow("SELECT connect_account_id FROM users WHERE id = $1", user_id)
    if row is None:
        return False, None
    account: str | None = row["connect_account_id"]
    return True, account
