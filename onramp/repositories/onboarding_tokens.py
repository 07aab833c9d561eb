"""The `onboarding_tokens` table: Connect onboarding links' tokens, hashed.

Writers are the onboarding workflow's activities; the API only reads. A token
moves to `in_progress` together with its `state` digest and expiry in one statement,
and only after Stripe produced an account link.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg
from pydantic import BaseModel

from onramp.repositories import Connection, Db

TokenStatus = Literal["pending", "in_progress", "completed", "expired", "revoked"]

# Column names below come from these constants, never from input (hence the S608 noqa).
_ROW_COLUMNS = """
    id::text AS token_id, user_id::text AS user_id, status, expires_at,
    state_sha256 IS NOT NULL AS has_state
"""
_FIND = """
    SELECT id::text AS token_id, user_id::text AS user_id, status, expires_at,
           expires_at <= now() AS expired_by_clock, link_sealed,
           EXTRACT(EPOCH FROM link_expires_at - now())::float8 AS link_fresh_seconds
    FROM onboarding_tokens
"""
_LATEST_COLUMNS = """
    id::text AS token_id, status, created_at, expires_at, started_at, returned_at,
    completed_at
"""


class OnboardingTokenRow(BaseModel):
    token_id: str
    user_id: str
    status: TokenStatus
    expires_at: datetime
    has_state: bool


class FoundToken(BaseModel):
    """A token as the API finds it by its hash or its state's hash, with the sealed
    account link handed out last (reused while it stays fresh)."""

    token_id: str
    user_id: str
    status: TokenStatus
    expires_at: datetime
    expired_by_clock: bool
    link_sealed: bytes | None = None
    link_fresh_seconds: float | None = None


class LatestToken(BaseModel):
    """The user's newest token, as the onboarding status shows it."""

    token_id: str
    status: TokenStatus
    created_at: datetime
    expires_at: datetime
    started_at: datetime | None
    returned_at: datetime | None
    completed_at: datetime | None


async def insert_token(
    pool: asyncpg.Pool, token_id: str, user_id: str, token_hash: str, expires_at: datetime
) -> OnboardingTokenRow:
    """Insert a `pending` token and revoke the user's other unused (pending) ones.

    A retry with the same id finds its own row and revokes nothing more.
    """
    async with pool.acquire() as connection, connection.transaction():
        inserted = await connection.fetchval(
            """
            INSERT INTO onboarding_tokens (id, user_id, token_hash, expires_at)
            VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING RETURNING id
            """,
            token_id,
            user_id,
            token_hash,
            expires_at,
        )
        if inserted is not None:
            await connection.execute(
                """
                UPDATE onboarding_tokens
                SET status = 'revoked', link_sealed = NULL, link_expires_at = NULL,
                    updated_at = now()
                WHERE user_id = $1 AND id <> $2 AND status = 'pending'
                """,
                user_id,
                token_id,
            )
        record = await get_token(connection, token_id)
    assert record is not None
    return record


async def get_token(db: Db, token_id: str) -> OnboardingTokenRow | None:
    row = await db.fetchrow(
        f"SELECT {_ROW_COLUMNS} FROM onboarding_tokens WHERE id = $1",  # noqa: S608
        token_id,
    )
    return OnboardingTokenRow.model_validate(dict(row)) if row else None


async def open_tokens(db: Db, user_id: str) -> list[OnboardingTokenRow]:
    rows = await db.fetch(
        f"SELECT {_ROW_COLUMNS} FROM onboarding_tokens "  # noqa: S608
        "WHERE user_id = $1 AND status IN ('pending', 'in_progress')",
        user_id,
    )
    return [OnboardingTokenRow.model_validate(dict(row)) for row in rows]


