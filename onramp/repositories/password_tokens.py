"""The `password_tokens` table: set-password tokens, stored as sha256(token) only.

The token itself is derived from its id and never stored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from onramp.repositories import Connection, Db

PasswordTokenState = Literal["issued", "used", "revoked"]


class PasswordTokenRow(BaseModel):
    """A token as a set-password request finds it by its hash."""

    token_id: str
    user_id: str
    run_id: str
    state: PasswordTokenState
    expired: bool

    @property
    def usable(self) -> bool:
        return self.state == "issued" and not self.expired


_COLUMNS = """
    id::text AS token_id, user_id::text AS user_id, run_id, state,
    expires_at <= now() AS expired
"""


async def insert_token(
    db: Db,
    *,
    token_id: str,
    user_id: str,
    run_id: str,
    purpose: str,
    token_hash: str,
    ttl_seconds: int,
) -> None:
    """Store the token's hash and expiry once (a retry finds its own row)."""
    await db.execute(
        """
        INSERT INTO password_tokens (id, user_id, run_id, purpose, token_hash, expires_at)
        VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6))
        ON CONFLICT (id) DO NOTHING
        """,
        token_id,
        user_id,
        run_id,
        purpose,
        token_hash,
        float(ttl_seconds),
    )


async def revoke_token(db: Db, token_id: str) -> None:
    await db.execute(
        "UPDATE password_tokens SET state = 'revoked' WHERE id = $1 AND state = 'issued'",
        token_id,
    )


async def find_by_hash(db: Db, *, token_hash: str, purpose: str) -> PasswordTokenRow | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM password_tokens "  # noqa: S608
        "WHERE token_hash = $1 AND purpose = $2",
        token_hash,
        purpose,
    )
    return PasswordTokenRow.model_validate(dict(row)) if row else None


async def lock_by_hash(
    connection: Connection, *, token_hash: str, purpose: str
) -> PasswordTokenRow | None:
    """Like `find_by_hash`, holding the row until the caller's transaction ends."""
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM password_tokens "  # noqa: S608
        "WHERE token_hash = $1 AND purpose = $2 FOR UPDATE",
        token_hash,
        purpose,
    )
    return PasswordTokenRow.model_validate(dict(row)) if row else None


async def mark_used(connection: Connection, token_id: str) -> None:
    await connection.execute(
        "UPDATE password_tokens SET state = 'used', used_at = now() WHERE id = $1", token_id
    )


async def revoke_other_tokens(
    connection: Connection, *, user_id: str, purpose: str, keep_token_id: str
) -> None:
    """Revoke the user's unused tokens of `purpose` except `keep_token_id`: once a new
    link is sent, only that one works."""
    await connection.execute(
        "UPDATE password_tokens SET state = 'revoked' "
        "WHERE user_id = $1 AND purpose = $2 AND id <> $3 AND state = 'issued'",
        user_id,
        purpose,
        keep_token_id,
    )
