"""The `event_endpoints` table: where outbound events go, and how they are signed.

Secrets are stored sealed (`onramp.tokens.seal`, bound to the endpoint id); this module
never sees them in the clear. The dispatcher's cursor lives here too, so a dispatcher
started again resumes where the previous one stopped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from onramp.repositories import Db

EndpointStatus = Literal["active", "paused", "failing"]


class EventEndpointRow(BaseModel):
    endpoint_id: str
    url: str
    event_types: list[str]
    description: str
    status: EndpointStatus
    created_at: datetime
    status_changed_at: datetime
    dispatch_cursor: int
    previous_secret_until: datetime | None


class EndpointSecrets(BaseModel):
    """The sealed secrets that sign right now: the current one, and the previous one
    while its overlap lasts."""

    endpoint_id: str
    url: str
    status: EndpointStatus
    secret_sealed: bytes
    previous_secret_sealed: bytes | None


_COLUMNS = """
    id AS endpoint_id, url, event_types, description, status, created_at,
    status_changed_at, dispatch_cursor, previous_secret_until
"""


async def insert_endpoint(
    db: Db,
    *,
    endpoint_id: str,
    url: str,
    event_types: list[str],
    description: str,
    secret_sealed: bytes,
    dispatch_cursor: int,
) -> EventEndpointRow:
    """A new endpoint; it hears the events after `dispatch_cursor` (the newest so far)."""
    row = await db.fetchrow(
        f"""
        INSERT INTO event_endpoints (id, url, event_types, description, secret_sealed,
                                     dispatch_cursor)
        VALUES ($1, $2, $3, $4, $5, $6)
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        endpoint_id,
        url,
        event_types,
        description,
        secret_sealed,
        dispatch_cursor,
    )
    assert row is not None
    return EventEndpointRow.model_validate(dict(row))


async def delete_endpoint(db: Db, endpoint_id: str) -> bool:
    """Remove an endpoint and its attempts (its dispatcher ends at its next read); False
    when there was none."""
    deleted = await db.fetchval(
        "DELETE FROM event_endpoints WHERE id = $1 RETURNING id", endpoint_id
    )
    return deleted is not None


async def get_endpoint(db: Db, endpoint_id: str) -> EventEndpointRow | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM event_endpoints WHERE id = $1",  # noqa: S608
        endpoint_id,
    )
    return EventEndpointRow.model_validate(dict(row)) if row else None


async def list_endpoints(db: Db) -> list[EventEndpointRow]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM event_endpoints ORDER BY created_at, id"  # noqa: S608
    )
    return [EventEndpointRow.model_validate(dict(row)) for row in rows]


async def get_secrets(db: Db, endpoint_id: str) -> EndpointSecrets | None:
    """The sealed secrets that sign now (the previous one only until its time is up)."""
    row = await db.fetchrow(
        """
        SELECT id AS endpoint_id, url, status, secret_sealed,
               CASE WHEN previous_secret_until > now() THEN previous_secret_sealed END
                   AS previous_secret_sealed
        FROM event_endpoints WHERE id = $1
        """,
        endpoint_id,
    )
    return EndpointSecrets.model_validate(dict(row)) if row else None


async def rotate_secret(
    db: Db, endpoint_id: str, *, secret_sealed: bytes, overlap_seconds: float
) -> EventEndpointRow | None:
    """The new secret signs from now on; the current one keeps signing beside it for
    `overlap_seconds`."""
    row = await db.fetchrow(
        f"""
        UPDATE event_endpoints
        SET previous_secret_sealed = secret_sealed,
            previous_secret_until = now() + make_interval(secs => $3),
            secret_sealed = $2
        WHERE id = $1
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        endpoint_id,
        secret_sealed,
        float(overlap_seconds),
    )
    return EventEndpointRow.model_validate(dict(row)) if row else None


async def set_status(
    db: Db, endpoint_id: str, status: EndpointStatus, *, only_from: EndpointStatus | None = None
) -> EventEndpointRow | None:
    """Set the status (only when it is `only_from`, if given); None when nothing changed
    hands back the row as it is, or None if the endpoint does not exist."""
    row = await db.fetchrow(
        f"""
        UPDATE event_endpoints
        SET status = $2,
            status_changed_at = CASE WHEN status = $2 THEN status_changed_at ELSE now() END
        WHERE id = $1 AND ($3::text IS NULL OR status = $3)
        RETURNING {_COLUMNS}
        """,  # noqa: S608
        endpoint_id,
        status,
        only_from,
    )
    return EventEndpointRow.model_validate(dict(row)) if row else None


async def advance_cursor(db: Db, endpoint_id: str, sequence: int) -> None:
    """Record that every event up to `sequence` was handed over (never moves back)."""
    await db.execute(
        "UPDATE event_endpoints SET dispatch_cursor = greatest(dispatch_cursor, $2) WHERE id = $1",
        endpoint_id,
        sequence,
    )