async def latest_token(db: Db, user_id: str) -> LatestToken | None:
    row = await db.fetchrow(
        f"SELECT {_LATEST_COLUMNS} FROM onboarding_tokens "  # noqa: S608
        "WHERE user_id = $1 ORDER BY created_at DESC, id LIMIT 1",
        user_id,
    )
    return LatestToken.model_validate(dict(row)) if row else None


async def find_by_hash(db: Db, token_hash: str) -> FoundToken | None:
    row = await db.fetchrow(_FIND + " WHERE token_hash = $1", token_hash)
    return FoundToken.model_validate(dict(row)) if row else None


async def find_by_state_hash(db: Db, state_sha256: str) -> FoundToken | None:
    row = await db.fetchrow(_FIND + " WHERE state_sha256 = $1", state_sha256)
    return FoundToken.model_validate(dict(row)) if row else None


async def mark_in_progress(
    db: Db,
    token_id: str,
    state_sha256: str,
    expires_at: datetime,
    link_sealed: bytes | None = None,
    link_expires_at: datetime | None = None,
) -> TokenStatus | None:
    """Move an open token to `in_progress` with its state's digest and expiry, and the
    sealed account link just created, in one statement.

    The state is set at the first move and kept afterwards. Returns the status the
    token had before (None when it was not open any more: nothing changed).
    """
    previous: TokenStatus | None = await db.fetchval(
        """
        WITH before AS (
            SELECT id, status FROM onboarding_tokens
            WHERE id = $1 AND status IN ('pending', 'in_progress') FOR UPDATE
        )
        UPDATE onboarding_tokens AS t
        SET status = 'in_progress', state_sha256 = COALESCE(t.state_sha256, $2),
            expires_at = $3, started_at = COALESCE(t.started_at, now()),
            link_sealed = COALESCE($4, t.link_sealed),
            link_expires_at = CASE WHEN $4::bytea IS NULL THEN t.link_expires_at ELSE $5 END,
            updated_at = now()
        FROM before WHERE t.id = before.id
        RETURNING before.status
        """,
        token_id,
        state_sha256,
        expires_at,
        link_sealed,
        link_expires_at,
    )
    return previous


async def expire_token(db: Db, token_id: str) -> bool:
    """`pending`/`in_progress` → `expired` (the workflow's timer decides when)."""
    result: str = await db.execute(
        """
        UPDATE onboarding_tokens
        SET status = 'expired', link_sealed = NULL, link_expires_at = NULL, updated_at = now()
        WHERE id = $1 AND status IN ('pending', 'in_progress')
        """,
        token_id,
    )
    return result.endswith(" 1")


async def record_return(db: Db, token_id: str) -> None:
    await db.execute(
        "UPDATE onboarding_tokens SET returned_at = now(), updated_at = now() WHERE id = $1",
        token_id,
    )


async def complete_in_progress(connection: Connection, user_id: str) -> list[str]:
    """Complete the user's `in_progress` tokens (onboarding is done); their ids."""
    rows = await connection.fetch(
        """
        UPDATE onboarding_tokens
        SET status = 'completed', completed_at = now(), updated_at = now(),
            link_sealed = NULL, link_expires_at = NULL
        WHERE user_id = $1 AND status = 'in_progress'
        RETURNING id::text
        """,
        user_id,
    )
    return [row[0] for row in rows]


class StuckToken(BaseModel):
    token_id: str
    user_id: str
    started_at: datetime | None


async def in_progress_since(db: Db, seconds: float, limit: int) -> list[StuckToken]:
    """Onboardings `in_progress` that began more than `seconds` ago (reconciliation)."""
    rows = await db.fetch(
        "SELECT id::text AS token_id, user_id::text AS user_id, started_at "
        "FROM onboarding_tokens WHERE status = 'in_progress' "
        "AND coalesce(started_at, updated_at) < now() - make_interval(secs => $1) "
        "ORDER BY coalesce(started_at, updated_at) LIMIT $2",
        seconds,
        limit,
    )
    return [StuckToken.model_validate(dict(row)) for row in rows]
