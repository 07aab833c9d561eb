"""The onboarding repository: tokens (hashed) and the Connect account's mirrored flags.

Writers are the onboarding workflow's activities; the API only reads (SPEC 2). A token
moves to `in_progress` together with its `state` and expiry in one statement, and only
after Stripe produced an account link (SPEC 3.2).
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
from pydantic import BaseModel

from workflows.contracts.onboarding import (
    ConnectAccountSnapshot,
    OnboardingTokenRecord,
    OnboardingTokenStatus,
)

_ROW_COLUMNS = """
    id::text AS token_id, user_id::text AS user_id, status, expires_at,
    state_sha256 IS NOT NULL AS has_state
"""

Db = asyncpg.Pool | asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


class FoundToken(BaseModel):
    """A token as the API finds it by its hash or its state's hash, with the sealed
    account link handed out last (reused while it stays fresh)."""

    token_id: str
    user_id: str
    status: OnboardingTokenStatus
    expires_at: datetime
    expired_by_clock: bool
    link_sealed: bytes | None = None
    link_fresh_seconds: float | None = None


class OnboardingView(BaseModel):
    """What `GET /v1/users/{id}/onboarding` shows (all from Postgres)."""

    user_id: str
    connect_account_id: str | None
    token_id: str | None
    token_status: OnboardingTokenStatus | None
    token_created_at: datetime | None
    token_expires_at: datetime | None
    started_at: datetime | None
    returned_at: datetime | None
    completed_at: datetime | None
    details_submitted: bool
    charges_enabled: bool
    payouts_enabled: bool
    requirements_due: list[str]
    disabled_reason: str | None
    status_updated_at: datetime | None


async def insert_token(
    db: asyncpg.Pool, token_id: str, user_id: str, token_hash: str, expires_at: datetime
) -> OnboardingTokenRecord:
    """Insert a `pending` token and revoke the user's other unused (pending) ones.

    A retry with the same id finds its own row and revokes nothing more.
    """
    async with db.acquire() as connection, connection.transaction():
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


async def get_token(db: Db, token_id: str) -> OnboardingTokenRecord | None:
    row = await db.fetchrow(
        f"SELECT {_ROW_COLUMNS} FROM onboarding_tokens WHERE id = $1",  # noqa: S608
        token_id,
    )
    return OnboardingTokenRecord.model_validate(dict(row)) if row else None


async def open_token_ids(db: Db, user_id: str) -> list[OnboardingTokenRecord]:
    rows = await db.fetch(
        f"SELECT {_ROW_COLUMNS} FROM onboarding_tokens "  # noqa: S608
        "WHERE user_id = $1 AND status IN ('pending', 'in_progress')",
        user_id,
    )
    return [OnboardingTokenRecord.model_validate(dict(row)) for row in rows]


_FIND = """
    SELECT id::text AS token_id, user_id::text AS user_id, status, expires_at,
           expires_at <= now() AS expired_by_clock, link_sealed,
           EXTRACT(EPOCH FROM link_expires_at - now())::float8 AS link_fresh_seconds
    FROM onboarding_tokens
"""


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
) -> OnboardingTokenStatus | None:
    """Move an open token to `in_progress` with its state's digest and expiry, and the
    sealed account link just created, in one statement.

    The state is set at the first move and kept afterwards. Returns the status the
    token had before (None when it was not open any more: nothing changed).
    """
    previous: OnboardingTokenStatus | None = await db.fetchval(
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


async def record_account_status(
    db: asyncpg.Pool, user_id: str, snapshot: ConnectAccountSnapshot
) -> list[str]:
    """Mirror the re-read account; when onboarding is complete, complete the open tokens.

    One transaction: flags, tokens and the user's payouts flag agree. Returns the ids
    of the tokens this call completed.
    """
    complete = snapshot.onboarding_complete
    async with db.acquire() as connection, connection.transaction():
        await connection.execute(
            """
            INSERT INTO connect_account_status AS s (
                user_id, details_submitted, charges_enabled, payouts_enabled,
                requirements_due, disabled_reason, onboarding_completed_at, updated_at
            ) VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN now() END, now())
            ON CONFLICT (user_id) DO UPDATE SET
                details_submitted = EXCLUDED.details_submitted,
                charges_enabled = EXCLUDED.charges_enabled,
                payouts_enabled = EXCLUDED.payouts_enabled,
                requirements_due = EXCLUDED.requirements_due,
                disabled_reason = EXCLUDED.disabled_reason,
                onboarding_completed_at = COALESCE(
                    s.onboarding_completed_at, EXCLUDED.onboarding_completed_at
                ),
                updated_at = now()
            """,
            user_id,
            snapshot.details_submitted,
            snapshot.charges_enabled,
            snapshot.payouts_enabled,
            snapshot.requirements_due,
            snapshot.disabled_reason,
            complete,
        )
        if not complete:
            return []
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
        await connection.execute(
            "UPDATE users SET wants_payouts = true, updated_at = now() "
            "WHERE id = $1 AND NOT wants_payouts",
            user_id,
        )
        return [row[0] for row in rows]


async def onboarding_view(db: Db, user_id: str) -> OnboardingView | None:
    """The user's latest token and the account's flags; None for an unknown user."""
    row = await db.fetchrow(
        """
        SELECT u.id::text AS user_id, u.connect_account_id,
               t.id::text AS token_id, t.status AS token_status,
               t.created_at AS token_created_at, t.expires_at AS token_expires_at,
               t.started_at, t.returned_at, t.completed_at,
               COALESCE(s.details_submitted, false) AS details_submitted,
               COALESCE(s.charges_enabled, false) AS charges_enabled,
               COALESCE(s.payouts_enabled, false) AS payouts_enabled,
               COALESCE(s.requirements_due, '{}') AS requirements_due,
               s.disabled_reason, s.updated_at AS status_updated_at
        FROM users u
        LEFT JOIN LATERAL (
            SELECT * FROM onboarding_tokens WHERE user_id = u.id
            ORDER BY created_at DESC, id LIMIT 1
        ) t ON true
        LEFT JOIN connect_account_status s ON s.user_id = u.id
        WHERE u.id = $1
        """,
        user_id,
    )
    return OnboardingView.model_validate(dict(row)) if row else None
